"""Error types: every failure a user can cause has a type and an actionable message.

Errors are raised deep inside the engine and rendered once, at the edge (the CLI), so no
layer prints anything itself. Each error may carry a :class:`Position` pointing at the YAML
field that caused it; the CLI turns that into ``file:line:col`` plus a code frame.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Position:
    """A place in a source file. ``line`` and ``col`` are 1-based, as editors show them."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class SmlplayError(Exception):
    """Base of every error the engine reports to a user (never shown with a traceback)."""

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        pos: Position | None = None,
        context: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos
        self.context = context  # "task 'start server' in role 'router'"
        self.hint = hint

    def __str__(self) -> str:
        parts = []
        if self.pos is not None:
            parts.append(f"{self.pos}: ")
        parts.append(self.message)
        if self.context:
            parts.append(f" (in {self.context})")
        if self.hint:
            parts.append(f"\n  hint: {self.hint}")
        return "".join(parts)

    def with_context(self, context: str) -> SmlplayError:
        """Attach the task/role this error belongs to, unless a closer one is already known."""
        if self.context is None:
            self.context = context
        return self


class ValidationError(SmlplayError):
    """The input (YAML, schema, role arguments, CLI usage) is wrong. Nothing was executed."""

    exit_code = 2


class TemplateError(SmlplayError):
    """A Jinja2 expression or template failed to render (undefined variable, syntax, type)."""

    exit_code = 2


class UndefinedVariableError(TemplateError):
    """A template used a variable nothing defines (yet: a dry-run tells the two apart)."""


class TransportError(SmlplayError):
    """A command could not be run on a host (connection refused, authentication, timeout)."""


class UnreachableError(TransportError):
    """The host could not be reached at all; the recap counts it as unreachable."""


class SchedulerError(SmlplayError):
    """Slurm (or the local scheduler) refused or lost an allocation."""


class HealthCheckError(SmlplayError):
    """A health check did not pass before its deadline, or its process died while waiting."""


class TaskFailed(SmlplayError):
    """An action reported failure (non-zero rc, failed assertion, ``fail``)."""


class Interrupted(SmlplayError):
    """The run was interrupted by SIGINT/SIGTERM; teardown ran (or was aborted)."""

    exit_code = 130
