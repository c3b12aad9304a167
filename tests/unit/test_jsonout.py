"""engine.jsonout writes exactly what json.dumps(indent=2, sort_keys=True) writes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.jsonout import dumps_sorted

CASES: list[Any] = [
    {},
    [],
    {"b": [], "a": {}, "c": [{}, []]},
    {"z": 1, "a": [1, 2, {"y": None, "x": True, "w": False}]},
    {"text": "tab\tnew\nline \"quoted\" back\\slash \x01 \x7f"},
    {"unicode": "caf\u00e9 \u2603 \U0001f600"},
    {"floats": [1.0, 0.1, 1e16, 1e-05, 123456789.123, -0.0]},
    {"nan": float("nan"), "inf": float("inf")},
    {"big": 2**70},
    {2: "int keys", 1: "become strings"},
    ("tuple", ["list"]),
]


@pytest.mark.parametrize("data", CASES)
def test_same_bytes_as_the_stdlib(data: Any) -> None:
    assert dumps_sorted(data) == json.dumps(data, indent=2, sort_keys=True)


_leaf = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
_tree = st.recursive(_leaf, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=5), c, max_size=4), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(_tree)
def test_same_bytes_for_any_tree(data: Any) -> None:
    assert dumps_sorted(data) == json.dumps(data, indent=2, sort_keys=True)
