"""voluptuous schemas for every user-written structure, and errors that point at the field.

voluptuous reports a *path* (``['tasks', 3, 'notfy']``); :func:`validate` walks that path
through the position-carrying YAML nodes to find the exact line and column, and adds a
"did you mean" suggestion for misspelt keywords.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

import voluptuous as vol

from engine.errors import Position, ValidationError
from engine.load.yaml import YList, YMap, position_of


def suggest(word: str, candidates: Iterable[str]) -> str | None:
    """The nearest valid name for a typo (``notfy`` -> ``notify``), if one is close."""
    matches = difflib.get_close_matches(str(word), sorted(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def templatable(inner: Any) -> Any:
    """Accept a Jinja2 string now (checked again after rendering) or a value of ``inner``."""

    def check(value: Any) -> Any:
        if is_template(value):
            return value
        return vol.Schema(inner)(value)

    return check


def _node_at(data: Any, path: list[Any]) -> tuple[Any, Any]:
    """Walk ``path``; return (parent node, last key) as far as the data goes."""
    node, parent, key = data, None, None
    for step in path:
        if (isinstance(node, dict) and step in node) or (isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node)):
            parent, key, node = node, step, node[step]
        else:
            return node, step
    return parent, key


def position_for(data: Any, path: list[Any], *, key: bool = False) -> Position | None:
    parent, last = _node_at(data, path)
    if isinstance(parent, YMap):
        if last in parent:
            return parent.position_of(last, value=not key)
        return parent.pos
    if isinstance(parent, YList) and isinstance(last, int):
        return parent.position_of(last)
    return position_of(parent) or position_of(data)


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, list):
        return "list"
    if value is None:
        return "null"
    return type(value).__name__.replace("YStr", "str")


def validate(schema: Any, data: Any, *, what: str, context: str | None = None) -> Any:
    """Validate ``data``; on failure raise a :class:`ValidationError` at the offending field."""
    compiled = schema if isinstance(schema, vol.Schema) else vol.Schema(schema)
    try:
        return compiled(data)
    except vol.MultipleInvalid as exc:
        first = min(exc.errors, key=lambda e: _sort_key(data, e))
        raise to_validation_error(first, data, what=what, context=context, schema=compiled) from None
    except vol.Invalid as exc:
        raise to_validation_error(exc, data, what=what, context=context, schema=compiled) from None


def _sort_key(data: Any, err: vol.Invalid) -> tuple[int, int]:
    """Report the error that comes first in the file, so repeated runs say the same thing."""
    pos = position_for(data, list(err.path), key=True)
    return (pos.line, pos.col) if pos else (0, 0)


def to_validation_error(
    err: vol.Invalid, data: Any, *, what: str, context: str | None = None, schema: Any = None
) -> ValidationError:
    error = _to_validation_error(err, data, what=what, context=context, schema=schema)
    error.path = list(err.path)  # type: ignore[attr-defined]  # where in `data` (re-located later)
    return error


def _to_validation_error(
    err: vol.Invalid, data: Any, *, what: str, context: str | None = None, schema: Any = None
) -> ValidationError:
    path = list(err.path)
    msg = err.error_message
    if msg == "extra keys not allowed" and path:
        keyword = path[-1]
        guess = suggest(str(keyword), _allowed_keys(schema, path[:-1]))
        return ValidationError(
            f"unknown keyword '{keyword}' in {what}",
            pos=position_for(data, path, key=True),
            context=context,
            hint=f"did you mean '{guess}'?" if guess else None,
        )
    if msg == "required key not provided" and path:
        return ValidationError(
            f"missing required keyword '{path[-1]}' in {what}",
            pos=position_for(data, path[:-1]) if len(path) > 1 else position_of(data),
            context=context,
        )
    if msg == BAD_VAR_NAME and path:
        # The key itself failed VarsMap's key pattern: point at the key, not at its value.
        where = f" ('{'.'.join(map(str, path))}')" if len(path) > 1 else ""
        return ValidationError(
            f"invalid variable name '{path[-1]}' in {what}{where}",
            pos=position_for(data, path, key=True),
            context=context,
            hint="a variable name is letters, digits and '_', and does not start with a digit",
        )
    if isinstance(err, vol.ExclusiveInvalid) and path:
        return _exclusive_error(data, path, what=what, context=context, schema=schema)
    if path:
        parent, last = _node_at(data, path)
        value = parent[last] if parent is not None and _has(parent, last) else None
    else:
        value = data  # the top-level value itself has the wrong type
    field_name = ".".join(str(p) for p in path) or what
    shown = "" if isinstance(value, dict | list) else f" {value!r}"
    return ValidationError(
        f"invalid value for '{field_name}' in {what}: {msg} (got {_type_name(value)}{shown})",
        pos=position_for(data, path),
        context=context,
    )


def _has(parent: Any, key: Any) -> bool:
    if isinstance(parent, dict):
        return key in parent
    if isinstance(parent, list) and isinstance(key, int):
        return 0 <= key < len(parent)
    return False


def _exclusive_error(
    data: Any, path: list[Any], *, what: str, context: str | None, schema: Any
) -> ValidationError:
    """Name the keys that cannot be used together (voluptuous only names their group)."""
    group, mapping_path = path[-1], path[:-1]
    mapping = data
    for step in mapping_path:
        mapping = mapping[step] if _has(mapping, step) else None
    node = _dict_schema_at(schema, mapping_path) or {}
    members = [k.schema for k in node if isinstance(k, vol.Exclusive) and k.group_of_exclusion == group]
    present = [k for k in mapping if k in members] if isinstance(mapping, dict) else []  # file order
    if len(present) < 2:
        return ValidationError(f"conflicting keys in {what} ({group})", pos=position_for(data, path), context=context)
    keys = ", ".join(f"'{k}'" for k in present[:-1]) + f" and '{present[-1]}'"
    return ValidationError(
        f"{keys} cannot be used together in {what}",
        pos=position_for(data, [*mapping_path, present[0]], key=True),
        context=context,
        hint="keep only one of them",
    )


def _dict_schema_at(schema: Any, path: list[Any]) -> dict[Any, Any] | None:
    """The dict schema that validates the mapping at ``path`` of a (nested) schema."""
    node = schema.schema if isinstance(schema, vol.Schema) else schema
    for step in path:
        if isinstance(node, vol.Schema):
            node = node.schema
        if isinstance(node, vol.Any):
            node = next((v for v in node.validators if isinstance(v, dict)), None)
        if isinstance(node, dict):
            node = next(
                (v for k, v in node.items() if (k.schema if isinstance(k, vol.Marker) else k) == step),
                None,
            )
        elif isinstance(node, list) and node:
            node = node[0]
        else:
            return None
    if isinstance(node, vol.Schema):
        node = node.schema
    if isinstance(node, vol.Any):
        node = next((v for v in node.validators if isinstance(v, dict)), None)
    return node if isinstance(node, dict) else None


def _allowed_keys(schema: Any, path: list[Any]) -> list[str]:
    """The literal keys a (nested) dict schema accepts at ``path``, for suggestions."""
    node = _dict_schema_at(schema, path)
    if node is None:
        return []
    keys = (k.schema if isinstance(k, vol.Marker) else k for k in node)
    return [k for k in keys if isinstance(k, str)]


def require_mapping(data: Any, *, what: str, pos: Position | None, context: str | None = None) -> YMap:
    if not isinstance(data, dict):
        raise ValidationError(
            f"{what} must be a mapping, got {_type_name(data)}",
            pos=position_of(data) or pos,
            context=context,
        )
    return data  # type: ignore[return-value]


def require_list(data: Any, *, what: str, pos: Position | None, context: str | None = None) -> YList:
    if not isinstance(data, list):
        raise ValidationError(
            f"{what} must be a list, got {_type_name(data)}",
            pos=position_of(data) or pos,
            context=context,
        )
    return data  # type: ignore[return-value]


# --- keyword value schemas -------------------------------------------------------------


def TemplateStr(value: Any) -> str:
    """A string only when it is a Jinja2 expression (rendered and checked at run time)."""
    if is_template(value):
        return str(value)
    raise vol.Invalid("expected a literal value or a {{ expression }}")


Str = vol.All(str, vol.Length(min=1))
StrList = vol.Any(Str, [Str])
Expr = vol.Any(str, bool, [vol.Any(str, bool)])
Number = vol.Any(int, float)
PosNumber = vol.All(Number, vol.Range(min=0))
Bool = bool
#: VarsMap's key error; to_validation_error recognises it to point at the key.
BAD_VAR_NAME = "not a valid variable name"
VarsMap = vol.Schema({vol.Match(r"^[A-Za-z_][A-Za-z0-9_]*$", msg=BAD_VAR_NAME): object})
EnvMap = vol.Schema({str: vol.Any(str, int, float, bool)})

LOOP_CONTROL = {
    vol.Optional("loop_var"): vol.Match(r"^[A-Za-z_][A-Za-z0-9_]*$"),
    vol.Optional("index_var"): vol.Match(r"^[A-Za-z_][A-Za-z0-9_]*$"),
    vol.Optional("label"): object,
    vol.Optional("pause"): PosNumber,
}

HTTP_PROBE = vol.Any(
    str,
    {
        vol.Required("url"): str,
        vol.Optional("status"): vol.Any(int, [int], str),
        vol.Optional("method"): vol.In(["GET", "POST", "HEAD", "PUT"]),
        vol.Optional("json"): object,
        vol.Optional("body"): str,
        vol.Optional("json_path"): str,
        vol.Optional("equals"): object,
        vol.Optional("condition"): str,
        vol.Optional("contains"): str,
        vol.Optional("request_timeout"): vol.Any(PosNumber, str),
    },
)

HEALTH = {
    # one probe, or a list checked in order (``/health``, then a real generation)
    vol.Optional("http"): vol.Any(HTTP_PROBE, [HTTP_PROBE]),
    vol.Optional("tcp"): vol.Any(
        str,
        int,
        {vol.Required("port"): vol.Any(int, str), vol.Optional("host"): str},
    ),
    vol.Optional("log"): vol.Any(
        str, {vol.Required("regex"): str, vol.Optional("path"): str}
    ),
    vol.Optional("cmd"): str,
    vol.Optional("timeout"): vol.Any(PosNumber, str),
    vol.Optional("interval"): vol.Any(PosNumber, str),
    vol.Optional("process"): str,
    vol.Optional("name"): str,
}

TASK_KEYWORD_SCHEMAS: dict[str, Any] = {
    "name": Str,
    "when": Expr,
    "loop": vol.Any(list, str),
    "loop_control": LOOP_CONTROL,
    "register": vol.Match(r"^[A-Za-z_][A-Za-z0-9_]*$", msg="expected a variable name"),
    "until": Expr,
    "retries": vol.Any(vol.All(int, vol.Range(min=0)), TemplateStr),
    "delay": vol.Any(PosNumber, str),
    "changed_when": Expr,
    "failed_when": Expr,
    "ignore_errors": vol.Any(Bool, TemplateStr),
    "notify": StrList,
    "tags": StrList,
    "vars": VarsMap,
    "environment": vol.Any(EnvMap, str),
    "timeout": vol.Any(PosNumber, str),
    "run_once": vol.Any(Bool, TemplateStr),
    "delegate_to": str,
    "no_log": Bool,
    "check_mode": Bool,
    "health": HEALTH,
    "listen": StrList,
    "args": dict,
}

ROLE_ARG_TYPES = ("str", "int", "float", "bool", "list", "dict", "path", "raw")
ARG_SPEC = {
    vol.Optional("type"): vol.In(ROLE_ARG_TYPES),
    vol.Optional("required"): Bool,
    vol.Optional("default"): object,
    vol.Optional("choices"): list,
    vol.Optional("description"): vol.Any(str, [str]),
    vol.Optional("elements"): vol.In(ROLE_ARG_TYPES),
    vol.Optional("options"): dict,
}
ROLE_META = {
    vol.Optional("dependencies"): list,
    vol.Optional("argument_specs"): {
        str: {
            vol.Optional("short_description"): str,
            vol.Optional("description"): vol.Any(str, [str]),
            vol.Optional("options"): {str: ARG_SPEC},
        }
    },
    vol.Optional("galaxy_info"): dict,
    vol.Optional("description"): str,
}

PLAY = {
    vol.Required("hosts"): vol.Any(Str, [Str]),
    vol.Optional("name"): Str,
    vol.Optional("vars"): VarsMap,
    vol.Optional("vars_files"): StrList,
    vol.Optional("roles"): list,
    vol.Optional("pre_tasks"): list,
    vol.Optional("tasks"): list,
    vol.Optional("post_tasks"): list,
    vol.Optional("handlers"): list,
    vol.Optional("gather_facts"): Bool,
    vol.Optional("force_handlers"): Bool,
    vol.Optional("environment"): EnvMap,
    vol.Optional("tags"): StrList,
}

INVENTORY_GROUP: dict[Any, Any] = {
    vol.Optional("hosts"): vol.Any(None, {str: vol.Any(None, dict)}),
    vol.Optional("vars"): vol.Any(None, VarsMap),
    vol.Optional("children"): vol.Any(None, {str: vol.Any(None, dict)}),
}
