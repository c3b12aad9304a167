"""The executor: plays, blocks, tasks, loops, handlers -- the linear strategy.

A task runs on all its hosts in parallel (a thread pool bounded by ``forks``), then the
next task starts. The same code renders a dry-run: with ``dry_run`` set, actions are not
called, each rendered task is recorded as a plan step, and values that only exist after
execution (registered results) are :class:`~engine.template.Unknown` placeholders.
"""

from __future__ import annotations

import concurrent.futures as cf
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from engine import actions
from engine.actions.base import ActionContext, Result
from engine.errors import HealthCheckError, SmlplayError, TemplateError, ValidationError
from engine.events import EventSink
from engine.executor.context import HostState, RunControl, RunOptions
from engine.executor.ports import Claim, PortBook, address_key
from engine.executor.teardown import TeardownStack
from engine.health import HealthSpec, wait_healthy
from engine.inventory import Inventory
from engine.load.loader import Loader
from engine.load.schema import validate
from engine.load.yaml import load_file, position_of
from engine.model import Play, Playbook, Task
from engine.processes import ProcessRegistry
from engine.slurm.srun import ContainerFlags
from engine.template import Templar, Unknown, UnknownValue
from engine.transport.base import ProcessRecord
from engine.transport.pool import TransportPool, connection_vars
from engine.units import parse_duration
from engine.vars import Layer, VarScope

RESULT_KEYS_HIDDEN_BY_NO_LOG = ("stdout", "stderr", "stdout_lines", "stderr_lines", "msg", "cmd", "json", "content")


class PlayFailed(Exception):
    pass


@dataclass
class Inherited:
    """Keywords a block passes down to its tasks."""

    layers: tuple[Layer, ...] = ()
    when: tuple[tuple[Any, Any], ...] = ()  # (expression, position)
    tags: frozenset[str] = frozenset()
    ignore_errors: bool = False
    environment: tuple[Mapping[str, Any], ...] = ()
    no_log: bool = False
    delegate_to: Any = None
    run_once: bool = False

    def enter(self, block: Task) -> Inherited:
        layers = self.layers
        if block.vars:
            layers = (*layers, Layer("task vars", f"block at {block.pos}", block.vars))
        return Inherited(
            layers=layers,
            when=self.when + tuple((w, position_of(w) or block.pos) for w in block.when),
            tags=self.tags | block.tags,
            ignore_errors=self.ignore_errors or block.ignore_errors is True,
            environment=self.environment + ((block.environment,) if block.environment else ()),
            no_log=self.no_log or block.no_log,
            delegate_to=block.delegate_to or self.delegate_to,
            run_once=self.run_once or block.run_once is True,
        )


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


def _plain(value: Any) -> Any:
    if isinstance(value, Unknown):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


