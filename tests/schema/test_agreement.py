"""No false alarms in editors: every value a named type of the loader accepts, the JSON
Schema fragment generated for it accepts too (it may accept more: a compiled regex, a range
after rendering are checked by ``smlplay check``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
import voluptuous as vol

from engine.actions import REGISTRY
from engine.load import specs
from engine.load import types as T
from engine.load.jsonschema import TEMPLATE_SCHEMA, convert

SAMPLES: list[Any] = [
    0, 1, -1, 2, 80, 599, 65535, 65536, 1.5, -0.5, True, False, None, "", " ", "x", "GET", "ssh", "local",
    "8080", " 8080 ", "0", "30s", "30S", "5m", "1h30m", "1.5h", "2 s", "100ms", "100MS", "1d", "-5s", "1h 30m",
    "{{ x }}", "{% if a %}1{% endif %}", "a.*b", "(", "[", "^x$", [1], ["a"], {"a": 1}, {"port": 80},
]


def named_types(node: Any, seen: set[int] | None = None) -> Iterator[Any]:
    """Every named type (engine.load.types) inside a schema, however nested."""
    seen = set() if seen is None else seen
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, T.Type):
        yield node
    children: list[Any] = []
    if isinstance(node, vol.Schema):
        children = [node.schema]
    elif isinstance(node, dict):
        children = [*node.keys(), *node.values()]
    elif isinstance(node, list | tuple):
        children = list(node)
    elif isinstance(node, vol.Any | vol.All):
        children = list(node.validators)
    elif isinstance(node, T.Templatable | T.Nullable | T.MappingOf | T.ListOf):
        children = [node.inner]
    for child in children:
        yield from named_types(child, seen)


def all_types() -> list[Any]:
    roots: list[Any] = [specs.PLAY, specs.TASK_KEYWORD_SCHEMAS, specs.ROLE_META, specs.INVENTORY_GROUP, specs.HEALTH]
    roots += [dict(a.schema) for a in REGISTRY.values()]
    found: dict[str, Any] = {}
    for root in roots:
        for t in named_types(root):
            if not isinstance(t, T.MappingOf | T.ListOf):  # containers: their inner types are walked
                found.setdefault(repr(t), t)
    return list(found.values())


@pytest.mark.parametrize("named", all_types(), ids=repr)
def test_json_schema_accepts_what_the_type_accepts(named: Any) -> None:
    v = jsonschema.Draft7Validator({**convert(named), "definitions": {"template": TEMPLATE_SCHEMA}})
    for value in SAMPLES:
        if isinstance(value, bool) and "boolean" not in str(convert(named)):
            continue  # voluptuous' int takes True (bool subclasses int): a loader gap, not the editor's
        try:
            vol.Schema(named)(value)
        except vol.Invalid:
            continue
        assert v.is_valid(value), f"{named!r} accepts {value!r} but its JSON Schema does not"


def test_the_walk_finds_the_types() -> None:
    kinds = {type(t).__name__ for t in all_types()}
    assert {"Port", "Duration", "NonEmptyStr", "OneOf", "Templatable", "IntRange"} <= kinds
