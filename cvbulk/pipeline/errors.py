"""The errors a job raises when it cannot run at all (a leaf module: it imports nothing of cvbulk).

Errors about one image are never raised: they are that image's outcome. These are about the whole run.
They carry no exit codes and no flag names: a message names an option of the job by its field name as
``{opt:NAME}`` (``"{opt:max_concurrency} must be at least 1"``); ``str(exc)`` shows it as the field name, and a front
end shows it in its own words (the command line: ``--max-concurrency``) with :meth:`PipelineError.render`.

    PipelineError
      ConfigError          the job was asked something it cannot do (options, labels, an ambiguous name)
        StateFileError     the state file belongs to another run, or is not a (healthy) state file
      ProjectNotFound      no project with that id or name
      FatalRunError        the run had to stop (training failed, the service stopped answering ...)
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["PipelineError", "ConfigError", "StateFileError", "ProjectNotFound", "FatalRunError"]

_OPTION = re.compile(r"\{opt:([a-z_][a-z0-9_]*)\}")


class PipelineError(Exception):
    """A job cannot go on. ``template`` is one line; ``{opt:NAME}`` marks the name of a job option."""

    def __init__(self, template: str) -> None:
        self.template = template
        super().__init__(self.render(lambda name: name))

    @property
    def options(self) -> tuple[str, ...]:
        """The job options the message names (field names, in order)."""
        return tuple(_OPTION.findall(self.template))

    def render(self, name_of: Callable[[str], str]) -> str:
        """The message with each ``{opt:NAME}`` in a front end's words (``name_of("dry_run") -> "--dry-run"``)."""
        return _OPTION.sub(lambda m: name_of(m.group(1)), self.template)


class ConfigError(PipelineError):
    """Usage or configuration: an option's value, a label file, an ambiguous project name, a missing folder."""


class StateFileError(ConfigError):
    """The state file is another run's, or damaged, or not a state file at all."""


class ProjectNotFound(PipelineError):
    """No project has that id or name."""


class FatalRunError(PipelineError):
    """The run started but cannot finish (training failed, the service is gone)."""

