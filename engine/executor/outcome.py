"""What a task did on one host (or for one loop item): the executor's typed result.

``data`` is what ``register`` stores and templates see: Ansible's module result
(``changed``, ``failed``, ``rc``, ``stdout``, ``results`` of a loop...). How the executor
got it -- planned or run, the item's label, the engine error behind a failure -- lives
beside it, never in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from engine.errors import SmlplayError, ValidationError
from engine.model import Task

Status = Literal["ok", "changed", "skipped", "failed", "unreachable"]


@dataclass
class TaskResult:
    data: dict[str, Any] = field(default_factory=dict)
    #: the action ran (False: only planned, in a dry-run: ``register`` holds a placeholder)
    ran: bool = True
    #: ``loop_control.label``, rendered: how the item is shown
    label: Any = None
    #: the engine error a failure comes from (a dry-run raises it if the host ends failed)
    error: SmlplayError | None = None

    @property
    def status(self) -> Status:
        if self.data.get("unreachable"):
            return "unreachable"
        if self.data.get("failed"):
            return "failed"
        if self.data.get("skipped"):
            return "skipped"
        return "changed" if self.data.get("changed") else "ok"

    @classmethod
    def skipped(cls, **data: Any) -> TaskResult:
        return cls({"skipped": True, "changed": False, **data}, ran=False)

    @classmethod
    def unreachable(cls, message: str) -> TaskResult:
        return cls({"unreachable": True, "failed": True, "msg": message})

    @classmethod
    def from_error(cls, task: Task, exc: SmlplayError, data: dict[str, Any] | None = None) -> TaskResult:
        """A template error, an undefined variable, a bad ``loop``/``when``: a failure of the
        task (Ansible 2.19), over what the action returned if it had run."""
        if exc.pos is None:
            exc.pos = task.pos
        exc = exc.with_context(task.where())
        return cls({**(data or {}), "failed": True, "msg": str(exc), "error": type(exc).__name__}, error=exc)

    @classmethod
    def of_items(cls, items: Sequence[TaskResult], loop_var: str, values: Sequence[Any]) -> TaskResult:
        """A loop's result: every item's data under ``results`` (each with its loop variable)."""
        results = [{**r.data, loop_var: v} for r, v in zip(items, values, strict=True)]
        data: dict[str, Any] = {
            "results": results,
            "changed": any(r.get("changed") for r in results),
            "failed": any(r.get("failed") for r in results),
            # no items at all is a skip too (Ansible: "No items in the list")
            "skipped": all(r.get("skipped") for r in results),
        }
        failed = next((r for r in items if r.data.get("failed")), None)
        if failed is not None:
            data["msg"] = failed.data.get("msg", "")
        return cls(data, ran=bool(items) and all(r.ran for r in items), error=failed.error if failed else None)

    def plan_error(self, task: Task) -> SmlplayError:
        """What a dry-run reports when this failure leaves its host failed."""
        return self.error or ValidationError(str(self.data.get("msg")), pos=task.pos, context=task.where())
