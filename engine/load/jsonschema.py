"""JSON Schema (draft-07) generated from the loader's voluptuous schemas.

Nothing here restates a field: :func:`convert` walks the same objects the loader validates
with (``engine.load.specs``, each action's ``schema``), reading the ``json_schema`` fragment
of the named types in :mod:`engine.load.types`. The documents (:data:`KINDS`) only say how
those schemas nest: a playbook is a list of plays whose task lists hold tasks, a task is the
task keywords plus exactly one action, and so on. Draft-07 because yaml-language-server and
most editors implement it fully.

Where a check cannot be said in JSON Schema (a cross-field rule, a plain function) the
fragment accepts more, never less: an editor must not flag what ``smlplay check`` accepts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import voluptuous as vol

from engine.load import types as T
from engine.load.roleschema import role_definitions, role_entry

DRAFT = "http://json-schema.org/draft-07/schema#"
#: A Jinja2 string where a value of another type goes: checked again after rendering.
TEMPLATE_SCHEMA: dict[str, Any] = {"type": "string", "pattern": r"\{[{%]", "description": "a {{ expression }}, checked after rendering"}
TEMPLATE: dict[str, Any] = {"$ref": "#/definitions/template"}
_SCALARS: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    dict: {"type": "object"},
    list: {"type": "array"},
    type(None): {"type": "null"},
    None: {"type": "null"},
    object: {},
}


def convert(node: Any) -> dict[str, Any]:
    """The JSON Schema fragment for one voluptuous schema node."""
    if isinstance(node, vol.Schema):
        return _mapping(node.schema, extra=node.extra) if isinstance(node.schema, dict) else convert(node.schema)
    if isinstance(node, dict):
        return _mapping(node)
    if isinstance(node, list):
        return _sequence(node)
    if isinstance(node, T.Templatable):
        return {"anyOf": [convert(node.inner), TEMPLATE]}
    if isinstance(node, T.Nullable):
        return {"anyOf": [convert(node.inner), {"type": "null"}]}
    if isinstance(node, T.MappingOf | T.ListOf):
        return {**convert(node.inner), "description": node.expected}
    if isinstance(node, T.Type | T.Rule):
        return dict(getattr(node, "json_schema", {}) or {})
    if isinstance(node, vol.Any):
        return _flat("anyOf", [convert(v) for v in node.validators])
    if isinstance(node, vol.All):
        return _flat("allOf", [convert(v) for v in node.validators])
    if isinstance(node, vol.In):
        return {"enum": list(node.container)}  # type: ignore[arg-type]  # vol.In holds an iterable
    if isinstance(node, vol.Match):
        return {"type": "string", "pattern": _pattern(node.pattern)}
    if isinstance(node, vol.Range):
        return _range(node)
    if isinstance(node, vol.Length):
        return _length(node)
    if isinstance(node, type) or node is None:
        return dict(_SCALARS.get(node, {}))
    if isinstance(node, str | int | float | bool):
        return {"const": node}
    if node is _template_str():
        return TEMPLATE
    fragment = getattr(node, "json_schema", None)  # a plain validator that says what it is
    return dict(fragment) if isinstance(fragment, Mapping) else {}


def _template_str() -> Any:
    from engine.load.specs import TemplateStr

    return TemplateStr


def _mapping(schema: Mapping[Any, Any], extra: int = vol.PREVENT_EXTRA) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object"}
    props: dict[str, Any] = {}
    patterns: dict[str, Any] = {}
    required: list[str] = []
    additional: Any = extra == vol.ALLOW_EXTRA
    exclusive: dict[str, list[str]] = {}
    for key, value in schema.items():
        raw = key.schema if isinstance(key, vol.Marker) else key
        if isinstance(raw, str):
            props[raw] = convert(value)
            if isinstance(key, vol.Required):
                required.append(raw)
            if isinstance(key, vol.Exclusive):
                exclusive.setdefault(key.group_of_exclusion, []).append(raw)
        elif isinstance(raw, vol.Match):
            patterns[_pattern(raw.pattern)] = convert(value)
        elif raw in (str, object) or isinstance(raw, type):
            additional = convert(value)  # any other key: its value's schema
    if props:
        out["properties"] = props
    if patterns:
        out["patternProperties"] = patterns
    if required:
        out["required"] = required
    if additional is not True:
        out["additionalProperties"] = additional if additional else False
    apart = [{"not": {"required": [a, b]}} for keys in exclusive.values() for i, a in enumerate(keys) for b in keys[i + 1 :]]
    if apart:
        out["allOf"] = apart  # vol.Exclusive: at most one of the group
    return out


def _sequence(items: list[Any]) -> dict[str, Any]:
    if not items:
        return {"type": "array"}
    inner = [convert(v) for v in items]
    return {"type": "array", "items": inner[0] if len(inner) == 1 else {"anyOf": inner}}


def _flat(word: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    if word == "anyOf" and any(p == {} for p in parts):
        return {}  # one alternative accepts anything
    parts = [p for p in parts if p != {}]
    if not parts:
        return {}
    return parts[0] if len(parts) == 1 else {word: parts}


def _range(node: vol.Range) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if node.min is not None:
        out["minimum" if node.min_included else "exclusiveMinimum"] = node.min
    if node.max is not None:
        out["maximum" if node.max_included else "exclusiveMaximum"] = node.max
    return out


def _length(node: vol.Length) -> dict[str, Any]:
    # each keyword applies to its own type only, so both are safe on a string-or-list
    out: dict[str, Any] = {}
    if node.min is not None:
        out.update(minLength=node.min, minItems=node.min)
    if node.max is not None:
        out.update(maxLength=node.max, maxItems=node.max)
    return out


def _pattern(pattern: Any) -> str:
    text = pattern.pattern if isinstance(pattern, re.Pattern) else str(pattern)
    return text.replace(r"\Z", "$")


# --- the documents ------------------------------------------------------------------------


def _templatable(fragment: dict[str, Any]) -> dict[str, Any]:
    """What the loader does to action arguments: any value may be a {{ expression }} now."""
    if fragment.get("type") == "object":
        out = dict(fragment)
        for word in ("properties", "patternProperties"):
            if word in out:
                out[word] = {k: _templatable(v) for k, v in out[word].items()}
        if isinstance(out.get("additionalProperties"), dict):
            out["additionalProperties"] = _templatable(out["additionalProperties"])
        return {"anyOf": [out, TEMPLATE]}
    if fragment.get("type") == "array" and isinstance(fragment.get("items"), dict):
        return {"anyOf": [{**fragment, "items": _templatable(fragment["items"])}, TEMPLATE]}
    return fragment if fragment in ({}, TEMPLATE) else {"anyOf": [fragment, TEMPLATE]}


def action_args(name: str) -> dict[str, Any]:
    """An action's value in a task: its argument mapping, the free-form string, or null."""
    from engine.actions import REGISTRY

    act = REGISTRY[name]
    mapping = convert(dict(act.schema))
    mapping["properties"] = {k: _templatable(v) for k, v in mapping.get("properties", {}).items()}
    rules = [r.json_schema for r in act.rules if getattr(r, "json_schema", None)]
    args = {"allOf": [mapping, *rules]} if rules else mapping
    forms: list[dict[str, Any]] = [args]
    if act.free_form:  # `shell: echo hi`: the string is that field's value
        field = next((v for k, v in act.schema.items() if (k.schema if isinstance(k, vol.Marker) else k) == act.free_form), str)
        forms.append(_templatable(convert(field)))
    if not any(isinstance(k, vol.Required) for k in act.schema):
        forms.append({"type": "null"})
    doc = act.doc.split("\n\n")[0].replace("\n", " ")
    return {"anyOf": forms, "description": doc} if len(forms) > 1 else {**args, "description": doc}


