"""The one exception hierarchy of cvbulk's client.

Every error the service (or the network) can give is one of these. None of them ever holds a key:
messages are built from the service's error body and the request's method and path only, and
``redact`` is applied to anything that came from outside.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

__all__ = [
    "CustomVisionError",
    "AuthenticationError",
    "NotFoundError",
    "BadRequestError",
    "RateLimitedError",
    "ServerError",
    "TransportError",
    "RequestTimeoutError",
    "ConnectionFailedError",
    "EndpointUnreachableError",
    "RetryBudgetExhausted",
    "BodyReadError",
    "TrainingFailedError",
    "TrainingTimeoutError",
    "error_for_status",
    "redact",
]

# Values that are secret by where they stand, whoever wrote them: SAS signatures (``sig=``), storage
# connection strings (``AccountKey=``, ``SharedAccessKey=``, ``SharedAccessSignature=``), key query
# parameters and key headers (``Training-Key: ...``, ``'Prediction-Key': '...'``, ``Authorization: ...``).
_VALUE = r"[^\s&;'\"<>,)\]}]+"
_SECRET_PLACES = (
    re.compile(r"(?i)(?<![A-Za-z0-9_-])(sig=)" + _VALUE),
    re.compile(r"(?i)(?<![A-Za-z0-9_-])((?:AccountKey|SharedAccessKey|SharedAccessSignature)=)[^;\s'\"]+"),
    re.compile(r"(?i)([?&](?:key|api-key|apikey|subscription-key|code)=)" + _VALUE),
    re.compile(
        r"(?i)(?<![A-Za-z0-9_-])((?:Training-Key|Prediction-Key|Ocp-Apim-Subscription-Key|api-key|x-api-key)"
        r"['\"]?\s*[:=]\s*['\"]?)" + _VALUE
    ),
    re.compile(r"(?i)(?<![A-Za-z0-9_-])(Authorization['\"]?\s*[:=]\s*['\"]?(?:(?:Bearer|Basic|SharedKey)\s+)?)"
               + _VALUE),
)
_MASK = "***"
# where a value stands: after "=", a quoted value after ":", or after a secret-sounding name and ":"
_VALUE_PLACE = (
    r"(=\s*['\"]?|:\s*['\"]|(?i:key|secret|token|password|passwd|pwd|auth\w*|credentials?)['\"]?\s*:\s*['\"]?)"
)


def _word_like(secret: str) -> bool:
    """A secret that could be a word of prose ("wrong", "secret", "test1"): short, or letters only."""
    return len(secret) < 12 or secret.isalpha()


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with secrets replaced by ``***``: by token, never by blanking words out of prose.

    Always hidden, whatever ``secrets`` says: SAS signatures (``sig=...``), storage connection string keys
    (``AccountKey=...``), key query parameters (``?key=...``) and key headers (``Training-Key: ...``).
    Each given secret is hidden wherever it appears when it looks like a key (12 characters or more, not
    only letters; its percent-encoded form too); one that could be a word ("wrong") is hidden only where it
    stands as a value (after ``=``, a quoted value after ``:``, after a secret-sounding name and ``:``), so
    that a message saying "wrong" keeps its word.
    """
    for place in _SECRET_PLACES:
        text = place.sub(lambda m: m.group(1) + _MASK, text)
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        forms = {secret, quote(secret, safe="")}
        for form in forms:
            if _word_like(secret):
                # only as a whole value: "x=wrong", "'x': 'wrong'", "Some-Key: wrong"; not "is wrong: wrong"
                pattern = _VALUE_PLACE + re.escape(form) + r"(?![A-Za-z0-9_\-~+/%]|\.[A-Za-z0-9])"
                text = re.sub(pattern, lambda m: m.group(1) + _MASK, text)
            else:
                text = text.replace(form, _MASK)
    return text


class CustomVisionError(Exception):
    """Base of every error raised by the client.

    ``status`` is the HTTP status (None when no answer came), ``code`` the spec's error code
    (``NotFoundProject``, ``BadRequestImageBatch``, ``429``...) and ``message`` the service's words.
    """

    retryable: bool = False
    retry_after: float | None = None  # seconds the service asked us to wait (429, some 503)

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        operation: str | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.operation = operation
        super().__init__(self.__str__())

    def __str__(self) -> str:
        parts = []
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.code and self.code != str(self.status):
            parts.append(f"{self.code}")
        head = " ".join(parts)
        text = f"{head} - {self.message}" if head else self.message
        return f"{self.operation}: {text}" if self.operation else text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, "
            f"message={self.message!r}, operation={self.operation!r})"
        )

    def __reduce__(self) -> Any:  # keep pickling (and so multiprocessing) working with keyword args
        return (_rebuild, (type(self), self.message, self.status, self.code, self.operation))


def _rebuild(cls: Any, message: str, status: int | None, code: str | None, operation: str | None) -> Any:
    return cls(message, status=status, code=code, operation=operation)


class AuthenticationError(CustomVisionError):
    """401 or 403: a wrong or missing key, or a key for another resource or endpoint."""


class NotFoundError(CustomVisionError):
    """404: the project, tag, iteration, image or published name does not exist."""


class BadRequestError(CustomVisionError):
    """400 (and 413/415): the request is wrong; sending it again will not help."""