class Runner:
    """Runs (or, with ``options.dry_run``, renders) a playbook against an inventory."""

    def __init__(
        self,
        playbook: Playbook,
        inventory: Inventory,
        options: RunOptions,
        *,
        loader: Loader,
        sink: EventSink,
        run_dir: Path,
        run_id: str,
        control: RunControl | None = None,
        teardown: TeardownStack | None = None,
        on_state_change: Callable[[], None] | None = None,
        templar: Templar | None = None,
    ) -> None:
        self.playbook = playbook
        self.inventory = inventory
        self.options = options
        self.loader = loader
        self.sink = sink
        self.run_dir = run_dir
        self.run_id = run_id
        self.control = control or RunControl()
        self.templar = templar or Templar()
        self.hosts: dict[str, HostState] = {}
        self.transports = TransportPool(self._connection_vars)
        self.ports = PortBook()
        self.plan_failures: list[tuple[str, ValidationError]] = []
        self._on_state_change = on_state_change or (lambda: None)
        self.processes = ProcessRegistry(self.transports.get, on_change=self._on_state_change)
        self.teardown = teardown or TeardownStack(lambda _e: self._on_state_change())
        self.plan: list[dict[str, Any]] = []
        self._play: Play | None = None
        self._play_layers: list[Layer] = []
        self._play_hosts: list[str] = []
        self._started_at_task = options.start_at_task is None
        self.pending_handlers: list[dict[str, Any]] = []
        self.task_logs: dict[str, Path] = {}

    # ------------------------------------------------------------------------------------
    # playbook and plays
    # ------------------------------------------------------------------------------------
    def run(self) -> bool:
        """Run every play; return True if no host failed. Teardown is the caller's job
        (:func:`engine.executor.run.execute`), so it also happens on exceptions."""
        ok = True
        for play in self.playbook.plays:
            if self.control.cancel.is_set():
                break
            if not self.run_play(play):
                ok = False
                break
        return ok and not self.control.cancel.is_set()

    def run_play(self, play: Play) -> bool:
        self._play = play
        if self.options.dry_run and "{{" not in play.hosts:
            # groups an allocation adds exist by now (the dry-run adds placeholders), so a
            # name that matches nothing is a typo, not a group of the future
            self.inventory.check_pattern(play.hosts, pos=play.pos)
        hosts = self.inventory.select(play.hosts, limit=self.options.limit)
        hosts = [h for h in hosts if not self._host(h).failed and not self._host(h).unreachable]
        self._play_hosts = hosts
        self._play_layers = self._build_play_layers(play)
        self.sink.emit("play_start", play=play.name, hosts=hosts, pos=str(play.pos))
        plan_play: dict[str, Any] = {"name": play.name, "hosts": list(hosts), "pattern": play.hosts, "steps": [], "handlers": []}
        self.plan.append(plan_play)
        if not hosts:
            self.sink.emit("warning", message=f"play '{play.name}': no hosts matched '{play.hosts}'")
            return True
        for h in hosts:
            self._host(h).notified.clear()
        play_inherited = Inherited(tags=play.tags, environment=(play.environment,) if play.environment else ())
        failed_hosts: set[str] = set()
        try:
            failed_hosts = self.run_tasks(play.tasks, hosts, play_inherited)
            for h in failed_hosts:
                self._host(h).failed = True
        finally:
            # Handlers run even when the play failed (force_handlers, default true) or was
            # interrupted: they are how users tear down what they started.
            if play.force_handlers or not (failed_hosts or self.control.cancel.is_set()):
                self.flush_handlers(hosts, play_inherited)
        if self.options.dry_run:
            plan_play["handlers"] = [
                {"name": h.name, "listen": list(h.listen), "action": h.action, "pos": str(h.pos)} for h in play.handlers
            ]
        return not failed_hosts

    def _build_play_layers(self, play: Play) -> list[Layer]:
        layers = [Layer("play vars", f"play '{play.name}' ({play.pos})", play.vars)] if play.vars else []
        for name in play.vars_files:
            # vars_files may use extra vars and inventory vars; render the file name only
            scope = VarScope([*layers, *self.options.extra_vars], self.templar)
            rendered = self.templar.render(name, scope)
            path = Path(str(rendered))
            if not path.is_absolute():
                path = self.playbook.basedir / path
            data = load_file(path, pos=position_of(name))
            if data is None:
                continue
            validate(dict, data, what=f"vars file {path.name}")
            layers.append(Layer("play vars", f"vars_files {path}", data))
        return layers

    def _host(self, name: str) -> HostState:
        state = self.hosts.get(name)
        if state is None:
            state = self.hosts[name] = HostState(name)
        return state

    # ------------------------------------------------------------------------------------
    # variables
    # ------------------------------------------------------------------------------------
    def scope_for(self, host: str, task: Task | None, inherited: Inherited, *, with_task_vars: bool = True) -> VarScope:
        layers: list[Layer] = []
        role_scope = task.role if task is not None else None
        if role_scope is not None:
            role = role_scope.role
            spec_defaults = {n: s.default for n, s in role.argument_specs.items() if s.has_default}
            if spec_defaults:
                layers.append(Layer("role defaults", f"role '{role.name}' argument_specs", spec_defaults))
            if role.defaults:
                layers.append(Layer("role defaults", f"role '{role.name}' defaults", role.defaults))
        layers.extend(self.inventory.layers_for(host))
        layers.extend(self._play_layers)
        if role_scope is not None:
            if role_scope.role.vars:
                layers.append(Layer("role vars", f"role '{role_scope.name}' vars", role_scope.role.vars))
            if role_scope.params:
                layers.append(Layer("role vars", f"role '{role_scope.name}' parameters", role_scope.params))
        layers.extend(inherited.layers)
        if task is not None and with_task_vars and task.vars and not task.is_block:
            layers.append(Layer("task vars", f"{task.where()} ({task.pos})", task.vars))
        layers.append(Layer("host facts", f"host '{host}' facts", self._host(host).facts, templated=False))
        layers.extend(self.options.extra_vars)
        return VarScope(layers, self.templar, magic=self._magic(host, role_scope))

    def _magic(self, host: str, role_scope: Any) -> dict[str, Any]:
        magic: dict[str, Any] = {
            "inventory_hostname": host,
            "inventory_hostname_short": host.split(".")[0],
            "groups": self.inventory.groups_dict(),
            "group_names": [g for g in self.inventory.host_groups(host) if g not in ("all",)] if host in self.inventory.hosts else [],
            "hostvars": HostVars(self),
            "play_hosts": list(self._play_hosts),
            "ansible_play_hosts": list(self._play_hosts),
            "run_dir": str(self.run_dir),
            "run_id": self.run_id,
            "check_mode": self.options.dry_run,
            "playbook_dir": str(self.playbook.basedir),
            # the engine's own Python: roles default their python to it (simulated engine,
            # stand-ins), so a venv install works without PATH changes
            "smlplay_python": sys.executable,
        }
        if role_scope is not None:
            magic["role_name"] = role_scope.name
            magic["role_path"] = str(role_scope.role.path)
        return magic

    def _connection_vars(self, host: str) -> Mapping[str, Any]:
        if host in self.options.local_hosts:
            return {"connection": "local"}
        return connection_vars(self.scope_for(host, None, Inherited()))

    # ------------------------------------------------------------------------------------
    # task lists and blocks
    # ------------------------------------------------------------------------------------
    def run_tasks(self, tasks: Sequence[Task], hosts: list[str], inherited: Inherited) -> set[str]:
        """Run tasks in order on ``hosts``; a host that fails stops there. Returns the
        hosts that failed."""
        failed: set[str] = set()
        for task in tasks:
            active = [h for h in hosts if h not in failed and not self._host(h).ended]
            if not active:
                break
            self._check_interrupt()
            if task.is_block:
                failed |= self.run_block(task, active, inherited)
            elif task.action == "meta":
                self._meta(task, active, inherited)
            elif task.action in ("include_tasks", "include_role"):
                failed |= self.run_include(task, active, inherited)
            else:
                failed |= self.run_task(task, active, inherited)
        return failed

    def run_block(self, block: Task, hosts: list[str], inherited: Inherited) -> set[str]:
        inner = inherited.enter(block)
        if block.action == "role" and block.role is not None:
            hosts = self._enter_role(block, hosts, inner)
        if not (block.rescue or block.always):
            return self.run_tasks(block.block, hosts, inner)
        failed = self.run_tasks(block.block, hosts, inner)
        if failed and block.rescue:
            for h in failed:
                self._host(h).stats["rescued"] += 1
            self.sink.emit("rescue", task=block.name or "block", hosts=sorted(failed))
            failed = self.run_tasks(block.rescue, [h for h in hosts if h in failed], inner)
        if block.always:
            failed |= self.run_tasks(block.always, hosts, inner)
        return failed

    def _enter_role(self, block: Task, hosts: list[str], inherited: Inherited) -> list[str]:
        """Validate the role's argument specs on each host before its first task."""
        assert block.role is not None
        specs = block.role.role.argument_specs
        if not specs:
            return hosts
        for host in hosts:
            scope = self.scope_for(host, block, inherited)
            check_role_arguments(block, scope)
        return hosts

    def run_include(self, task: Task, hosts: list[str], inherited: Inherited) -> set[str]:
        """``include_tasks``/``include_role``: resolved at run time, per host (may loop)."""
        failed: set[str] = set()
        by_target: dict[str, list[tuple[str, Any]]] = {}
        for host in hosts:
            scope = self.scope_for(host, task, inherited)
            if not self._when(task, scope, inherited, host):
                self._finish(task, host, self._host(host), "skipped", {"skipped": True})
                continue
            items = self._loop_items(task, scope) if task.loop is not None else [None]
            for index, item in enumerate(items):
                iscope = self._item_scope(task, scope, item, items, index)
                args = self._render(task.args, iscope, task)
                # The include's vars are rendered here, in the caller's scope (an including
                # role's defaults are not visible inside the included role).
                ivars = self._render(dict(task.vars), iscope, task) if task.vars else {}
                # hosts share one expansion when args, vars and item agree; items run in order
                key = repr((index, repr(item), sorted((str(k), repr(v)) for k, v in [*args.items(), *ivars.items()])))
                by_target.setdefault(key, []).append((host, (args, item, ivars)))
        for entries in by_target.values():
            args, item, ivars = entries[0][1]
            target_hosts = [h for h, _ in entries if h not in failed]  # a failed host stops
            if not target_hosts:
                continue
            if task.action == "include_role":
                from engine.model import RoleRef

                ref = RoleRef(name=str(args["name"]), params=args.get("vars") or {}, pos=position_of(task.args.get("name")) or task.pos)
                blocks = self.loader.role_blocks(ref, task.where(), entry=str(args.get("tasks_from", "main")))
            else:
                path = self.loader.resolve_task_file(str(args["file"]), task.role.role.path / "tasks" if task.role else self.playbook.basedir, task.role, pos=position_of(task.args.get("file")) or task.pos)
                blocks = list(self.loader.task_file(path, task.role, task.where()))
            layers = inherited.layers
            extra: dict[str, Any] = dict(ivars)
            if item is not None:
                extra[task.loop_control.loop_var] = item
            if extra:
                layers = (*layers, Layer("task vars", f"{task.where()} ({task.pos})", extra, templated=False))
            inner = replace(inherited.enter(replace(task, vars={}, when=())), layers=layers)
            failed |= self.run_tasks(blocks, target_hosts, inner)
        return failed

    def _meta(self, task: Task, hosts: list[str], inherited: Inherited) -> None:
        what = task.args["action"]
        if what == "flush_handlers":
            self.flush_handlers(self._play_hosts, inherited)
        elif what in ("end_play", "end_host"):
            for h in hosts:
                self._host(h).ended = True
        elif what == "clear_host_errors":
            for h in self._play_hosts:
                self._host(h).failed = False

    # ------------------------------------------------------------------------------------
    # one task on many hosts
    # ------------------------------------------------------------------------------------
    def run_task(self, task: Task, hosts: list[str], inherited: Inherited, *, handler: bool = False) -> set[str]:
        tags = inherited.tags | task.tags
        if not handler and not self._selected(task, tags):
            return set()
        self.sink.emit("task_start", task=self._title(task, hosts[0], inherited), action=task.action, handler=handler, pos=str(task.pos), hosts=hosts)
        run_once = inherited.run_once or task.run_once is True or (isinstance(task.run_once, str) and self._flag(task.run_once, task, hosts[0]))
        targets = hosts[:1] if run_once else hosts
        results: dict[str, tuple[str, Result]] = {}
        if len(targets) == 1 or self.options.dry_run:
            for host in targets:
                results[host] = self._run_on_host(task, host, inherited, handler=handler)
        else:
            with cf.ThreadPoolExecutor(max_workers=min(self.options.forks, len(targets)), thread_name_prefix="smlplay-task") as pool:
                futures = {pool.submit(self._run_on_host, task, host, inherited, handler=handler): host for host in targets}
                pending = set(futures)
                while pending:
                    done, pending = cf.wait(pending, timeout=0.2)
                    for fut in done:
                        results[futures[fut]] = fut.result()
        if run_once and hosts[1:]:
            status, result = results[hosts[0]]
            for host in hosts[1:]:
                if task.register and not self.options.dry_run:
                    self._host(host).facts[task.register] = result
                results[host] = (status, result)
        failed = {h for h, (status, _) in results.items() if status in ("failed", "unreachable")}
        for h in failed:
            if results[h][0] == "unreachable":
                self._host(h).unreachable = True
        return failed

    def _selected(self, task: Task, tags: frozenset[str]) -> bool:
        if not self._started_at_task:
            if self.options.start_at_task in (task.name, task.display_name):
                self._started_at_task = True
            else:
                return False
        if "always" in tags and "always" not in self.options.skip_tags:
            return True
        if self.options.skip_tags and tags & self.options.skip_tags:
            return False
        if self.options.tags:
            return bool(tags & self.options.tags) or ("all" in self.options.tags and "never" not in tags)
        return "never" not in tags

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
                        time.sleep(task.loop_control.pause)
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
        shown = _censor(result) if no_log else result
        self.sink.emit("task_result", task=task.display_name, host=host, status=status, ignored=ignored, result=_summary(shown), handler=handler, action=task.action)
        final = "ok" if ignored else status
        return final, result

    def _ignored(self, task: Task, inherited: Inherited) -> bool:
        if isinstance(task.ignore_errors, str):
            return self._flag(task.ignore_errors, task) or inherited.ignore_errors
        return task.ignore_errors is True or inherited.ignore_errors

    def _flag(self, value: Any, task: Task, host: str | None = None) -> bool:
        """A templated boolean keyword (``ignore_errors: "{{ x }}"``), rendered now."""
        from engine.filters import to_bool

        target = host or (self._play_hosts[0] if self._play_hosts else "localhost")
        rendered = self._render(value, self.scope_for(target, task, Inherited()), task)
        if isinstance(rendered, Unknown):
            return False
        try:
            return to_bool(rendered)
        except Exception:
            raise TemplateError(f"expected a boolean, got {rendered!r}", pos=position_of(value) or task.pos, context=task.where()) from None

    def _when(self, task: Task, scope: VarScope, inherited: Inherited, host: str) -> bool:
        conditions = [*inherited.when, *((w, position_of(w) or task.pos) for w in task.when)]
        for expr, pos in conditions:
            try:
                if not self.templar.condition(expr, scope, keyword="when", pos=pos):
                    return False
            except UnknownValue:
                if self.options.dry_run:
                    continue  # shown as "if <expr>" in the plan
                raise
            except TemplateError as exc:
                raise exc.with_context(task.where()) from None
        return True

    def _item_label(self, task: Task, scope: VarScope, item: Any) -> Any:
        """``loop_control.label`` (rendered) where given: what the plan shows per item."""
        if item is None or task.loop_control.label is None:
            return item
        try:
            return self.templar.render(task.loop_control.label, scope)
        except (SmlplayError, UnknownValue):
            return item

    def _title(self, task: Task, host: str, inherited: Inherited) -> str:
        """The task's name with its ``{{ }}`` rendered for the first host, as Ansible shows it
        (the raw name when it needs a loop item or a value only the run knows)."""
        name = task.display_name
        if "{{" not in name:
            return name
        try:
            return str(self.templar.render(name, self.scope_for(host, task, inherited)))
        except (SmlplayError, UnknownValue):
            return name

    def _placeholder(self, host: str) -> bool:
        """A dry-run's stand-in for a node that only exists once allocated."""
        return any(isinstance(v, Unknown) for v in self._connection_vars(host).values())

    def _decidable(self, task: Task, scope: VarScope, inherited: Inherited) -> bool:
        """Can every ``when`` of the task be evaluated before the run (dry-run)?"""
        for expr, pos in [*inherited.when, *((w, position_of(w) or task.pos) for w in task.when)]:
            try:
                self.templar.condition(expr, scope, keyword="when", pos=pos)
            except UnknownValue:
                return False
        return True

    def _loop_items(self, task: Task, scope: VarScope) -> list[Any]:
        items = self.templar.render(task.loop, scope, pos=position_of(task.loop) or task.pos)
        if isinstance(items, Unknown):
            return [items]
        if isinstance(items, dict) or not isinstance(items, list | tuple):
            raise TemplateError(
                f"invalid data passed to 'loop': it requires a list, got {type(items).__name__}",
                pos=position_of(task.loop) or task.pos,
                context=task.where(),
                hint="use `| dict2items` for a mapping, or `| list` for a generator",
            )
        return list(items)

    def _item_scope(self, task: Task, scope: VarScope, item: Any, items: Sequence[Any], index: int = 0) -> VarScope:
        if item is None and task.loop is None:
            return scope
        magic = {task.loop_control.loop_var: item}
        if task.loop_control.index_var:
            magic[task.loop_control.index_var] = index
        magic["ansible_loop"] = {"index": index + 1, "index0": index, "first": index == 0, "last": index == len(items) - 1, "length": len(items)}
        return scope.child([], magic)

    def _render(self, value: Any, scope: VarScope, task: Task) -> Any:
        try:
            return self.templar.render(value, scope, pos=task.pos)
        except TemplateError as exc:
            raise exc.with_context(task.where()) from None

    # ------------------------------------------------------------------------------------
    # one item of one task on one host
    # ------------------------------------------------------------------------------------
    def _run_item(self, task: Task, host: str, scope: VarScope, inherited: Inherited, item: Any) -> Result:
        assert task.action is not None
        act = actions.get(task.action)
        args = self._render(task.args, scope, task)
        if not any(isinstance(v, Unknown) for v in _walk(args)):
            try:
                args = validate(act.schema, args, what=f"'{task.action}' arguments", context=task.where())
            except ValidationError as exc:
                exc.pos = _arg_pos(task.args, exc) or task.pos
                raise
        environment: dict[str, str] = {}
        for env in (*inherited.environment, task.environment):
            rendered = self._render(env, scope, task) if env else {}
            environment.update({str(k): str(v) for k, v in (rendered or {}).items()})
        delegate = task.delegate_to or inherited.delegate_to
        target = str(self._render(delegate, scope, task)) if delegate else host
        if act.name in ("process", "stop") and isinstance(args, Mapping):
            self._book_ports(act.name, args, target, task)
        timeout = self._render(task.timeout, scope, task) if task.timeout is not None else None
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
            push_teardown=self.teardown.push,
            cancel_event=self.control.cancel,
            reporter=_Progress(self.sink, task.display_name),
        )
        if self.options.dry_run:  # an action that plans (see Action.plans)
            try:
                result = dict(act.run(ctx, args))
            except UnknownValue:
                return planned  # depends on what only the run knows: checked then
            except SmlplayError as exc:
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
        delay = float(self._render(task.delay, scope, task) or 0)
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
            ctx.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(ctx.log_path, "a", encoding="utf-8") as f:
                f.write(trace)
            return {"failed": True, "msg": f"internal error in action '{act.name}': {type(exc).__name__}: {exc} (traceback in {ctx.log_path})"}

    def _health(self, task: Task, host: str, transport: Any, health: Mapping[str, Any], result: Result) -> Result:
        spec = HealthSpec.from_rendered(health, default_timeout=self.options.health_timeout)
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
        conditions = [str(w) for w, _ in inherited.when] + [str(w) for w in task.when]
        step = PlanStep(
            play=self._play.name if self._play else "",
            host=host,
            task=self._title(task, host, inherited),
            action=act.name,
            detail=str(detail),
            pos=f"{task.pos.file}:{task.pos.line}",
            args=_plain(args),
            health=HealthSpec.from_rendered(health).describe() if health else [],
            notify=list(task.notify),
            condition=" and ".join(conditions) or None,
            item=_plain(item),
            label=_plain(self._item_label(task, scope, item)) if task.loop_control.label is not None else None,
            delegate_to=target if target != host else None,
            via=self._via(target),
        )
        self._record_step(step)
        return {"changed": bool(task.notify), "skipped": False}

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
        cv = self._connection_vars(host)
        kind = cv.get("connection", "local")
        if kind == "srun":
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

        try:
            return find_file(kind, name, role_path=task.role.role.path if task.role else None, playbook_dir=self.playbook.basedir)
        except ValidationError as exc:
            exc.pos = position_of(task.args.get("src")) if isinstance(task.args, Mapping) else task.pos
            raise exc.with_context(task.where()) from None

    def _record_step(self, step: PlanStep) -> None:
        if self.plan:
            self.plan[-1]["steps"].append(step.to_dict())
        self.sink.emit("plan_step", **step.to_dict())

    def _transport(self, host: str) -> Any:
        from engine.errors import UnreachableError

        try:
            return self.transports.get(host)
        except UnreachableError as exc:
            raise _Unreachable(exc.message) from None

    def _task_log(self, host: str, task: Task) -> Path:
        from engine.runs import slug

        directory = self.run_dir / "logs" / slug(host)
        directory.mkdir(parents=True, exist_ok=True)
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
            with open(path, "a", encoding="utf-8") as f:
                f.write(text)

    def _check_interrupt(self) -> None:
        if self.control.cancel.is_set():
            raise PlayFailed(self.control.reason or "interrupted")
        death = self.processes.check() if not self.options.dry_run else None
        if death is not None:
            self.sink.emit("process_died", host=death.record.host, name=death.record.name, log=death.record.log, tail=death.tail)
            raise PlayFailed(death.message())

    # ------------------------------------------------------------------------------------
    # handlers
    # ------------------------------------------------------------------------------------
    def _persist_notify(self, task: Task, host: str, name: str) -> None:
        """Record a notified handler, rendered now, so ``smlplay down`` can replay it if
        this process dies before the handler runs."""
        play = self._play
        for handler in play.handlers if play else ():
            if name not in {handler.name, handler.display_name, *handler.listen}:
                continue
            entry: dict[str, Any] = {"host": host, "name": name, "handler": handler.display_name, "action": handler.action, "play": play.name if play else ""}
            try:
                entry["args"] = _plain(self.templar.render(handler.args, self.scope_for(host, handler, Inherited())))
            except SmlplayError as exc:
                entry["render_error"] = exc.message
            self.pending_handlers.append(entry)
        self._on_state_change()

    def flush_handlers(self, hosts: list[str], inherited: Inherited) -> None:
        play = self._play
        if play is None:
            return
        for handler in play.handlers:
            names = {handler.name, handler.display_name, *handler.listen}
            targets = [h for h in hosts if any(n in names for n in self._host(h).notified)]
            if not targets:
                continue
            self.sink.emit("handler_start", handler=handler.display_name)
            self.run_task(handler, targets, Inherited(environment=inherited.environment), handler=True)
        for h in hosts:
            self._host(h).notified.clear()
        self.pending_handlers = [p for p in self.pending_handlers if p["host"] not in hosts]
        self._on_state_change()


