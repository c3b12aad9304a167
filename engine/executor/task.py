"""One task on one host: its loop items, the plan or the action, and what is recorded."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from engine import actions, secrets
from engine.actions.base import ActionContext, Result
from engine.errors import SmlplayError, TemplateError, UndefinedVariableError, ValidationError
from engine.events import NullSink
from engine.executor.attempts import AttemptsMixin, _Progress, _Unreachable
from engine.executor.context import HostState
from engine.executor.inherited import Inherited
from engine.executor.outcome import TaskResult
from engine.executor.planner import _NoTransport
from engine.executor.results import _arg_pos, _censor, _plain, _summary, has_unknown
from engine.executor.state import PlayFailed
from engine.load.schema import validate
from engine.load.yaml import position_of
from engine.model import Task
from engine.template import Unknown, UnknownValue
from engine.units import parse_duration, rendered_duration
from engine.vars import VarScope

__all__ = ["TaskMixin", "_Unreachable"]


class TaskMixin(AttemptsMixin):
    def _run_on_host(self, task: Task, host: str, inherited: Inherited, *, handler: bool = False) -> tuple[str, Result]:
        state = self._host(host)
        try:
            scope = self.scope_for(host, task, inherited)
            if task.loop is None:
                outcome = self._one_item(task, host, scope, inherited, None)
            else:
                outcome = self._loop(task, host, scope, inherited)
        except _Unreachable as exc:
            outcome = TaskResult.unreachable(exc.message)
        except UndefinedVariableError as exc:
            if self.options.dry_run and state.open_world:  # an unexpanded include may define it
                outcome = self._plan_undecided(task, host, inherited, exc)
            else:
                outcome = TaskResult.from_error(task, exc)
        except SmlplayError as exc:
            # A template error, an undefined variable, `mandatory`, a bad loop or `when`: a
            # failure of this task on this host (Ansible 2.19), which ignore_errors and
            # rescue see -- in a dry-run too, where a host it leaves failed refuses the plan.
            outcome = TaskResult.from_error(task, exc)
        return self._finish(task, host, state, outcome, handler=handler, inherited=inherited)

    def _one_item(self, task: Task, host: str, scope: VarScope, inherited: Inherited, item: Any) -> TaskResult:
        if not self._when(task, scope, inherited, host):
            return TaskResult.skipped()
        return self._run_item(task, host, scope, inherited, item)

    def _loop(self, task: Task, host: str, scope: VarScope, inherited: Inherited) -> TaskResult:
        """Every item runs, whatever the others did (Ansible); an error rendering one item
        fails that item only."""
        items = self._loop_items(task, scope)
        outcomes: list[TaskResult] = []
        for index, item in enumerate(items):
            iscope = self._item_scope(task, scope, item, items, index)
            try:
                outcome = self._one_item(task, host, iscope, inherited, item)
            except SmlplayError as exc:
                outcome = TaskResult.from_error(task, exc)
            outcomes.append(outcome)
            if outcome.status == "skipped":
                continue
            outcome.label = self._item_label(task, iscope, item)
            if type(self.sink) is not NullSink:  # a dry-run's plan: nobody listens, build nothing
                self.sink.emit("item_result", task=task.display_name, host=host, item=_plain(outcome.label), status=outcome.status)
            if self.control.cancel.is_set() or self.processes.failure.is_set():
                break  # the run is stopping (a signal, a critical process died): no more items
            if task.loop_control.pause:
                time.sleep(rendered_duration(self._render(task.loop_control.pause, iscope, task), what="loop_control.pause", pos=position_of(task.loop_control.pause) or task.pos, context=task.where()))
        return TaskResult.of_items(outcomes, task.loop_control.loop_var, items[: len(outcomes)])

    def _finish(
        self, task: Task, host: str, state: HostState, outcome: TaskResult, *,
        handler: bool = False, inherited: Inherited | None = None,
    ) -> tuple[str, Result]:
        status = outcome.status
        try:
            ignored = status == "failed" and self._ignored(task, inherited or Inherited())
        except SmlplayError as exc:  # `ignore_errors: "{{ bad }}"`: the task fails with that
            ignored, outcome = False, TaskResult.from_error(task, exc, outcome.data)
        result = outcome.data
        if task.register:
            planned = self.options.dry_run and status != "skipped" and not outcome.ran
            state.facts[task.register] = Unknown(f"registered: {task.register}") if planned else result
        if task.notify and (status == "changed" or self.options.dry_run):
            for name in task.notify:
                if name not in state.notified:
                    state.notified.append(name)
                    if not self.options.dry_run:
                        self._persist_notify(task, host, name)
        if status == "failed" and not ignored:
            state.errors_cleared = False
            state.failure = (task, result)  # what a rescue sees as ansible_failed_task/result
            if self.options.dry_run:  # raised by render_plan if the host ends failed
                state.plan_error = outcome.plan_error(task)
        if ignored:
            # Ansible's counting: an ignored failure is ok + ignored, and changed if it changed
            state.stats["ignored"] += 1
            state.stats["ok"] += 1
            if result.get("changed"):
                state.stats["changed"] += 1
        else:
            state.stats[status] += 1
            if status == "changed":
                state.stats["ok"] += 1
        no_log = task.no_log or (inherited.no_log if inherited else False)
        if no_log:
            secrets.remember_no_log(result)
        if type(self.sink) is NullSink:  # a dry-run's plan: nobody listens, build nothing
            return ("ok" if ignored else status), result
        shown = _censor(result) if no_log else result
        self.sink.emit("task_result", task=task.display_name, host=host, status=status, ignored=ignored, result=_summary(shown), handler=handler, action=task.action)
        return ("ok" if ignored else status), result

    def _run_item(self, task: Task, host: str, scope: VarScope, inherited: Inherited, item: Any) -> TaskResult:
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
            planned = TaskResult(self._plan_step(task, host, act, args, health, item, target, scope, inherited), ran=False)
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
            # a failure goes through rescue/ignore_errors like a real one; render_plan turns
            # a host that ends failed into an input error (exit 2), before anything runs
            return TaskResult(result)
        return self._attempt(task, host, act, ctx, args, scope, health, item)

    def _check_interrupt(self) -> None:
        if self.control.cancel.is_set():
            raise PlayFailed(self.control.reason or "interrupted")
        death = self.processes.check() if not self.options.dry_run else None
        if death is not None:
            if self.processes.on_death is None:  # else it was announced when it was noticed
                self.sink.emit("process_died", host=death.record.host, name=death.record.name, log=death.record.log, tail=death.tail)
            raise PlayFailed(death.message())

