"""Task lists, tasks and blocks: each item checked against the keywords and action schemas."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import voluptuous as vol

from engine.actions import REGISTRY
from engine.actions.base import Action
from engine.errors import Position, ValidationError
from engine.load import schema as S
from engine.load.fields import (
    YMapView,
    _as_strs,
    _as_tuple,
    _check_conditions,
    _control_args,
    _templatable_schema,
    check_expressions,
    positioned_args,
)
from engine.load.specs import ANSIBLE_ONLY, HANDLER_RULE
from engine.load.yaml import YList, YMap, load_file, position_of
from engine.model import (
    BLOCK_KEYWORDS,
    CONTROL_ACTIONS,
    HANDLER_KEYWORDS,
    TASK_KEYWORDS,
    LoopControl,
    Role,
    RoleScope,
    Task,
)


class TaskLoader:
    """Builds tasks; :class:`~engine.load.loader.Loader` adds roles, imports and plays."""

    def __init__(self, roles_path: Sequence[Path] | None = None) -> None:
        self._roles_path = list(roles_path) if roles_path is not None else None
        self._roles: dict[str, Role] = {}
        self._loading: list[str] = []

    def task_file(self, path: Path, scope: RoleScope | None, where: str, *, handler: bool = False) -> tuple[Task, ...]:
        data = load_file(path)
        if data is None:
            return ()
        items = S.require_list(data, what=f"task file {path.name}", pos=Position(str(path), 1, 1))
        return self.tasks(items, path.parent, scope, where, handler=handler)

    def tasks(
        self, items: Any, basedir: Path, scope: RoleScope | None, where: str, *, handler: bool = False
    ) -> tuple[Task, ...]:
        items = S.require_list(items, what="a task list", pos=position_of(items))
        out: list[Task] = []
        for index, item in enumerate(items):
            if not isinstance(item, dict):  # `- null`, `- 3`: no position of their own
                kind = "handler" if handler else "task"
                S.require_mapping(item, what=f"a {kind}", pos=items.position_of(index) if isinstance(items, YList) else position_of(items))
            task = self.task(item, basedir, scope, where, handler=handler)
            if task.action == "import_tasks":
                out.extend(self._import_tasks(task, basedir, scope, where))
            elif task.action == "import_role":
                out.extend(self._import_role(task, where))
            else:
                out.append(task)
        return tuple(out)

    def task(self, data: Any, basedir: Path, scope: RoleScope | None, where: str, *, handler: bool = False) -> Task:
        kind = "handler" if handler else "task"
        item = S.require_mapping(data, what=f"a {kind}", pos=position_of(data))
        label = item.get("name")
        ctx = f"{kind} '{label}'" if label else f"{kind} at line {item.pos.line}"
        if scope is not None:
            ctx += f" of role '{scope.name}'"
        keywords = HANDLER_KEYWORDS if handler else TASK_KEYWORDS
        if handler:  # one nobody can notify would never run
            S.validate(HANDLER_RULE, item, what="handler", context=ctx)
        if "block" in item:
            return self._block(item, basedir, scope, ctx, where)
        actions = [k for k in item if k in REGISTRY or k in CONTROL_ACTIONS]
        unknown = [k for k in item if k not in keywords and k not in REGISTRY and k not in CONTROL_ACTIONS]
        if unknown:
            key = unknown[0]
            guess = S.suggest(str(key), [*keywords, *REGISTRY, *CONTROL_ACTIONS])
            is_action_typo = guess in REGISTRY or guess in CONTROL_ACTIONS
            raise ValidationError(
                f"unknown {'action' if is_action_typo and not actions else 'keyword'} '{key}' in {kind}",
                pos=item.position_of(key, value=False),
                context=ctx,
                hint=f"did you mean '{guess}'?" if guess else ANSIBLE_ONLY.get(str(key)),
            )
        if not actions:
            raise ValidationError(
                f"{kind} has no action",
                pos=item.pos,
                context=ctx,
                hint="add one of: " + ", ".join(sorted(REGISTRY)),
            )
        if len(actions) > 1:
            raise ValidationError(
                f"{kind} has more than one action: {', '.join(actions)}",
                pos=item.position_of(actions[1], value=False),
                context=ctx,
            )
        for key in item:
            if key in S.TASK_KEYWORD_SCHEMAS:
                S.validate(_keyword_schema(str(key)), YMapView(item, key), what=kind, context=ctx)
        _check_conditions(item, ctx)
        name = actions[0]
        args = item[name]
        if name in REGISTRY:
            act = REGISTRY[name]
            args = positioned_args(act.normalise(args), item, name)
            if isinstance(item.get("args"), dict):
                merged = YMap(args if isinstance(args, dict) else {})
                merged.update(item["args"])
                merged.pos = position_of(args) or item.pos
                merged.key_pos = {**getattr(args, "key_pos", {}), **item["args"].key_pos}
                merged.value_pos = {**getattr(args, "value_pos", {}), **item["args"].value_pos}
                args = merged
            if not isinstance(args, dict):
                raise ValidationError(
                    f"arguments of '{name}' must be a mapping", pos=position_of(args) or item.position_of(name), context=ctx
                )
            try:  # the fields, then the cross-field rules (copy needs src or content)
                S.validate(_load_schema(act), args, what=f"'{name}' arguments", context=ctx)
            except ValidationError as exc:
                if not getattr(exc, "path", None):  # a rule of the whole mapping: at the action
                    exc.pos = item.position_of(name, value=False)
                raise
            if name == "assert":
                check_expressions(args, "that", "assert.that", ctx, rendered_first=True)
        else:
            args = _control_args(name, args, item, ctx)
        loop_control = item.get("loop_control") or {}
        return Task(
            pos=item.pos,
            name=str(label) if label is not None else None,
            action=name,
            args=args,
            when=_as_tuple(item.get("when")),
            loop=item.get("loop"),
            loop_control=LoopControl(
                loop_var=str(loop_control.get("loop_var", "item")),
                index_var=loop_control.get("index_var"),
                label=loop_control.get("label"),
                pause=loop_control.get("pause", 0),  # a duration, or a template rendered per run
            ),
            register=item.get("register"),
            until=item.get("until"),
            retries=item.get("retries"),
            delay=item.get("delay", 5.0),
            changed_when=_as_tuple(item["changed_when"]) if "changed_when" in item else None,
            failed_when=_as_tuple(item["failed_when"]) if "failed_when" in item else None,
            ignore_errors=item.get("ignore_errors", False),
            notify=_as_strs(item.get("notify")),
            tags=frozenset(_as_strs(item.get("tags"))),
            vars=item.get("vars") or {},
            environment=item.get("environment") or {},
            timeout=item.get("timeout"),
            run_once=item.get("run_once", False),
            delegate_to=item.get("delegate_to"),
            no_log=bool(item.get("no_log", False)),
            check_mode=item.get("check_mode"),
            health=item.get("health"),
            listen=_as_strs(item.get("listen")),
            role=scope,
            raw=item,
        )

    def _block(self, item: YMap, basedir: Path, scope: RoleScope | None, ctx: str, where: str) -> Task:
        unknown = [k for k in item if k not in BLOCK_KEYWORDS]
        if unknown:
            key = unknown[0]
            guess = S.suggest(str(key), BLOCK_KEYWORDS)
            raise ValidationError(
                f"unknown keyword '{key}' in block",
                pos=item.position_of(key, value=False),
                context=ctx,
                hint=(f"did you mean '{guess}'? " if guess else "") + "a block holds tasks under 'block:', not an action",
            )
        for key in item:
            if key in S.TASK_KEYWORD_SCHEMAS:
                S.validate(_keyword_schema(str(key)), YMapView(item, key), what="block", context=ctx)
        _check_conditions(item, ctx)
        sections = {}
        for section in ("block", "rescue", "always"):
            sections[section] = self.tasks(item.get(section) or YList(), basedir, scope, where) if item.get(section) is not None else ()
        return Task(
            pos=item.pos,
            name=item.get("name"),
            is_block=True,
            block=sections["block"],
            rescue=sections["rescue"],
            always=sections["always"],
            when=_as_tuple(item.get("when")),
            tags=frozenset(_as_strs(item.get("tags"))),
            vars=item.get("vars") or {},
            environment=item.get("environment") or {},
            ignore_errors=item.get("ignore_errors", False),
            no_log=bool(item.get("no_log", False)),
            run_once=item.get("run_once", False),
            delegate_to=item.get("delegate_to"),
            timeout=item.get("timeout"),
            role=scope,
            raw=item,
        )

    def _import_tasks(self, task: Task, basedir: Path, scope: RoleScope | None, where: str) -> list[Task]:
        raise NotImplementedError  # engine.load.includes

    def _import_role(self, task: Task, where: str) -> list[Task]:
        raise NotImplementedError  # engine.load.includes


# Load-time schemas are built and compiled once per keyword and per action: building one
# for every task was two thirds of loading a 50-task playbook.


@functools.cache
def _keyword_schema(key: str) -> vol.Schema:
    """One keyword of a task or block (its error keeps the keyword's position)."""
    return vol.Schema({vol.Required(key): S.TASK_KEYWORD_SCHEMAS[key]})


def _load_schema(act: Action) -> vol.Schema:
    """An action's arguments as written: every field may still be a template (checked
    again once rendered), then the cross-field rules (copy needs src or content)."""
    return S.compiled(act, _as_written)


def _as_written(act: Action) -> Any:
    fields = _templatable_schema(act.schema)
    return vol.All(fields, *act.rules) if act.rules else fields