class _Unreachable(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class HostVars(Mapping[str, Any]):
    """``hostvars[h].x``: another host's variables at play level, rendered lazily."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner

    def __getitem__(self, host: str) -> Any:
        if host not in self._runner.inventory.hosts and host not in ("localhost",):
            raise KeyError(host)
        return self._runner.scope_for(host, None, Inherited())

    def __iter__(self) -> Any:
        return iter(list(self._runner.inventory.hosts))

    def __len__(self) -> int:
        return len(self._runner.inventory.hosts)


class _NoTransport:
    """The transport a planning action gets in a dry-run: using it is a bug."""

    kind = "none"

    def __init__(self, host: str) -> None:
        self.host = host

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"a dry-run must not touch host {self.host} ({name})")


class _Progress:
    """Progress lines of a long action (an allocation waiting in the queue)."""

    def __init__(self, sink: Any, task: str) -> None:
        self.sink = sink
        self.task = task

    def progress(self, host: str, message: str) -> None:
        self.sink.emit("health_progress", task=self.task, host=host, message=message)


def check_role_arguments(block: Task, scope: VarScope) -> None:
    """Validate a role's ``argument_specs`` against the values it will see."""
    assert block.role is not None
    role = block.role.role
    params = block.role.params
    for name, spec in role.argument_specs.items():
        where = f"role '{role.name}', argument '{name}'"
        pos = getattr(params, "value_pos", {}).get(name) or block.role.pos or spec.pos
        if name not in scope:
            if spec.required:
                raise ValidationError(f"missing required argument '{name}' of role '{role.name}'", pos=block.role.pos or block.pos, hint=spec.description or None)
            continue
        try:
            value = scope[name]
        except TemplateError as exc:
            raise exc.with_context(where) from None
        if isinstance(value, Unknown) or (value is None and not spec.required):
            continue  # null = not given (as in Ansible), for optional arguments
        problem = _type_problem(value, spec.type)
        if problem is None and spec.elements and isinstance(value, list):
            for i, element in enumerate(value):
                if (problem := _type_problem(element, spec.elements)) is not None:
                    problem = f"element {i}: {problem}"
                    break
        if problem is None and spec.choices and value not in spec.choices:
            problem = f"{value!r} is not one of {', '.join(map(repr, spec.choices))}"
        if problem is not None:
            raise ValidationError(f"invalid argument '{name}' of role '{role.name}': {problem}", pos=pos, hint=spec.description or None)


_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "path": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "list": (list, tuple),
    "dict": (dict,),
}


