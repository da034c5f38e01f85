"""``$filter`` of GetImages / GetImageCount: an expression over image metadata.

The spec: "The expression supports eq (Equal), ne (Not equal), and (Logical and), or (Logical or)
operators. Here is an example, metadata=key1 eq 'value1' and key2 ne 'value2'." So: comparisons
``key eq 'value'`` / ``key ne 'value'`` joined by ``and`` (binding tighter) and ``or``, with
parentheses, an optional leading ``metadata=``, and OData quoting (``''`` in a value is a quote).
Anything else is refused with a 400, never read as "no filter".
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ._errors import ApiError

__all__ = ["parse_filter", "MetadataFilter"]

MetadataFilter = Callable[[dict], bool]
_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<paren>[()])|(?P<word>[^\s()']+))")


def _invalid(why: str) -> ApiError:
    return ApiError(400, "BadRequestInvalid", f"Invalid $filter expression: {why}. Supported: "
                                               "key eq 'value', key ne 'value', and, or, parentheses")


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise _invalid(f"unexpected text at {pos}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def parse_filter(text: str | None) -> MetadataFilter | None:
    if text is None or not text.strip():
        return None
    expr = text.strip()
    if expr.lower().startswith("metadata="):
        expr = expr[len("metadata="):]
    tokens = _tokens(expr)
    pos = 0

    def peek() -> tuple[str, str] | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> tuple[str, str]:
        nonlocal pos
        if pos >= len(tokens):
            raise _invalid("the expression ends too early")
        pos += 1
        return tokens[pos - 1]

    def parse_or() -> MetadataFilter:
        terms = [parse_and()]
        while (t := peek()) is not None and t[0] == "word" and t[1].lower() == "or":
            take()
            terms.append(parse_and())
        return terms[0] if len(terms) == 1 else (lambda md: any(f(md) for f in terms))

    def parse_and() -> MetadataFilter:
        terms = [parse_term()]
        while (t := peek()) is not None and t[0] == "word" and t[1].lower() == "and":
            take()
            terms.append(parse_term())
        return terms[0] if len(terms) == 1 else (lambda md: all(f(md) for f in terms))

    def parse_term() -> MetadataFilter:
        kind, value = take()
        if (kind, value) == ("paren", "("):
            inner = parse_or()
            if take() != ("paren", ")"):
                raise _invalid("a parenthesis is not closed")
            return inner
        if kind != "word" or value.lower() in ("and", "or", "eq", "ne"):
            raise _invalid(f"a metadata key is expected, not {value!r}")
        key = value
        op_kind, op = take()
        if op_kind != "word" or op.lower() not in ("eq", "ne"):
            raise _invalid(f"operator {op!r} is not supported")
        v_kind, literal = take()
        if v_kind != "str":
            raise _invalid(f"the value of {key!r} must be a quoted string")
        wanted = literal[1:-1].replace("''", "'")
        if op.lower() == "eq":
            return lambda md: md.get(key) == wanted
        return lambda md: md.get(key) != wanted

    predicate = parse_or()
    if pos != len(tokens):
        raise _invalid(f"unexpected {tokens[pos][1]!r}")
    return predicate