def _control_args() -> dict[str, dict[str, Any]]:
    from engine.load.fields import CONTROL_ARGS, META_ACTIONS

    out: dict[str, dict[str, Any]] = {name: {"anyOf": [{"type": "string"}, convert(schema)]} for name, schema in CONTROL_ARGS.items()}
    out["meta"] = {"enum": list(META_ACTIONS)}
    return out


def _task(keywords: frozenset[str]) -> dict[str, Any]:
    from engine.actions import REGISTRY
    from engine.load.specs import TASK_KEYWORD_SCHEMAS
    from engine.model import CONTROL_ACTIONS

    props = {k: convert(v) for k, v in TASK_KEYWORD_SCHEMAS.items() if k in keywords}
    names = [*sorted(REGISTRY), *sorted(CONTROL_ACTIONS)]
    actions = {name: {"$ref": f"#/definitions/action.{name}"} for name in names}
    return {
        "type": "object",
        "properties": {**props, **actions},
        "additionalProperties": False,
        "oneOf": [{"required": [name]} for name in actions],  # exactly one action
    }


def _block() -> dict[str, Any]:
    from engine.load.specs import TASK_KEYWORD_SCHEMAS
    from engine.model import BLOCK_KEYWORDS

    props = {k: convert(v) for k, v in TASK_KEYWORD_SCHEMAS.items() if k in BLOCK_KEYWORDS}
    tasks = {"anyOf": [{"type": "array", "items": {"$ref": "#/definitions/task"}}, {"type": "null"}]}
    props.update(block=tasks, rescue=tasks, always=tasks)
    return {"type": "object", "properties": props, "required": ["block"], "additionalProperties": False}


