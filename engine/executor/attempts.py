"""Running an action on a host: the call, ``until``/``retries``/``delay``, then
``changed_when``/``failed_when`` and the health check, and the task's log."""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine import actions, secrets
from engine.actions.base import ActionContext, Result
from engine.errors import HealthCheckError, SmlplayError, TemplateError
from engine.executor.handlers import HandlersMixin
from engine.executor.outcome import TaskResult
from engine.executor.results import _plain
from engine.health import HealthSpec, wait_healthy
from engine.load.yaml import position_of
from engine.model import Task
from engine.transport.base import ProcessRecord
from engine.units import rendered_duration
from engine.vars import VarScope


class AttemptsMixin(HandlersMixin):
    def _attempt(
        self, task: Task, host: str, act: actions.Action, ctx: ActionContext, args: Any,
        scope: VarScope, health: Mapping[str, Any] | None, item: Any,
    ) -> TaskResult:
        """Call the action (again while ``until`` is false), then apply the result keywords.
        An error in ``until``/``changed_when``/``failed_when`` fails the task over the
        action's result (Ansible keeps ``changed``, ``rc``...)."""
        retries, delay = self._retries(task, scope)
        attempts = 0
        result: Result = {}
        try:
            while True:
                attempts += 1
                result = self._call(act, ctx, args, task)
                if task.until is None:
                    break
                rscope = scope.with_magic(**{task.register or "result": result})
                if self.templar.condition(task.until, rscope, keyword="until", pos=position_of(task.until) or task.pos):
                    break
                if attempts >= max(retries, 1):  # ansible-core 2.19: `retries` attempts in all
                    result["failed"] = True
                    result.setdefault("msg", f"'until' condition still false after {attempts} attempts")
                    break
                self.sink.emit("retry", task=task.display_name, host=host, retries_left=retries - attempts)
                if self.control.cancel.wait(delay) or self.processes.failure.is_set():
                    result["failed"] = True
                    result["msg"] = "interrupted while retrying"
                    break
            if task.until is not None:
                result["attempts"] = attempts
            self._result_keywords(task, scope, result)
        except SmlplayError as exc:
            outcome = TaskResult.from_error(task, exc, result)
            self._write_log(ctx.log_path, task, outcome.data, item)
            return outcome
        if health and not result.get("failed"):
            result["health"] = self._health(task, host, ctx.transport, health, result)
            if result["health"].get("failed"):
                result["failed"] = True
                result["msg"] = result["health"]["msg"]
        self._write_log(ctx.log_path, task, result, item)
        return TaskResult(result)

    def _retries(self, task: Task, scope: VarScope) -> tuple[int, float]:
        raw = self._render(task.retries, scope, task) if task.retries is not None else (3 if task.until is not None else 0)
        if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
            try:
                raw = int(str(raw))
            except ValueError:
                raise TemplateError(f"retries must be a non-negative integer, got {raw!r}", pos=position_of(task.retries) or task.pos, context=task.where()) from None
        delay = rendered_duration(self._render(task.delay, scope, task) or 0, what="delay", pos=position_of(task.delay) or task.pos, context=task.where())
        return raw, delay

    def _result_keywords(self, task: Task, scope: VarScope, result: Result) -> None:
        if not (task.changed_when or task.failed_when):
            return
        rscope = scope.with_magic(**{task.register or "result": result})
        if task.changed_when is not None:
            result["changed"] = all(self.templar.condition(c, rscope, keyword="changed_when", pos=position_of(c) or task.pos) for c in task.changed_when)
        if task.failed_when is not None:
            # a list is an AND, like changed_when (ansible-core 2.19, tests/ansible failed_when_list_or)
            result["failed"] = all(self.templar.condition(c, rscope, keyword="failed_when", pos=position_of(c) or task.pos) for c in task.failed_when)
            if not result["failed"]:
                result.pop("msg", None) if result.get("rc", 0) != 0 else None

    def _call(self, act: actions.Action, ctx: ActionContext, args: dict[str, Any], task: Task) -> Result:
        from engine.errors import UnreachableError

        try:
            return dict(act.run(ctx, args))
        except UnreachableError as exc:
            raise _Unreachable(exc.message) from None
        except SmlplayError as exc:
            if exc.pos is None:
                exc.pos = task.pos
            return {"failed": True, "msg": str(exc.with_context(task.where())), "error": type(exc).__name__}
        except Exception as exc:
            trace = traceback.format_exc()
            from engine.runs import append_private, private_mkdir

            private_mkdir(ctx.log_path.parent)
            append_private(ctx.log_path, secrets.mask_text(trace))
            return {"failed": True, "msg": f"internal error in action '{act.name}': {type(exc).__name__}: {exc} (traceback in {ctx.log_path})"}

    def _health(self, task: Task, host: str, transport: Any, health: Mapping[str, Any], result: Result) -> Result:
        spec = HealthSpec.from_rendered(health, default_timeout=self.options.health_timeout, source=task.health, context=task.where())
        watched: ProcessRecord | None = None
        if spec.process:
            watched = self.processes.get(host, spec.process)
        elif isinstance(result.get("process"), Mapping):
            watched = ProcessRecord.from_dict(result["process"])
        self.sink.emit("health_start", task=task.display_name, host=host, probes=spec.describe())

        def evaluate(expr: str, data: dict[str, Any]) -> Any:
            return self.templar.evaluate(expr, data)

        def death_message() -> str:
            death = self.processes.check()
            return death.message() if death else "a critical process died"

        try:
            return wait_healthy(
                spec,
                transport,
                watched=watched,
                evaluate=evaluate,
                progress=lambda msg: self.sink.emit("health_progress", task=task.display_name, host=host, message=msg),
                cancel=self.control.cancel,
                failure=self.processes.failure,
                death_message=death_message,
            )
        except HealthCheckError as exc:
            return {"failed": True, "healthy": False, "msg": exc.message}

    def _transport(self, host: str) -> Any:
        from engine.errors import UnreachableError

        try:
            return self.transports.get(host)
        except UnreachableError as exc:
            raise _Unreachable(exc.message) from None

    def _task_log(self, host: str, task: Task) -> Path:
        from engine.runs import private_mkdir, slug

        directory = self.run_dir / "logs" / slug(host)
        private_mkdir(directory)
        return directory / f"{slug(task.display_name, limit=80)}.log"

    def _write_log(self, path: Path, task: Task, result: Result, item: Any) -> None:
        if task.no_log:
            text = "(output hidden by no_log)\n"
        else:
            parts = []
            if item is not None:
                parts.append(f"--- item: {_plain(item)}")
            if "cmd" in result:
                parts.append(f"$ {result['cmd']}")
            for key in ("stdout", "stderr", "msg"):
                if result.get(key):
                    parts.append(f"[{key}]\n{result[key]}")
            text = "\n".join(parts) + "\n" if parts else ""
        if text:
            from engine.runs import append_private

            append_private(path, secrets.mask_text(text))

class _Unreachable(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message



class _Progress:
    """Progress lines of a long action (an allocation waiting in the queue)."""

    def __init__(self, sink: Any, task: str) -> None:
        self.sink = sink
        self.task = task

    def progress(self, host: str, message: str) -> None:
        self.sink.emit("health_progress", task=self.task, host=host, message=message)