class _RetryAfter:
    """For 429 and 5xx: ``retry_after`` is the wait the service asked for (Retry-After), if any."""

    retry_after: float | None

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)  # type: ignore[call-arg]  # the next class is CustomVisionError

    def __reduce__(self) -> Any:
        state = (self.message, self.status, self.code, self.operation)  # type: ignore[attr-defined]
        return (_rebuild_retry_after, (type(self), *state, self.retry_after))


def _rebuild_retry_after(
    cls: Any, message: str, status: int | None, code: str | None, operation: str | None, retry_after: float | None
) -> Any:
    return cls(message, status=status, code=code, operation=operation, retry_after=retry_after)


class RateLimitedError(_RetryAfter, CustomVisionError):
    """429: over the tier's rate limit. ``retry_after`` is the wait the service asked for, if any."""

    retryable = True


class ServerError(_RetryAfter, CustomVisionError):
    """5xx: the service failed; the request may be retried. ``retry_after`` as for 429, if given."""

    retryable = True


class TransportError(CustomVisionError):
    """No HTTP answer: the connection failed, was dropped, or timed out."""

    retryable = True


class ConnectionFailedError(TransportError):
    """The connection could not be made or was dropped mid-request."""


class EndpointUnreachableError(ConnectionFailedError):
    """The endpoint was never reached: its host does not resolve, nothing listens on its port, TLS fails,
    or it has not answered one HTTP request for ``Timeouts.first_contact`` seconds.

    Raised before the client's first HTTP answer only, at once and never retried: these do not heal by
    waiting, and a wrong endpoint should be said within seconds. The message names the host, never a key.
    """

    retryable = False


class RequestTimeoutError(TransportError):
    """The request took longer than the configured timeout."""


class BodyReadError(CustomVisionError):
    """An image body's own source failed while the request was written (a file changed or vanished since it was
    sized, a blob deleted or its storage account gone): not the service's fault, so not retried here.

    ``error`` is the source's exception, as it was raised (an ``OSError``, a storage error...).
    ``source_gone``: the error says so itself (a true ``fatal`` attribute, as a storage account that stopped
    answering has): every other image of that source would fail alike, so a caller stops rather than go on.
    """

    retryable = False

    @property
    def source_gone(self) -> bool:
        """True when the source's error is fatal for the source as a whole, not for this image only."""
        return bool(getattr(self.error, "fatal", False))

    def __init__(self, error: BaseException, *, operation: str | None = None) -> None:
        self.error = error
        super().__init__(f"reading the image: {_one_line_of(error)}", operation=operation)

    def __reduce__(self) -> Any:
        return (_rebuild_body_error, (self.error, self.operation))


def _rebuild_body_error(error: BaseException, operation: str | None) -> BodyReadError:
    return BodyReadError(error, operation=operation)


def _one_line_of(error: BaseException) -> str:
    # a storage error carries its item's own line (``reason``: the blob named, not its whole location)
    text = getattr(error, "reason", None) or str(error) or type(error).__name__
    return redact(" ".join(str(text).split()))


class RetryBudgetExhausted(CustomVisionError):
    """Retried as many times (or as long) as allowed; ``last_error`` is the final failure.

    ``throttled_for`` is set when the throttle budget ran out: the seconds already waited on 429s.
    """

    retryable = True

    def __init__(self, last_error: CustomVisionError, attempts: int, *, throttled_for: float | None = None) -> None:
        self.last_error = last_error
        self.attempts = attempts
        self.throttled_for = throttled_for
        if throttled_for is None:
            head = f"gave up after {attempts} attempts"
        else:
            head = f"still throttled after {attempts} attempts and {throttled_for:.0f} s of waiting"
        super().__init__(
            f"{head}: {last_error.message}",
            status=last_error.status,
            code=last_error.code,
            operation=last_error.operation,
        )

    def __reduce__(self) -> Any:
        return (_rebuild_exhausted, (self.last_error, self.attempts, self.throttled_for))


def _rebuild_exhausted(last_error: CustomVisionError, attempts: int, throttled_for: float | None) -> Any:
    return RetryBudgetExhausted(last_error, attempts, throttled_for=throttled_for)


class TrainingFailedError(CustomVisionError):
    """``wait_for_iteration``: the iteration's training ended Failed. ``iteration`` is its last state."""

    def __init__(self, message: str, *, iteration: Any = None, operation: str | None = None) -> None:
        self.iteration = iteration
        super().__init__(message, operation=operation)

    def __reduce__(self) -> Any:
        return (_rebuild_training, (type(self), self.message, self.iteration, self.operation))


class TrainingTimeoutError(TrainingFailedError):
    """``wait_for_iteration``: still training when the timeout ran out (training goes on in the service)."""


def _rebuild_training(cls: Any, message: str, iteration: Any, operation: str | None) -> Any:
    return cls(message, iteration=iteration, operation=operation)


def error_for_status(
    status: int,
    message: str,
    *,
    code: str | None = None,
    operation: str | None = None,
    retry_after: float | None = None,
) -> CustomVisionError:
    """The exception class that fits an HTTP status."""
    if status == 429:
        return RateLimitedError(message, retry_after=retry_after, status=status, code=code, operation=operation)
    if status >= 500:
        return ServerError(message, retry_after=retry_after, status=status, code=code, operation=operation)
    cls: type[CustomVisionError] = CustomVisionError
    if status in (401, 403):
        cls = AuthenticationError
    elif status == 404:
        cls = NotFoundError
    elif 400 <= status < 500:
        cls = BadRequestError
    return cls(message, status=status, code=code, operation=operation)