def definitions() -> dict[str, Any]:
    """Every shared part, referenced as ``#/definitions/NAME`` by the documents."""
    from engine.actions import REGISTRY
    from engine.load import specs
    from engine.model import HANDLER_KEYWORDS, TASK_KEYWORDS

    play = convert(specs.PLAY)
    for section in ("pre_tasks", "tasks", "post_tasks"):
        play["properties"][section] = {"type": "array", "items": {"$ref": "#/definitions/task"}}
    play["properties"]["handlers"] = {"type": "array", "items": {"$ref": "#/definitions/handler"}}
    roles = role_definitions(TEMPLATE)
    entry = convert(specs.ROLE_ENTRY)
    play["properties"]["roles"] = {"type": "array", "items": role_entry([n.split(".", 1)[1] for n in roles], entry)}
    group = convert(specs.INVENTORY_GROUP)
    children = group["properties"]["children"]
    group["properties"]["children"] = {
        "anyOf": [{"type": "object", "additionalProperties": {"anyOf": [{"$ref": "#/definitions/group"}, {"type": "null"}]}}, {"type": "null"}],
        "description": children.get("description", ""),
    }
    return {
        "template": TEMPLATE_SCHEMA,
        "play": play,
        "task": {"anyOf": [{"$ref": "#/definitions/block"}, {"$ref": "#/definitions/action_task"}]},
        "action_task": _task(TASK_KEYWORDS),
        "handler": {"anyOf": [{"$ref": "#/definitions/block"}, _task(HANDLER_KEYWORDS)]},
        "block": _block(),
        "group": group,
        "role_meta": convert(specs.ROLE_META),
        "vars": convert(specs.VarsMap),
        **roles,
        **{f"action.{name}": action_args(name) for name in sorted(REGISTRY)},
        **{f"action.{name}": args for name, args in _control_args().items()},
    }


#: The documents ``smlplay schema`` writes: (title, root schema, where such files live).
KINDS: dict[str, tuple[str, Callable[[], dict[str, Any]], tuple[str, ...]]] = {
    "playbook": (
        "smlplay playbook",
        lambda: {"type": "array", "minItems": 1, "items": {"$ref": "#/definitions/play"}},
        ("playbooks/*.yaml", "playbooks/*.yml"),
    ),
    "tasks": (
        "smlplay task file",
        lambda: {"anyOf": [{"type": "array", "items": {"$ref": "#/definitions/task"}}, {"type": "null"}]},
        ("roles/*/tasks/*.yml", "roles/*/tasks/*.yaml"),
    ),
    "handlers": (
        "smlplay handlers file",
        lambda: {"anyOf": [{"type": "array", "items": {"$ref": "#/definitions/handler"}}, {"type": "null"}]},
        ("roles/*/handlers/*.yml", "roles/*/handlers/*.yaml"),
    ),
    "role-meta": (
        "smlplay role meta (argument specs)",
        lambda: {"$ref": "#/definitions/role_meta"},
        ("roles/*/meta/main.yml", "roles/*/meta/main.yaml"),
    ),
    "vars": (
        "smlplay variables file (role defaults/vars, vars_files)",
        lambda: {"anyOf": [{"$ref": "#/definitions/vars"}, {"type": "null"}]},
        ("roles/*/defaults/*.yml", "roles/*/vars/*.yml", "playbooks/vars/*.yaml"),
    ),
    "inventory": (
        "smlplay inventory",
        lambda: {"anyOf": [{"type": "object", "additionalProperties": {"anyOf": [{"$ref": "#/definitions/group"}, {"type": "null"}]}}, {"type": "null"}]},
        ("inventory/*.yaml", "inventory/*.yml"),
    ),
}


def document(kind: str) -> dict[str, Any]:
    """The complete, self-contained JSON Schema for one kind of file."""
    title, root, _ = KINDS[kind]
    return {"$schema": DRAFT, "$id": f"smlplay-{kind}.schema.json", "title": title, **root(), "definitions": definitions()}
