"""The named value types of engine.load.types: what they accept, their words, their JSON Schema."""

from __future__ import annotations

import inspect
import json
import re
from typing import Any

import pytest

from engine.errors import ValidationError
from engine.load import types as T
from engine.load.fields import check_expression_syntax

INSTANCES: list[T.Type] = [
    T.Duration(), T.PositiveDuration(), T.Port(), T.NonEmptyStr(), T.VarName(), T.Boolean(), T.Condition(), T.Regex(),
    T.StrOrList("a host pattern or a non-empty list of them"), T.OneOf(["a", "b"]),
    T.IntRange(0, 9), T.MappingOf(dict, "a mapping"), T.ListOf(str, "a list"),
    T.Templatable(T.Port()), T.Nullable(T.Port()),
]


def test_every_type_in_the_module_is_covered_here() -> None:
    classes = {c for _, c in inspect.getmembers(T, inspect.isclass) if issubclass(c, T.Type) and c is not T.Type}
    assert classes == {type(i) for i in INSTANCES}


@pytest.mark.parametrize("kind", INSTANCES, ids=repr)
def test_each_type_says_what_it_expects_and_has_a_json_schema(kind: T.Type) -> None:
    assert kind.expected and kind.expected != "a valid value"
    json.dumps(kind.json_schema)  # plain data, for `smlplay schema`
    assert kind.json_schema


@pytest.mark.parametrize(
    ("kind", "good", "bad"),
    [
        (T.Boolean(), [True, False], ["yes", 1, None, "true"]),
        (T.VarName(), ["out", "_x1"], ["my-result", "1x", 3, ""]),
        (T.StrOrList("hosts"), ["all", ["a", "b"]], [[], "", ["a", ""], 3, [1]]),
        (T.StrOrList("tags", empty=True), [[], "a"], [3, [None]]),
        (T.Condition(), ["a == 1", True, ["a", False]], [{"a": 1}, 3, ["a", {}]]),
        (T.Duration(), [0, 1.5, "30s", "5m", "1h30m", "250ms"], [-1, "soon", True, [], "5 minutes"]),
        (T.PositiveDuration(), [0.5, 1, "30s", "2m"], [0, "0s", -1, "soon", True]),
    ],
)
def test_accepts_and_refuses(kind: T.Type, good: list[Any], bad: list[Any]) -> None:
    for value in good:
        assert kind(value) == value
    for value in bad:
        with pytest.raises(T.Invalid, match=r"^expected "):
            kind(value)


def test_boolean_explains_yaml_11_words() -> None:
    with pytest.raises(T.Invalid) as info:
        T.Boolean()("yes")
    assert info.value.hint == "write true: 'yes' is a string in YAML 1.2"


def test_expression_syntax_is_checked_at_the_given_position() -> None:
    from engine.errors import Position

    check_expression_syntax("a is search('x') and (b | default(1)) > 0", keyword="when", pos=None)
    with pytest.raises(ValidationError, match=re.escape("template syntax error in 'until: r.rc = 0'")) as info:
        check_expression_syntax("r.rc = 0", keyword="until", pos=Position("p.yaml", 3, 14))
    assert str(info.value.pos) == "p.yaml:3:14"
    with pytest.raises(ValidationError, match="empty expression"):
        check_expression_syntax("  ", keyword="when", pos=None)
