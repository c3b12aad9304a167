"""voluptuous schemas for every user-written structure, and errors that point at the field.

voluptuous reports a *path* (``['tasks', 3, 'notfy']``); :func:`validate` walks that path
through the position-carrying YAML nodes to find the exact line and column, and adds a
"did you mean" suggestion for misspelt keywords.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import voluptuous as vol

from engine.errors import Position, ValidationError
from engine.load import types as T
from engine.load.types import is_template
from engine.load.yaml import YList, YMap, position_of

__all__ = ["is_template", "suggest", "validate"]


def suggest(word: str, candidates: Iterable[str]) -> str | None:
    """The nearest valid name for a typo (``notfy`` -> ``notify``), if one is close."""
    return T.nearest(word, candidates)


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


# Compiled schemas by the identity of their source (an action's schema is validated on every
# task and host: compiling it each time was ~20% of a large dry-run). The source is kept, so
# its id is not reused; a caller passing a fresh schema each time only refills the cache.
_COMPILED: dict[int, tuple[Any, vol.Schema]] = {}


def compiled(source: Any, build: Callable[[Any], Any] | None = None) -> vol.Schema:
    """``vol.Schema(build(source))``, compiled once per ``source`` object (by identity)."""
    hit = _COMPILED.get(id(source))
    if hit is not None and hit[0] is source:
        return hit[1]
    if len(_COMPILED) >= 512:
        _COMPILED.clear()
    schema = vol.Schema(build(source) if build is not None else source)
    _COMPILED[id(source)] = (source, schema)
    return schema


def validate(schema: Any, data: Any, *, what: str, context: str | None = None) -> Any:
    """Validate ``data``; on failure raise a :class:`ValidationError` at the offending field."""
    checker = schema if isinstance(schema, vol.Schema) else compiled(schema)
    try:
        return checker(data)
    except vol.MultipleInvalid as exc:
        errors = list(exc.errors)
        first = min(errors, key=lambda e: _sort_key(data, e, errors))
        raise to_validation_error(first, data, what=what, context=context, schema=checker) from None
    except vol.Invalid as exc:
        raise to_validation_error(exc, data, what=what, context=context, schema=checker) from None


def _sort_key(data: Any, err: vol.Invalid, errors: list[vol.Invalid]) -> tuple[int, int, int]:
    """Report the error that comes first in the file, so repeated runs say the same thing;
    but a missing key comes after an unknown key of the same mapping: ``host:`` written for
    ``hosts:`` is reported at the misspelt key, with the suggestion, not as "missing"."""
    pos = position_for(data, list(err.path), key=True)
    missing_with_typo = err.error_message == "required key not provided" and any(
        e.error_message == "extra keys not allowed" and list(e.path)[:-1] == list(err.path)[:-1] for e in errors
    )
    return (int(missing_with_typo), *((pos.line, pos.col) if pos else (0, 0)))


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
            hint=f"did you mean '{guess}'?" if guess else ANSIBLE_ONLY.get(str(keyword)),
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
    field_name = ".".join(str(p) for p in path)
    shown = "" if isinstance(value, dict | list) else f" {_short(value)}"
    hint = getattr(err, "hint", None)
    if isinstance(err, T.RuleInvalid):  # a cross-field rule (``copy`` needs ``src`` or ``content``)
        return ValidationError(
            f"invalid '{field_name}' in {what}: {msg}" if field_name else f"invalid {what}: {msg}",
            pos=position_for(data, path) if path else position_of(data),
            context=context,
            hint=hint,
        )
    head = f"invalid value for '{field_name}' in {what}" if field_name else f"invalid {what}"
    return ValidationError(
        f"{head}: {msg} (got {_type_name(value)}{shown})",
        pos=position_for(data, path),
        context=context,
        hint=hint,
    )


def _short(value: Any) -> str:
    text = repr(str(value) if isinstance(value, str) else value)
    return text if len(text) <= 60 else text[:57] + "..."


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


def _unwrap(node: Any) -> Any:
    """Look through wrappers (Schema, Any, All, the named types) to a dict or list schema."""
    for _ in range(20):
        if isinstance(node, vol.Schema):
            node = node.schema
        elif isinstance(node, vol.Any | vol.All):
            node = next((v for v in map(_unwrap, node.validators) if isinstance(v, dict | list)), None)
        elif isinstance(node, T.Templatable | T.Nullable):
            node = node.inner
        elif isinstance(node, T.MappingOf | T.ListOf):
            node = node.inner.schema
        else:
            return node
    return node


def _dict_schema_at(schema: Any, path: list[Any]) -> dict[Any, Any] | None:
    """The dict schema that validates the mapping at ``path`` of a (nested) schema."""
    node = _unwrap(schema)
    for step in path:
        if isinstance(node, dict):
            literal = [v for k, v in node.items() if (k.schema if isinstance(k, vol.Marker) else k) == step]
            other = [v for k, v in node.items() if not isinstance(k.schema if isinstance(k, vol.Marker) else k, str)]
            node = _unwrap((literal or other or [None])[0])
        elif isinstance(node, list) and node:
            node = _unwrap(node[0])
        else:
            return None
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


# --- the data schemas live in engine.load.specs; re-exported for the loader -------------

from engine.load.specs import (  # noqa: E402  (after the machinery they do not need)
    ANSIBLE_ONLY,
    ARG_SPEC,
    BAD_VAR_NAME,
    HEALTH,
    HEALTH_FIELDS,
    INVENTORY_GROUP,
    PLAY,
    ROLE_META,
    TASK_KEYWORD_SCHEMAS,
    Bool,
    EnvMap,
    Expr,
    Str,
    StrList,
    TemplateStr,
    VarsMap,
)

__all__ += [
    "ARG_SPEC", "BAD_VAR_NAME", "HEALTH", "HEALTH_FIELDS", "INVENTORY_GROUP", "PLAY", "ROLE_META",
    "TASK_KEYWORD_SCHEMAS", "Bool", "EnvMap", "Expr", "Str", "StrList",
    "TemplateStr", "VarsMap",
]
