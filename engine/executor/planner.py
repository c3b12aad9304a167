"""The dry-run's plan: one step per rendered task and host, port claims, how hosts are reached."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import actions, undo
from engine.actions.base import Result
from engine.errors import SmlplayError, ValidationError
from engine.events import NullSink
from engine.executor.inherited import Inherited
from engine.executor.keywords import KeywordsMixin
from engine.executor.outcome import TaskResult
from engine.executor.ports import Claim, address_key
from engine.executor.results import _describe_args, _plain
from engine.health import HealthSpec
from engine.load.yaml import position_of
from engine.model import Task
from engine.secrets import NO_LOG_TEXT, censor_args
from engine.template import Unknown, UnknownValue
from engine.vars import VarScope


@dataclass
class PlanStep:
    """One rendered task on one host (what a dry-run shows and plan.json records)."""

    play: str
    host: str
    task: str
    action: str
    detail: str
    pos: str
    args: Any = None
    health: list[str] = field(default_factory=list)
    notify: list[str] = field(default_factory=list)
    condition: str | None = None
    item: Any = None
    label: Any = None  # loop_control.label, rendered: how the text plan names the item
    delegate_to: str | None = None
    via: str | None = None
    handler: bool = False

    def to_dict(self) -> dict[str, Any]:
        out = {k: _plain(v) for k, v in self.__dict__.items() if v not in (None, [], False)}
        return out



class PlannerMixin(KeywordsMixin):
    def _plan_step(self, task: Task, host: str, act: actions.Action, args: Any, health: Any, item: Any, target: str, scope: VarScope, inherited: Inherited) -> Result:
        try:
            detail = act.describe(args) if act.describe else _describe_args(args)
        except (KeyError, TypeError, UnknownValue):
            detail = _describe_args(args)
        if act.name in ("template", "copy") and isinstance(args, Mapping) and isinstance(args.get("src"), str):
            # Files are part of the plan: a missing or broken template is bad input (exit 2).
            kind = "templates" if act.name == "template" else "files"
            path = self._find_file(task, kind, args["src"])
            if act.name == "template":
                try:
                    body = self.templar.render_file(path, scope).rstrip("\n")
                except UnknownValue as exc:
                    body = f"(rendered at run time: it depends on {exc.unknown})"
                detail += f"\n--- {path.name} ---\n" + body
        step = PlanStep(
            play=self._play.name if self._play else "",
            host=host,
            task=self._title(task, host, inherited),
            action=act.name,
            detail=str(detail),
            pos=f"{task.pos.file}:{task.pos.line}",
            args=_plain(args),
            health=HealthSpec.from_rendered(health, source=task.health, context=task.where()).describe() if health else [],
            notify=list(task.notify),
            condition=self._condition(task, inherited),
            item=_plain(item),
            label=_plain(self._item_label(task, scope, item)) if task.loop_control.label is not None else None,
            delegate_to=target if target != host else None,
            via=self._via(target),
        )
        if task.no_log or inherited.no_log:  # a no_log task's arguments (and files) are not shown
            step.detail, step.args = NO_LOG_TEXT, censor_args(step.args)
        self._record_step(step)
        if act.teardown is not None and isinstance(args, Mapping):
            try:
                entry = act.teardown(args, target)
            except (KeyError, TypeError, ValueError, ValidationError, UnknownValue):
                entry = None  # its args depend on the run: the step above says so
            if entry is not None:
                self._plan_teardown(entry.to_dict(), task, host, inherited)
        return {"changed": bool(task.notify), "skipped": False}

    def _plan_undecided(self, task: Task, host: str, inherited: Inherited, exc: SmlplayError) -> TaskResult:
        """A task the dry-run cannot render because an include it did not expand may define
        what it uses: planned as decided at run time."""
        self._record_step(PlanStep(
            play=self._play.name if self._play else "", host=host, task=self._title(task, host, inherited),
            action=str(task.action), detail=f"(decided at run time: {exc.message})",
            pos=f"{task.pos.file}:{task.pos.line}", condition=self._condition(task, inherited),
        ))
        return TaskResult({"changed": False}, ran=False)

    @staticmethod
    def _condition(task: Task, inherited: Inherited) -> str | None:
        return " and ".join([str(w) for w, _ in inherited.when] + [str(w) for w in task.when]) or None

    def _teardown_pusher(self, task: Task, host: str, inherited: Inherited) -> Callable[[dict[str, Any]], None]:
        """What an action's ``ctx.push_teardown`` is: the run's stack, or in a dry-run the
        same stack with what the plan's TEARDOWN section shows about the entry."""
        if not self.options.dry_run:
            return self.teardown.push
        return lambda entry: self._plan_teardown(entry, task, host, inherited)

    def _plan_teardown(self, entry: dict[str, Any], task: Task, host: str, inherited: Inherited) -> None:
        typed = undo.from_dict(entry)
        how = typed.how({k: str(v) for k, v in self._shared_connection_vars(typed.host).items()})
        condition = self._condition(task, inherited)
        self.teardown.push(
            {
                **entry,
                "how": how,
                "task": self._title(task, host, inherited),
                "play": self._play.name if self._play else "",
                "pos": f"{task.pos.file}:{task.pos.line}",
                **({"condition": condition} if condition else {}),
            }
        )

    def _book_ports(self, action: str, args: Mapping[str, Any], host: str, task: Task) -> None:
        name = str(args.get("name"))
        if action == "stop":
            self.ports.release(host, name)
            return
        ports = args.get("ports") or []
        if not ports or any(isinstance(p, Unknown) for p in ports):
            return
        address = address_key(host, self.scope_for(host, None, Inherited()))
        where = f"{task.where()} ({task.pos})"
        self.ports.claim(address, [int(p) for p in ports], Claim(host, name, where), (position_of(task.args.get("ports")) if isinstance(task.args, Mapping) else None) or task.pos)

    def _via(self, host: str) -> str | None:
        """How a dry-run says a host is reached (srun step, SSH), so reviewers see where."""
        cv = self._shared_connection_vars(host)
        # the same text for every step of a host while its connection variables are equal
        cache: dict[str, tuple[Mapping[str, Any], str | None]] = self.__dict__.setdefault("_via_cache", {})
        hit = cache.get(host)
        if hit is not None and (hit[0] is cv or hit[0] == cv):
            return hit[1]
        text = self._describe_via(host, cv)
        cache[host] = (cv, text)
        return text

    def _describe_via(self, host: str, cv: Mapping[str, Any]) -> str | None:
        kind = cv.get("connection", "local")
        if kind == "srun":
            from engine.slurm.srun import ContainerFlags  # the Slurm package: srun hosts only

            try:
                runtime = ContainerFlags.from_vars(cv.get("container")).runtime
            except ValidationError:
                runtime = "? (invalid container settings)"
            return (
                f"srun step on node {cv.get('slurm_node')} of job {cv.get('slurm_job_id')} "
                f"through {cv.get('srun_gateway', 'localhost')}" + (f", container {runtime}" if runtime != "none" else "")
            )
        if kind == "ssh":
            user = f"{cv['ssh_user']}@" if cv.get("ssh_user") else ""
            return f"ssh {user}{cv.get('ssh_host', host)}:{cv.get('ssh_port', 22)}"
        return None

    def _find_file(self, task: Task, kind: str, name: str) -> Path:
        from engine.actions.base import find_file

        role_path = task.role.role.path if task.role else None
        cache: dict[tuple[str, str, Path | None], Path] = self.__dict__.setdefault("_found_files", {})
        key = (kind, name, role_path)
        if key in cache:  # a template rendered for 1,000 hosts is looked up once
            return cache[key]
        try:
            found = cache[key] = find_file(kind, name, role_path=role_path, playbook_dir=self.playbook.basedir)
            return found
        except ValidationError as exc:
            exc.pos = position_of(task.args.get("src")) if isinstance(task.args, Mapping) else task.pos
            raise exc.with_context(task.where()) from None

    def _record_step(self, step: PlanStep) -> None:
        record = step.to_dict()
        if self.plan:
            self.plan[-1]["steps"].append(record)
        if type(self.sink) is not NullSink:  # a dry-run's plan: nobody listens
            self.sink.emit("plan_step", **record)

class _NoTransport:
    """The transport a planning action gets in a dry-run: using it is a bug."""

    kind = "none"

    def __init__(self, host: str) -> None:
        self.host = host

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"a dry-run must not touch host {self.host} ({name})")


