"""One task on one host: loop items, the action call, retries, result keywords, health."""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine import actions, secrets
from engine.actions.base import ActionContext, Result
from engine.errors import HealthCheckError, SmlplayError, TemplateError, ValidationError
from engine.executor.context import HostState
from engine.executor.handlers import HandlersMixin
from engine.executor.inherited import Inherited
from engine.executor.planner import _NoTransport
from engine.executor.results import _arg_pos, _censor, _plain, _status, _summary, has_unknown
from engine.executor.state import PlayFailed
from engine.health import HealthSpec, wait_healthy
from engine.load.schema import validate
from engine.load.yaml import position_of
from engine.model import Task
from engine.template import Unknown, UnknownValue
from engine.transport.base import ProcessRecord
from engine.units import parse_duration, rendered_duration
from engine.vars import VarScope


class TaskMixin(HandlersMixin):
    def _run_on_host(self, task: Task, host: str, inherited: Inherited, *, handler: bool = False) -> tuple[str, Result]:
        state = self._host(host)
        try:
            scope = self.scope_for(host, task, inherited)
            if task.loop is None:
                if not self._when(task, scope, inherited, host):
                    result: Result = {"skipped": True, "changed": False}
                    return self._finish(task, host, state, "skipped", result, handler=handler)
                result = self._run_item(task, host, scope, inherited, None)
            else:
                items = self._loop_items(task, scope)
                item_results = []
                for index, item in enumerate(items):
                    iscope = self._item_scope(task, scope, item, items, index)
                    if not self._when(task, iscope, inherited, host):
                        item_results.append({"skipped": True, "changed": False, task.loop_control.loop_var: item})
                        continue
                    r = self._run_item(task, host, iscope, inherited, item)
                    r[task.loop_control.loop_var] = item
                    if task.loop_control.label is not None:
                        r["_label"] = self.templar.render(task.loop_control.label, iscope)
                    item_results.append(r)
                    self.sink.emit("item_result", task=task.display_name, host=host, item=_plain(r.get("_label", item)), status=_status(r))
                    if r.get("failed") and not self._ignored(task, inherited):
                        break
                    if task.loop_control.pause:
                        time.sleep(rendered_duration(self._render(task.loop_control.pause, iscope, task), what="loop_control.pause", pos=position_of(task.loop_control.pause) or task.pos, context=task.where()))
                result = {
                    "results": item_results,
                    "changed": any(r.get("changed") for r in item_results),
                    "failed": any(r.get("failed") for r in item_results),
                    "skipped": bool(item_results) and all(r.get("skipped") for r in item_results),
                }
                if result["failed"]:
                    result["msg"] = next(r.get("msg", "") for r in item_results if r.get("failed"))
        except _Unreachable as exc:
            return self._finish(task, host, state, "unreachable", {"unreachable": True, "failed": True, "msg": exc.message}, handler=handler)
        except SmlplayError as exc:
            if isinstance(exc, ValidationError | TemplateError) and self.options.dry_run:
                raise
            if exc.pos is None:
                exc.pos = task.pos
            result = {"failed": True, "msg": str(exc.with_context(task.where())), "error": type(exc).__name__}
        if result.get("skipped") and not result.get("failed"):
            status = "skipped"
        elif result.get("failed"):
            status = "failed"
        elif result.get("changed"):
            status = "changed"
        else:
            status = "ok"
        return self._finish(task, host, state, status, result, handler=handler, inherited=inherited)

    def _finish(self, task: Task, host: str, state: HostState, status: str, result: Result, *, handler: bool = False, inherited: Inherited | None = None) -> tuple[str, Result]:
        ignored = status == "failed" and self._ignored(task, inherited or Inherited())
        if task.register:
            state.facts[task.register] = Unknown(f"registered: {task.register}") if self.options.dry_run and status != "skipped" and not result.get("_ran") else result
        if status == "changed" and task.notify:
            for name in task.notify:
                if name not in state.notified:
                    state.notified.append(name)
                    self._persist_notify(task, host, name)
        if self.options.dry_run and task.notify:
            for name in task.notify:
                if name not in state.notified:
                    state.notified.append(name)
        counter = {"ok": "ok", "changed": "changed", "skipped": "skipped", "unreachable": "unreachable", "failed": "failed"}[status]
        if ignored:
            state.stats["ignored"] += 1
            state.stats["ok"] += 1
        else:
            state.stats[counter] += 1
            if status == "changed":
                state.stats["ok"] += 1
        no_log = task.no_log or (inherited.no_log if inherited else False)
        if no_log:
            secrets.remember_no_log(result)
        shown = _censor(result) if no_log else result
        self.sink.emit("task_result", task=task.display_name, host=host, status=status, ignored=ignored, result=_summary(shown), handler=handler, action=task.action)
        final = "ok" if ignored else status
        return final, result

    def _run_item(self, task: Task, host: str, scope: VarScope, inherited: Inherited, item: Any) -> Result:
        assert task.action is not None
        act = actions.get(task.action)
        if task.vars and (task.no_log or inherited.no_log):
            secrets.remember_vars(scope, task.vars)
        args = self._render(task.args, scope, task)
        if not has_unknown(args):
            try:
                args = validate(act.schema, args, what=f"'{task.action}' arguments", context=task.where())
            except ValidationError as exc:
                exc.pos = _arg_pos(task.args, exc) or task.pos
                raise
        environment: dict[str, str] = {}
        for env in (*inherited.environment, task.environment):
            rendered = self._render(env, scope, task) if env else {}
            if rendered and not isinstance(rendered, Mapping):  # "{{ var }}" that is not a mapping
                raise TemplateError(
                    f"environment must render to a mapping of names to values, got {type(rendered).__name__}",
                    pos=position_of(env) or task.pos, context=task.where(),
                )
            environment.update({str(k): str(v) for k, v in (rendered or {}).items()})
        delegate = task.delegate_to or inherited.delegate_to
        target = str(self._render(delegate, scope, task)) if delegate else host
        if act.name in ("process", "stop") and isinstance(args, Mapping):
            self._book_ports(act.name, args, target, task)
        timeout = self._render(task.timeout, scope, task) if task.timeout is not None else None
        if timeout is not None and not has_unknown(timeout):  # a dry-run checks it too
            timeout = rendered_duration(timeout, what="timeout", pos=position_of(task.timeout) or task.pos, context=task.where())
        health = self._render(task.health, scope, task) if task.health else None
        runs_in_dry_run = task.check_mode is False and act.read_only and not self._placeholder(target)
        plan_only = self.options.dry_run and not runs_in_dry_run
        if plan_only and task.action != "set_fact":  # set_fact runs in a dry-run too
            planned = self._plan_step(task, host, act, args, health, item, target, scope, inherited)
            if not act.plans or (act.name == "fail" and not (task.when or inherited.when)):
                return planned  # an unconditional `fail` is a deliberate run-time failure
            if not self._decidable(task, scope, inherited):
                return planned  # its `when` depends on the run: checked then
        transport: Any = _NoTransport(target) if plan_only else self._transport(target)
        # a dry-run writes nothing (its run_dir is a placeholder)
        log_path = self.run_dir / "dry-run.log" if self.options.dry_run else self._task_log(host, task)
        ctx = ActionContext(
            host=host,
            transport=transport,
            scope=scope,
            templar=self.templar,
            processes=self.processes,
            run_dir=self.run_dir,
            task_name=task.display_name,
            log_path=log_path,
            role_path=task.role.role.path if task.role else None,
            playbook_dir=self.playbook.basedir,
            environment=environment,
            timeout=parse_duration(timeout, what="timeout") if timeout is not None else None,
            check_mode=self.options.dry_run,
            facts=self._host(host).facts,
            add_host=lambda name, groups, hostvars: self.inventory.add_host(name, groups, hostvars),
            push_teardown=self._teardown_pusher(task, host, inherited),
            cancel_event=self.control.cancel,
            reporter=_Progress(self.sink, task.display_name),
        )
        if self.options.dry_run:  # an action that plans (see Action.plans)
            try:
                result = dict(act.run(ctx, args))
            except UnknownValue:
                return planned  # depends on what only the run knows: checked then
            except SmlplayError as exc:
                if exc.pos is None:  # an assert's condition, rendered: the task as written
                    exc.pos = task.pos
                raise exc.with_context(task.where()) from None
            if result.get("failed"):
                # Goes through rescue/ignore_errors like a real failure; render_plan turns a
                # host that ends failed into an input error (exit 2), before anything runs.
                self.plan_failures.append(
                    (host, ValidationError(str(result.get("msg")), pos=task.pos, context=task.where()))
                )
            return {**result, "_ran": True}
        retries_raw = self._render(task.retries, scope, task) if task.retries is not None else (3 if task.until is not None else 0)
        if isinstance(retries_raw, bool) or not isinstance(retries_raw, int) or retries_raw < 0:
            try:
                retries_raw = int(str(retries_raw))
            except ValueError:
                raise TemplateError(f"retries must be a non-negative integer, got {retries_raw!r}", pos=position_of(task.retries) or task.pos, context=task.where()) from None
        retries = retries_raw
        delay = rendered_duration(self._render(task.delay, scope, task) or 0, what="delay", pos=position_of(task.delay) or task.pos, context=task.where())
        attempts = 0
        while True:
            attempts += 1
            result = self._call(act, ctx, args, task)
            if task.until is None:
                break
            rscope = scope.with_magic(**{task.register or "result": result})
            if self.templar.condition(task.until, rscope, keyword="until", pos=position_of(task.until) or task.pos):
                break
            if attempts > int(retries):
                result["failed"] = True
                result.setdefault("msg", f"'until' condition still false after {attempts} attempts")
                break
            self.sink.emit("retry", task=task.display_name, host=host, retries_left=int(retries) - attempts + 1)
            if self.control.cancel.wait(delay) or self.processes.failure.is_set():
                result["failed"] = True
                result["msg"] = "interrupted while retrying"
                break
        if task.until is not None:
            result["attempts"] = attempts
        rscope = scope.with_magic(**{task.register or "result": result}) if (task.changed_when or task.failed_when) else scope
        if task.changed_when is not None:
            result["changed"] = all(self.templar.condition(c, rscope, keyword="changed_when", pos=position_of(c) or task.pos) for c in task.changed_when)
        if task.failed_when is not None:
            result["failed"] = any(self.templar.condition(c, rscope, keyword="failed_when", pos=position_of(c) or task.pos) for c in task.failed_when)
            if not result["failed"]:
                result.pop("msg", None) if result.get("rc", 0) != 0 else None
        if health and not result.get("failed"):
            result["health"] = self._health(task, host, transport, health, result)
            if result["health"].get("failed"):
                result["failed"] = True
                result["msg"] = result["health"]["msg"]
        self._write_log(log_path, task, result, item)
        result["_ran"] = True
        return result

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
            from engine.runs import private_mkdir, private_opener

            private_mkdir(ctx.log_path.parent)
            with open(ctx.log_path, "a", encoding="utf-8", opener=private_opener) as f:
                f.write(secrets.mask_text(trace))
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
            from engine.runs import private_opener

            with open(path, "a", encoding="utf-8", opener=private_opener) as f:
                f.write(secrets.mask_text(text))

    def _check_interrupt(self) -> None:
        if self.control.cancel.is_set():
            raise PlayFailed(self.control.reason or "interrupted")
        death = self.processes.check() if not self.options.dry_run else None
        if death is not None:
            self.sink.emit("process_died", host=death.record.host, name=death.record.name, log=death.record.log, tail=death.tail)
            raise PlayFailed(death.message())

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


