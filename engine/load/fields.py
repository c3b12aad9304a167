"""Checks and conversions of single task fields: conditions, control-action arguments."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import voluptuous as vol

from engine.errors import Position, ValidationError
from engine.load import schema as S
from engine.load.specs import VARS
from engine.load.types import MappingOf, NonEmptyStr, is_template
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
    """``{{ }}`` in a condition, or a condition that does not parse, is bad input: report it
    now at the expression, not when (or if) it is evaluated."""
    for keyword in CONDITION_KEYWORDS:
        check_expressions(item, keyword, keyword, ctx)


def check_expressions(mapping: Any, key: str, keyword: str, ctx: str, *, rendered_first: bool = False) -> None:
    """Check the bare expression(s) under ``mapping[key]`` (``when``, ``assert``'s ``that``).

    ``rendered_first``: the value is an action argument, rendered before it is evaluated
    (``that: "{{ a }} == 1"`` works, as in Ansible): only an expression without ``{{ }}``
    is checked here."""
    value = mapping.get(key) if isinstance(mapping, dict) else None
    for i, expr in enumerate(value if isinstance(value, list) else [value]):
        if not isinstance(expr, str) or (rendered_first and is_template(expr)):
            continue
        pos = position_of(expr) or (value.position_of(i) if isinstance(value, YList) else _key_pos(mapping, key))
        try:
            check_bare_expression(expr, keyword=keyword, pos=pos, error=ValidationError)
            check_expression_syntax(expr, keyword=keyword, pos=pos)
        except ValidationError as exc:
            raise exc.with_context(ctx) from None


def _key_pos(mapping: Any, key: str) -> Position | None:
    found = getattr(mapping, "value_pos", {}).get(key)
    return found if found is not None else position_of(mapping)


def check_expression_syntax(expr: str, *, keyword: str, pos: Position | None) -> None:
    """A bare expression that Jinja2 cannot parse (``x ===``), reported where it is written.

    Parsing only: filters and tests are looked up when it is evaluated."""
    from jinja2 import TemplateSyntaxError
    from jinja2.parser import Parser

    from engine.jinja_env import literal_backslashes

    source = expr.strip()
    if not source:
        raise ValidationError(f"'{keyword}' is an empty expression", pos=pos, hint="write a condition, e.g. result.rc == 0")
    env = _syntax_env()
    try:  # the text the templar compiles (string literals keep their backslashes)
        parser = Parser(env, literal_backslashes(env, source, bare=True), state="variable")
        parser.parse_expression()
        if not parser.stream.eos:
            raise TemplateSyntaxError("unexpected text after the expression", parser.stream.current.lineno)
    except TemplateSyntaxError as exc:
        raise ValidationError(f"template syntax error in '{keyword}: {source}': {exc.message}", pos=pos) from None


@functools.cache
def _syntax_env() -> Any:
    import jinja2

    return jinja2.Environment()


def positioned_args(args: Any, item: YMap, name: str) -> Any:
    """The short form's arguments (``command: ""`` -> ``{cmd: ""}``) as a YMap placed at the
    action's value, so an error in them still has a file:line:col."""
    if not isinstance(args, dict) or isinstance(args, YMap):
        return args
    out = YMap(args)
    out.pos = item.position_of(name)
    out.key_pos = {k: item.position_of(name, value=False) for k in args}
    out.value_pos = {k: item.position_of(name) for k in args}
    return out



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


#: ``apply:`` of include_tasks/include_role: keywords for every included task.
APPLY = MappingOf(dict, "a mapping of task keywords (tags, when, ...) to apply to the included tasks")
#: The control actions' argument mappings (each also takes a bare string), read by
#: ``smlplay schema`` too.
META_ACTIONS = ("flush_handlers", "end_play", "end_host", "noop", "clear_host_errors")
_INCLUDE_TASKS = {vol.Required("file"): NonEmptyStr(), vol.Optional("apply"): APPLY}
_INCLUDE_ROLE = {vol.Required("name"): NonEmptyStr(), vol.Optional("tasks_from"): NonEmptyStr(), vol.Optional("vars"): VARS, vol.Optional("apply"): APPLY}
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
        if not isinstance(args, dict):
            raise ValidationError(
                f"invalid {name}: expected a file name or a mapping with 'file' (got {S._type_name(args)})",
                pos=position_of(args) or pos, context=ctx, hint=f"{name}: tasks/setup.yaml",
            )
        return S.validate(CONTROL_ARGS[name], args, what=name, context=ctx)
    # include_role / import_role
    if not isinstance(args, str | dict):
        raise ValidationError(
            f"invalid {name}: expected a role name or a mapping with 'name' (got {S._type_name(args)})",
            pos=position_of(args) or pos, context=ctx, hint=f"{name}: {{name: ROLE, tasks_from: FILE}}",
        )
    if isinstance(args, str):
        out = YMap({"name": args})
        out.pos = pos
        out.key_pos, out.value_pos = {}, {"name": pos}
        return out
    return S.validate(CONTROL_ARGS[name], args, what=name, context=ctx)


