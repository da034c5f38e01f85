"""``cvbulk projects list | create | delete``: manage Custom Vision projects."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..client._errors import BadRequestError
from ._common import CLIError, ExitCode, add_training_args, print_json
from ._format import (
    add_output_args,
    emit,
    group_parser,
    is_tty,
    is_uuid,
    leaf_parser,
    resolve,
    run_command,
    say,
    terminal_safe,
    to_json,
    training_client,
)

# What the service answers a create_project past the tier's project count (F0: 2).
PROJECT_LIMIT = "BadRequestExceedProjectLimit"

EXPORT_PLATFORMS = ("CoreML", "TensorFlow", "DockerFile", "ONNX", "VAIDK")

EPILOG = """\
examples:
  cvbulk projects list
  cvbulk projects create birds --description "garden birds"
  cvbulk projects create cutlery --detection
  cvbulk projects create flowers --domain "General (compact)" --export-platform ONNX
  cvbulk projects delete birds --yes

PROJECT is a project id or its exact name.
"""


def register(subparsers: Any) -> None:
    actions = group_parser(
        subparsers,
        "projects",
        help="list, create or delete projects",
        description="List, create or delete Custom Vision projects.",
        epilog=EPILOG,
        handler=run,
    )

    list_parser = leaf_parser(actions, "list", help="list the projects of the training resource")
    add_output_args(list_parser)
    add_training_args(list_parser)

    create = leaf_parser(
        actions,
        "create",
        help="create a project",
        description=(
            "Create a project. Without --domain: the General domain of the project's type "
            "(classification, or object detection with --detection)."
        ),
    )
    create.add_argument("name", metavar="NAME", help="the project's name")
    create.add_argument("--description", default=None, help="a description of the project")
    create.add_argument(
        "--domain", metavar="NAME|ID", default=None, help="the domain, by name or id (see `cvbulk domains`)"
    )
    kind = create.add_mutually_exclusive_group()
    kind.add_argument(
        "--classification-type",
        choices=("Multiclass", "Multilabel"),
        default=None,
        help="one tag per image (Multiclass) or several (Multilabel, the service's default)",
    )
    kind.add_argument("--detection", action="store_true", help="an object-detection project (images carry regions)")
    create.add_argument(
        "--export-platform",
        dest="export_platforms",
        action="append",
        choices=EXPORT_PLATFORMS,
        metavar="PLATFORM",
        default=None,
        help=f"a platform to export models to ({', '.join(EXPORT_PLATFORMS)}); repeat for several; "
        "needs a compact domain",
    )
    create.add_argument(
        "--allow-duplicate",
        action="store_true",
        help="create it even if a project already has this name (then refer to both by id)",
    )
    add_output_args(create)
    add_training_args(create)

    delete = leaf_parser(
        actions,
        "delete",
        help="delete a project with its images and iterations",
        description=(
            "Delete a project with all its images, tags and iterations. Asks first on a terminal; "
            "elsewhere --yes is required. The service refuses while an iteration is published "
            "(see `cvbulk unpublish`)."
        ),
    )
    delete.add_argument("project", metavar="PROJECT", help="project id or exact name")
    delete.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    add_training_args(delete)


def run(args: argparse.Namespace) -> int:
    body = {"list": _list, "create": _create, "delete": _delete}[args.action]
    return run_command(body, args)


async def _list(args: argparse.Namespace) -> int:
    async with training_client(args) as client:
        projects = await client.get_projects()
        domains = {str(d.id).lower(): d for d in await client.get_domains()}
    projects.sort(key=lambda p: str(p.name).lower())
    rows = []
    for p in projects:
        settings = p.settings
        domain_id = str(getattr(settings, "domain_id", "") or "").lower()
        domain = domains.get(domain_id)
        if domain is not None and domain.type == "ObjectDetection":
            kind = "ObjectDetection"
        else:  # a classification project says which kind
            kind = getattr(settings, "classification_type", None) or "Classification"
        rows.append([p.id, p.name, domain.name if domain else domain_id, kind, _short_time(p.created)])
    emit(args, projects, rows, ["ID", "NAME", "DOMAIN", "TYPE", "CREATED"])
    return 0


def _short_time(value: Any) -> str:
    text = value.isoformat() if hasattr(value, "isoformat") else str(value or "")
    return text[:19].replace("T", " ")


async def _pick_domain(client: Any, ref: str | None, *, detection: bool) -> Any:
    """The domain a NAME|ID names, of the project's type; the General one when none is named."""
    wanted_type = "ObjectDetection" if detection else "Classification"
    domains = await client.get_domains()
    if ref and is_uuid(ref):
        for domain in domains:
            if str(domain.id).lower() == ref.lower():
                if detection and str(domain.type) != wanted_type:
                    raise CLIError(f"domain {domain.name!r} is a {domain.type} domain, not ObjectDetection")
                return domain
        raise CLIError(f"no domain with id {ref} (see `cvbulk domains`)", ExitCode.USAGE)
    name = ref or "General"
    # Names repeat across types ("General" is both), so the project's type decides.
    same_name = [d for d in domains if str(d.name).lower() == name.lower()]
    typed = [d for d in same_name if str(d.type) == wanted_type]
    if typed:
        return typed[0]
    if same_name and ref:
        other = same_name[0]
        hint = " (add --detection)" if str(other.type) == "ObjectDetection" else " (drop --detection)"
        raise CLIError(f"domain {other.name!r} is a {other.type} domain{hint}", ExitCode.USAGE)
    if ref:
        names = sorted({str(d.name) for d in domains if str(d.type) == wanted_type})
        raise CLIError(f"no {wanted_type} domain named {ref!r}; known: {', '.join(names)}", ExitCode.USAGE)
    # No "General" on this service: leave the choice to the service's default.
    return None


