"""Task keywords evaluated per host: tags, when, ignore_errors, loops, labels, titles."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from engine.errors import SmlplayError, TemplateError
from engine.executor.evaluation import Evaluation, Failed, Known, Undecided, decide, evaluate
from engine.executor.inherited import Inherited
from engine.executor.scope import ScopeMixin
from engine.load.yaml import position_of
from engine.model import Task
from engine.template import Unknown, UnknownValue
from engine.vars import VarScope


class KeywordsMixin(ScopeMixin):
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

    def _ignored(self, task: Task, inherited: Inherited) -> bool:
        if isinstance(task.ignore_errors, str):
            return self._flag(task.ignore_errors, task, keyword="ignore_errors") or inherited.ignore_errors
        return task.ignore_errors is True or inherited.ignore_errors

    def _decide(self, keyword: str, compute: Callable[[], Any]) -> Any:
        return decide(keyword, evaluate(compute), dry_run=self.options.dry_run)

    def _flag(self, value: Any, task: Task, host: str | None = None, *, keyword: str = "run_once") -> bool:
        """A templated boolean keyword (``ignore_errors: "{{ x }}"``), rendered now."""
        from engine.filters import to_bool

        target = host or (self._play_hosts[0] if self._play_hosts else "localhost")
        rendered = self._decide(keyword, lambda: self._render(value, self.scope_for(target, task, Inherited()), task))
        try:
            return to_bool(rendered)
        except Exception:
            raise TemplateError(f"expected a boolean, got {rendered!r}", pos=position_of(value) or task.pos, context=task.where()) from None

    def _conditions(self, task: Task, inherited: Inherited) -> list[tuple[Any, Any]]:
        # the same list for every host of the task (while the block's conditions are the same)
        cache: dict[int, tuple[Task, Any, list[tuple[Any, Any]]]] = self.__dict__.setdefault("_conditions_cache", {})
        hit = cache.get(id(task))
        if hit is not None and hit[0] is task and hit[1] is inherited.when:
            return hit[2]
        found = [*inherited.when, *((w, position_of(w) or task.pos) for w in task.when)]
        cache[id(task)] = (task, inherited.when, found)
        return found

    def _when(self, task: Task, scope: VarScope, inherited: Inherited, host: str) -> bool:
        if not task.when and not inherited.when:
            return True
        for expr, pos in self._conditions(task, inherited):
            ev = self._when_value(expr, pos, scope)
            if isinstance(ev, Failed):
                raise ev.error.with_context(task.where())
            if not decide("when", ev, dry_run=self.options.dry_run):
                return False  # (an undecided one is planned: shown as "if <expr>")
        return True

    def _item_label(self, task: Task, scope: VarScope, item: Any) -> Any:
        """``loop_control.label`` (rendered) where given: what the plan shows per item."""
        if item is None or task.loop_control.label is None:
            return item
        ev = evaluate(lambda: self.templar.render(task.loop_control.label, scope))
        return ev.value if isinstance(ev, Known) else item

    def _title(self, task: Task, host: str, inherited: Inherited) -> str:
        """The task's name with its ``{{ }}`` rendered for the first host, as Ansible shows it
        (the raw name when it needs a loop item or a value only the run knows)."""
        from engine.names import render_name

        name = task.name
        if not name or ("{{" not in name and "{%" not in name):
            return task.display_name
        try:
            shown = render_name(self.templar, name, self.scope_for(host, task, inherited), str(task.action or "block"))
        except (SmlplayError, UnknownValue):  # the scope itself cannot be built yet
            return task.display_name
        return f"{task.role.name} : {shown}" if task.role else shown

    def _placeholder(self, host: str) -> bool:
        """A dry-run's stand-in for a node that only exists once allocated."""
        return any(isinstance(v, Unknown) for v in self._shared_connection_vars(host).values())

    def _decidable(self, task: Task, scope: VarScope, inherited: Inherited) -> bool:
        """Can every ``when`` of the task be evaluated before the run (dry-run)?"""
        return not any(isinstance(self._when_value(e, p, scope), Undecided) for e, p in self._conditions(task, inherited))

    def _when_value(self, expr: Any, pos: Any, scope: VarScope) -> Evaluation:
        return evaluate(lambda: self.templar.condition(expr, scope, keyword="when", pos=pos))

    def _loop_items(self, task: Task, scope: VarScope) -> list[Any]:
        pos = position_of(task.loop) or task.pos
        items = self._decide("loop", lambda: self.templar.render(task.loop, scope, pos=pos))
        if isinstance(items, dict) or not isinstance(items, list | tuple):
            raise TemplateError(
                f"invalid data passed to 'loop': it requires a list, got {type(items).__name__}",
                pos=pos,
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