def _type_problem(value: Any, type_name: str) -> str | None:
    if type_name == "raw":
        return None
    wanted = _TYPES.get(type_name, (object,))
    if type_name in ("int", "float") and isinstance(value, bool):
        return f"expected {type_name}, got boolean {value!r}"
    if not isinstance(value, wanted):
        return f"expected {type_name}, got {type(value).__name__} {value!r}"
    return None


def _walk(value: Any) -> Iterable[Any]:
    yield value
    if isinstance(value, Mapping):
        for v in value.values():
            yield from _walk(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _walk(v)


def _arg_pos(args: Any, exc: ValidationError) -> Any:
    """The position, in the task as written, of the argument a rendered value failed on."""
    from engine.load.schema import position_for

    path = getattr(exc, "path", None)
    if path:
        try:
            return position_for(args, list(path)) or getattr(args, "pos", None)
        except (KeyError, IndexError, TypeError):
            pass
    return getattr(args, "pos", None)


def _status(result: Result) -> str:
    if result.get("failed"):
        return "failed"
    if result.get("skipped"):
        return "skipped"
    return "changed" if result.get("changed") else "ok"


def _censor(result: Result) -> Result:
    return {k: ("<hidden by no_log>" if k in RESULT_KEYS_HIDDEN_BY_NO_LOG else v) for k, v in result.items()}


def _summary(result: Result) -> dict[str, Any]:
    keep = ("msg", "rc", "stdout", "stderr", "changed", "failed", "skipped", "health", "attempts", "elapsed", "status", "name", "pid", "log")
    out = {k: _plain(result[k]) for k in keep if k in result}
    if "results" in result:
        out["items"] = len(result["results"])
    return out


def _describe_args(args: Any) -> str:
    if isinstance(args, Mapping):
        return ", ".join(f"{k}={_plain(v)!r}" for k, v in args.items())
    return str(args)