async def _create(args: argparse.Namespace) -> int:
    async with training_client(args) as client:
        if not args.allow_duplicate:
            # The service accepts a second project with the same name, but then the name no longer
            # picks one project for the other commands.
            same = [p for p in await client.get_projects() if p.name == args.name]
            if same:
                raise CLIError(
                    f"a project named {args.name!r} already exists (id {same[0].id}); "
                    "choose another name or pass --allow-duplicate",
                    ExitCode.USAGE,
                )
        domain = None
        if args.domain or args.detection:
            domain = await _pick_domain(client, args.domain, detection=args.detection)
        try:
            project = await client.create_project(
                args.name,
                description=args.description,
                domain_id=domain.id if domain is not None else None,
                classification_type=args.classification_type,
                target_export_platforms=args.export_platforms,
            )
        except BadRequestError as exc:
            if exc.code != PROJECT_LIMIT:
                raise
            raise CLIError(
                f"the resource holds as many projects as its tier allows ({exc.message}); delete one "
                "(cvbulk projects list, then cvbulk projects delete PROJECT) or use an S0 resource "
                "(F0 allows 2 projects)",
                ExitCode.FATAL,
            ) from None
    if args.json:
        print_json(to_json(project))
    else:
        settings = project.settings
        kind = (
            "object detection"
            if args.detection
            else (getattr(settings, "classification_type", None) or "classification")
        )
        domain_text = f", domain {domain.name}" if domain is not None else ""
        say(f"created project {project.name!r} (id {project.id}; {kind}{domain_text})")
    return 0


async def _delete(args: argparse.Namespace) -> int:
    async with training_client(args) as client:
        project = await resolve(client, args.project)
        if not args.yes and not _confirm(
            f"delete project {project.name!r} (id {project.id}) with all its images and iterations?"
        ):
            say(f"nothing deleted: project {project.name!r} is left as it is")
            return 0  # the user's own answer, not an error
        await client.delete_project(project.id)
    say(f"deleted project {project.name!r} (id {project.id})")
    return 0


def _confirm(question: str) -> bool:
    # A script must say --yes: never block on a prompt nobody can answer.
    if not is_tty(sys.stdin):
        raise CLIError("refusing to delete without --yes when not on a terminal", ExitCode.USAGE)
    try:
        answer = input(terminal_safe(f"{question} [y/N] ")).strip().lower()
    except EOFError:
        answer = ""
    return answer in ("y", "yes")
