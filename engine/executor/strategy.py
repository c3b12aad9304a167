"""The linear strategy: plays, task lists, blocks, includes and meta, task by task.

A task runs on all its hosts in parallel (a thread pool bounded by ``forks``), then the
next task starts.
"""

from __future__ import annotations

import concurrent.futures as cf
import weakref
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from engine.actions.base import Result
from engine.executor.inherited import Inherited
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
                if task.register and not self.options.dry_run:
                    self._host(host).facts[task.register] = result
                results[host] = (status, result)
        failed = {h for h, (status, _) in results.items() if status in ("failed", "unreachable")}
        for h in failed:
            if results[h][0] == "unreachable":
                self._host(h).unreachable = True
        return failed

