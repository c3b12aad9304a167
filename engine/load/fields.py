"""Checks and conversions of single task fields: conditions, control-action arguments."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import voluptuous as vol

from engine.errors import ValidationError
from engine.load import schema as S
from engine.load.yaml import YList, YMap, position_of
from engine.template import check_bare_expression


def _as_tuple(value: Any) -> tuple[Any, ...]:
    if value is None:
        return ()
    return tuple(value) if isinstance(value, list) else (value,)


def _as_strs(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in _as_tuple(value))



#: Keywords that take bare expressions, never ``{{ }}``.
CONDITION_KEYWORDS = ("when", "until", "changed_when", "failed_when")


def _check_conditions(item: YMap, ctx: str) -> None:
    """``{{ }}`` in a condition is bad input: report it now, not when (or if) it is evaluated."""
    for keyword in CONDITION_KEYWORDS:
        value = item.get(keyword)
        for i, expr in enumerate(value if isinstance(value, list) else [value]):
            if not isinstance(expr, str):
                continue
            pos = position_of(expr) or (value.position_of(i) if isinstance(value, YList) else item.position_of(keyword))
            try:
                check_bare_expression(expr, keyword=keyword, pos=pos, error=ValidationError)
            except ValidationError as exc:
                raise exc.with_context(ctx) from None



def YMapView(item: YMap, key: Any) -> YMap:
    """A one-key view of a task mapping, so a keyword's schema error keeps its position."""
    view = YMap({str(key): item[key]})
    view.pos = item.pos
    view.key_pos = {str(key): item.key_pos[key]}
    view.value_pos = {str(key): item.value_pos[key]}
    return view


def _templatable_schema(schema: Mapping[Any, Any]) -> dict[Any, Any]:
    """Wrap every value schema so Jinja strings pass at load time (checked after render)."""
    out: dict[Any, Any] = {}
    for key, value in schema.items():
        out[key] = S.templatable(_templatable_value(value))
    return out


def _templatable_value(value: Any) -> Any:
    # element schemas too: `ports: ["{{ base + 1 }}"]` is a list of ints once rendered
    if isinstance(value, dict):
        return _templatable_schema(value)
    if isinstance(value, list):
        return [S.templatable(_templatable_value(v)) for v in value]
    return value


#: The control actions' argument mappings (each also takes a bare string), read by
#: ``smlplay schema`` too.
META_ACTIONS = ("flush_handlers", "end_play", "end_host", "noop", "clear_host_errors")
_INCLUDE_TASKS = {vol.Required("file"): str, vol.Optional("apply"): dict}
_INCLUDE_ROLE = {vol.Required("name"): str, vol.Optional("tasks_from"): str, vol.Optional("vars"): dict, vol.Optional("apply"): dict}
CONTROL_ARGS = {"include_tasks": _INCLUDE_TASKS, "import_tasks": _INCLUDE_TASKS, "include_role": _INCLUDE_ROLE, "import_role": _INCLUDE_ROLE}


def _control_args(name: str, args: Any, item: YMap, ctx: str) -> Any:
    pos = item.position_of(name)
    if name == "meta":
        if args not in META_ACTIONS:
            raise ValidationError(f"unknown meta action {args!r}", pos=pos, context=ctx, hint="one of: flush_handlers, end_play, end_host, noop")
        return {"action": str(args)}
    if name in ("include_tasks", "import_tasks"):
        if isinstance(args, str):
            return YMap({"file": args}) if not isinstance(args, YMap) else args
        return S.validate(CONTROL_ARGS[name], args, what=name, context=ctx)
    # include_role / import_role
    if isinstance(args, str):
        out = YMap({"name": args})
        out.pos = pos
        out.key_pos, out.value_pos = {}, {"name": pos}
        return out
    return S.validate(CONTROL_ARGS[name], args, what=name, context=ctx)


