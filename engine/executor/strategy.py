"""The linear strategy: plays, task lists, blocks, includes and meta, task by task.

A task runs on all its hosts in parallel (a thread pool bounded by ``forks``), then the
next task starts.
"""

from __future__ import annotations

import concurrent.futures as cf
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from engine.actions.base import Result
from engine.errors import SmlplayError, TemplateError
from engine.executor.inherited import Inherited
from engine.executor.outcome import TaskResult
from engine.executor.results import _plain, has_unknown
from engine.executor.roleargs import check_role_arguments
from engine.executor.task import TaskMixin
from engine.load.yaml import position_of
from engine.model import Play, Task
from engine.vars import Layer, VarScope


class StrategyMixin(TaskMixin):
    def run(self) -> bool:
        """Run every play; return True if no host failed. Teardown is the caller's job
        (:func:`engine.executor.run.execute`), so it also happens on exceptions."""
        try:
            return self._run_plays()
        finally:
            pool = self.__dict__.pop("_task_pool", None)
            if pool is not None:
                pool.shutdown(wait=False)

    def _host_pool(self) -> cf.ThreadPoolExecutor:
        """One pool of ``forks`` threads for the whole run: starting threads for every task
        was a tenth of a 50-task run's engine time."""
        pool: cf.ThreadPoolExecutor | None = self.__dict__.get("_task_pool")
        if pool is None:
            pool = self.__dict__["_task_pool"] = cf.ThreadPoolExecutor(max_workers=self.options.forks, thread_name_prefix="smlplay-task")
            weakref.finalize(self, pool.shutdown, wait=False)  # a runner used without run()
        return pool

    def _run_plays(self) -> bool:
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
        self._play_layers = self._build_play_layers(play)
        if "{{" in play.hosts or "{%" in play.hosts:  # `hosts: "{{ target }}"`: play and extra vars
            scope = VarScope([*self._play_layers, *self.options.extra_vars], self.templar)
            play = replace(play, hosts=str(self.templar.render(play.hosts, scope, pos=position_of(play.hosts) or play.pos)))
        if self.options.dry_run:
            # groups an allocation adds exist by now (the dry-run adds placeholders), so a
            # name that matches nothing is a typo, not a group of the future
            self.inventory.check_pattern(play.hosts, pos=play.pos)
        hosts = self.inventory.select(play.hosts, limit=self.options.limit)
        hosts = [h for h in hosts if not self._host(h).failed and not self._host(h).unreachable]
        self._play_hosts = hosts
        self._public_defaults, self._public_vars = self._build_public_role_layers(play)
        self.sink.emit("play_start", play=play.name, hosts=hosts, pos=str(play.pos))
        plan_play: dict[str, Any] = {"name": play.name, "hosts": list(hosts), "pattern": play.hosts, "steps": [], "handlers": []}
        self.plan.append(plan_play)
        if not hosts:
            self.sink.emit("warning", message=f"play '{play.name}': no hosts matched '{play.hosts}'")
            return True
        for h in hosts:
            state = self._host(h)
            state.notified.clear()
            state.ended = False  # end_host ends a host for its play only
            state.errors_cleared = False
        play_inherited = Inherited(tags=play.tags, environment=(play.environment,) if play.environment else ())
        failed_hosts: set[str] = set()
        try:
            start = 0
            for end in (*play.flush_after, len(play.tasks)):
                active = [h for h in hosts if h not in failed_hosts]
                if end > start and active:
                    failed_hosts |= self.run_tasks(play.tasks[start:end], active, play_inherited)
                if end < len(play.tasks):  # the last flush is the play's own, below
                    failed_hosts |= self.flush_handlers([h for h in hosts if h not in failed_hosts], play_inherited)
                start = end
            failed_hosts = {h for h in failed_hosts if not self._host(h).errors_cleared}
            for h in failed_hosts:
                self._host(h).failed = True
        finally:
            # Handlers run even when the play failed (force_handlers, default true) or was
            # interrupted: they are how users tear down what they started.
            if play.force_handlers or not (failed_hosts or self.control.cancel.is_set()):
                handlers_failed = self.flush_handlers(hosts, play_inherited)
                for h in handlers_failed:
                    self._host(h).failed = True
                failed_hosts |= handlers_failed
        if self.options.dry_run:
            plan_play["handlers"] = [
                {"name": h.name, "listen": list(h.listen), "action": h.action, "pos": str(h.pos)} for h in play.handlers
            ]
        return not failed_hosts

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
                failed |= self._meta(task, active, inherited)
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
        if self.options.dry_run and block.rescue:
            self._rescue_undecided(block, [h for h in hosts if h not in failed])
        if failed and block.rescue:
            for h in failed:
                self._rescue(h)
            self.sink.emit("rescue", task=block.name or "block", hosts=sorted(failed))
            failed = self.run_tasks(block.rescue, [h for h in hosts if h in failed], inner)
        if block.always:
            failed |= self.run_tasks(block.always, hosts, inner)
        return failed

    def _rescue(self, host: str) -> None:
        """A rescued failure counts as rescued, not failed (Ansible's recap), and the rescue
        sees what failed as ``ansible_failed_task`` / ``ansible_failed_result``."""
        state = self._host(host)
        state.stats["rescued"] += 1
        if state.stats["failed"] > 0 and not state.unreachable:
            state.stats["failed"] -= 1
        if state.failure is not None:
            task, result = state.failure
            state.facts["ansible_failed_task"] = {"name": task.name or task.action, "action": task.action, "pos": str(task.pos)}
            state.facts["ansible_failed_result"] = result

    def _rescue_undecided(self, block: Task, hosts: list[str]) -> None:
        """In a dry-run, a host that got through the block may still fail there at run time,
        and its rescue then sets variables: for the plan they are decided at run time."""
        from engine.executor.defines import names_defined
        from engine.template import Unknown

        for name in names_defined(block.rescue):
            for h in hosts:
                self._host(h).facts[name] = Unknown(f"decided at run time: {name}")

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
        """``include_tasks``/``include_role``: resolved at run time, per host (may loop).

        Each expansion counts as an ``ok`` task on its host (Ansible's recap); a template
        error in the include's own keywords fails the include on that host. The include's
        tags select the include, not the tasks it brings (Ansible's dynamic includes)."""
        if not self._selected(task, inherited.tags | task.tags):
            return set()
        failed: set[str] = set()
        by_target: dict[str, list[tuple[str, Any]]] = {}
        for host in hosts:
            try:
                expansions = self._expansions(task, host, inherited)
            except SmlplayError as exc:
                self._finish(task, host, self._host(host), TaskResult.from_error(task, exc), inherited=inherited)
                if not self._ignored(task, inherited):
                    failed.add(host)
                continue
            if expansions is None:
                self._finish(task, host, self._host(host), TaskResult.skipped())
                continue
            for key, expansion in expansions:
                by_target.setdefault(key, []).append((host, expansion))
        for entries in by_target.values():
            args, item, ivars = entries[0][1]
            target_hosts = [h for h, _ in entries if h not in failed]  # a failed host stops
            if not target_hosts:
                continue
            if self.options.dry_run and has_unknown(args):
                # which file or role is decided at run time: so is whatever it defines
                for h in target_hosts:
                    self._host(h).open_world = True
                    self._finish(task, h, self._host(h), self._plan_undecided(task, h, inherited, TemplateError(f"{task.action} {_plain(args)}")))
                continue
            try:
                blocks = self._included_blocks(task, args)
            except SmlplayError as exc:
                for h in target_hosts:
                    self._finish(task, h, self._host(h), TaskResult.from_error(task, exc), inherited=inherited)
                failed |= {h for h in target_hosts if not self._ignored(task, inherited)}
                continue
            for h in target_hosts:
                self._finish(task, h, self._host(h), TaskResult({"changed": False, "include": _plain(args)}), inherited=inherited)
            layers = inherited.layers
            extra: dict[str, Any] = dict(ivars)
            if item is not None:
                extra[task.loop_control.loop_var] = item
            if extra:
                layers = (*layers, Layer("task vars", f"{task.where()} ({task.pos})", extra, templated=False))
            inner = replace(inherited.enter(replace(task, vars={}, when=(), tags=frozenset())), layers=layers)
            failed |= self.run_tasks(blocks, target_hosts, inner)
        return failed

    def _expansions(self, task: Task, host: str, inherited: Inherited) -> list[tuple[str, Any]] | None:
        """The include's (key, (args, item, vars)) on one host, None when its `when` is false."""
        scope = self.scope_for(host, task, inherited)
        if not self._when(task, scope, inherited, host):
            return None
        items = self._loop_items(task, scope) if task.loop is not None else [None]
        out = []
        for index, item in enumerate(items):
            iscope = self._item_scope(task, scope, item, items, index)
            args = self._render(task.args, iscope, task)
            # The include's vars are rendered here, in the caller's scope (an including
            # role's defaults are not visible inside the included role).
            ivars = self._render(dict(task.vars), iscope, task) if task.vars else {}
            # hosts share one expansion when args, vars and item agree; items run in order
            key = repr((index, repr(item), sorted((str(k), repr(v)) for k, v in [*args.items(), *ivars.items()])))
            out.append((key, (args, item, ivars)))
        return out

    def _included_blocks(self, task: Task, args: Mapping[str, Any]) -> list[Task]:
        if task.action == "include_role":
            from engine.model import RoleRef

            ref = RoleRef(name=str(args["name"]), params=args.get("vars") or {}, pos=position_of(task.args.get("name")) or task.pos)
            return list(self.loader.role_blocks(ref, task.where(), entry=str(args.get("tasks_from", "main"))))
        base = task.role.role.path / "tasks" if task.role else self.playbook.basedir
        pos = position_of(task.args.get("file")) or task.pos
        path = self.loader.resolve_task_file(str(args["file"]), base, task.role, pos=pos, including=Path(task.pos.file).parent)
        return list(self.loader.task_file(path, task.role, task.where()))

    def _meta(self, task: Task, hosts: list[str], inherited: Inherited) -> set[str]:
        """``meta``, on the hosts its ``when`` holds for; returns the hosts it failed on (a
        template error in that ``when``)."""
        matched: list[str] = []
        failed: set[str] = set()
        for host in hosts:
            try:
                if self._when(task, self.scope_for(host, task, inherited), inherited, host):
                    matched.append(host)
            except SmlplayError as exc:
                self._finish(task, host, self._host(host), TaskResult.from_error(task, exc), inherited=inherited)
                if not self._ignored(task, inherited):
                    failed.add(host)
        what = task.args["action"]
        if not matched:
            return failed
        if what == "flush_handlers":
            failed |= self.flush_handlers([h for h in self._play_hosts if h in hosts], inherited)
        elif what == "end_play":
            for h in hosts:
                self._host(h).ended = True
        elif what == "end_host":
            for h in matched:
                self._host(h).ended = True
        elif what == "clear_host_errors":
            # the hosts that failed so far in this play take part in the next plays again
            for h in self._play_hosts:
                state = self._host(h)
                state.failed = False
                state.errors_cleared = True
        return failed

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
            pool = self._host_pool()
            futures = {pool.submit(self._run_on_host, task, host, inherited, handler=handler): host for host in targets}
            pending = set(futures)
            try:
                while pending:
                    done, pending = cf.wait(pending, timeout=0.2)
                    for fut in done:
                        results[futures[fut]] = fut.result()
            except BaseException:
                cf.wait(pending)  # the other hosts finish before the error goes up (as before)
                raise
        if run_once and hosts[1:]:
            status, result = results[hosts[0]]
            for host in hosts[1:]:
                if task.register:  # every host sees the one result (a placeholder in a dry-run)
                    self._host(host).facts[task.register] = self._host(hosts[0]).facts.get(task.register, result)
                results[host] = (status, result)
        failed = {h for h, (status, _) in results.items() if status in ("failed", "unreachable")}
        for h in failed:
            if results[h][0] == "unreachable":
                self._host(h).unreachable = True
        return failed

