"""engine.load.yaml: positions, duplicate keys, YAML 1.2 booleans, plain()."""

from __future__ import annotations

import json

import pytest

from engine.errors import Position, ValidationError
from engine.load.yaml import YList, YMap, YStr, load_file, loads, plain, position_of

DOC = """\
# a comment
- name: first
  vars:
    port: 8000
    hosts: [a, b]
  tasks:
    - command: echo hi
      notify:
        - restart
"""


def test_mapping_sequence_and_string_types() -> None:
    data = loads(DOC, "pb.yaml")
    assert isinstance(data, YList)
    play = data[0]
    assert isinstance(play, YMap)
    assert isinstance(play["name"], YStr)
    assert isinstance(play["vars"]["port"], int)
    assert isinstance(play["vars"]["hosts"], YList)


def test_positions_of_nodes_keys_values_and_items() -> None:
    data = loads(DOC, "pb.yaml")
    play = data[0]
    assert data.pos == Position("pb.yaml", 2, 1)
    assert data.position_of(0) == Position("pb.yaml", 2, 3)
    assert play.pos == Position("pb.yaml", 2, 3)
    assert play.position_of("name", value=False) == Position("pb.yaml", 2, 3)
    assert play.position_of("name") == Position("pb.yaml", 2, 9)
    assert play["name"].pos == Position("pb.yaml", 2, 9)
    assert play.position_of("vars", value=False) == Position("pb.yaml", 3, 3)
    port_vars = play["vars"]
    assert port_vars.position_of("port", value=False) == Position("pb.yaml", 4, 5)
    assert port_vars.position_of("port") == Position("pb.yaml", 4, 11)
    hosts = port_vars["hosts"]
    assert hosts.position_of(0) == Position("pb.yaml", 5, 13)
    assert hosts.position_of(1) == Position("pb.yaml", 5, 16)
    assert hosts[1].pos == Position("pb.yaml", 5, 16)
    task = play["tasks"][0]
    assert task.position_of("command") == Position("pb.yaml", 7, 16)
    assert task["notify"].position_of(0) == Position("pb.yaml", 9, 11)
    assert position_of(task["notify"][0]) == Position("pb.yaml", 9, 11)


def test_position_fallbacks() -> None:
    data = loads("a: 1\nb: [x]\n", "f.yaml")
    # a missing key falls back to the mapping itself; an index out of range to the list
    assert data.position_of("zzz") == data.pos
    assert data["b"].position_of(7) == data["b"].pos
    # non-string scalars carry no position of their own
    assert position_of(data["a"]) is None
    assert position_of(42) is None


def test_position_str_is_file_line_col() -> None:
    assert str(Position("roles/r/tasks/main.yaml", 3, 7)) == "roles/r/tasks/main.yaml:3:7"


def test_duplicate_key_is_an_error_with_both_lines() -> None:
    with pytest.raises(ValidationError) as info:
        loads("a: 1\nb: 2\na: 3\n", "dup.yaml")
    err = info.value
    assert err.pos == Position("dup.yaml", 3, 1)
    assert "duplicate key 'a'" in err.message
    assert "first defined at line 1" in err.message
    assert err.hint and "remove or rename" in err.hint


def test_duplicate_key_in_nested_mapping() -> None:
    with pytest.raises(ValidationError) as info:
        loads("- x:\n    k: 1\n    k: 2\n", "n.yaml")
    assert info.value.pos == Position("n.yaml", 3, 5)


def test_non_scalar_key_is_rejected() -> None:
    with pytest.raises(ValidationError, match="mapping key must be a scalar") as info:
        loads("? [a, b]\n: 1\n", "k.yaml")
    assert info.value.pos == Position("k.yaml", 1, 3)


@pytest.mark.parametrize("word", ["yes", "no", "on", "off", "y", "n", "Yes", "NO", "On", "OFF"])
def test_yaml11_booleans_stay_strings(word: str) -> None:
    data = loads(f"v: {word}\nl: [{word}]\n")
    assert data["v"] == word
    assert isinstance(data["v"], str)
    assert data["l"] == [word]


@pytest.mark.parametrize(
    ("word", "value"),
    [
        ("true", True),
        ("True", True),
        ("TRUE", True),
        ("false", False),
        ("False", False),
        ("FALSE", False),
    ],
)
def test_yaml12_booleans(word: str, value: bool) -> None:
    data = loads(f"v: {word}\n")
    assert data["v"] is value


def test_norway_problem() -> None:
    data = loads("countries: [NO, SE, FI]\n")
    assert data["countries"] == ["NO", "SE", "FI"]


def test_other_scalars_keep_their_types() -> None:
    data = loads("i: 3\nf: 1.5\nn: null\nt: ~\ns: '3'\nq: \"true\"\n")
    assert data["i"] == 3 and type(data["i"]) is int
    assert data["f"] == 1.5
    assert data["n"] is None and data["t"] is None
    assert data["s"] == "3" and isinstance(data["s"], str)
    assert data["q"] == "true" and isinstance(data["q"], str)


def test_anchors_and_merge_keys() -> None:
    data = loads("base: &b {x: 1, y: 2}\nchild:\n  <<: *b\n  z: 3\n")
    assert dict(data["child"]) == {"x": 1, "y": 2, "z": 3}
    assert data["child"].position_of("z", value=False).line == 4


def test_merge_key_can_be_overridden() -> None:
    data = loads("base: &b {x: 1, y: 2}\nchild:\n  <<: *b\n  y: 3\n")
    assert dict(data["child"]) == {"x": 1, "y": 3}


def test_merge_key_list_earlier_mapping_wins_and_explicit_duplicates_still_fail() -> None:
    data = loads("a: &a {x: 1}\nb: &b {x: 2, z: 3}\nc:\n  <<: [*a, *b]\n")
    assert dict(data["c"]) == {"x": 1, "z": 3}  # as PyYAML: the first mapping listed wins
    with pytest.raises(ValidationError, match="duplicate key 'y'"):
        loads("base: &b {x: 1}\nchild:\n  <<: *b\n  y: 1\n  y: 2\n")


@pytest.mark.parametrize(
    ("text", "line", "col", "problem"),
    [
        ("a: [1, 2\nb: 3\n", 2, 2, "did not find expected ',' or ']'"),
        ("- name: x\n\tcommand: y\n", 2, 1, "tab character"),
        ("a: 1\n b: 2\n", 2, 3, "mapping values are not allowed"),
        ("a: 'open\n", 2, 1, "found unexpected end of stream"),
    ],
)
def test_syntax_errors_carry_positions(text: str, line: int, col: int, problem: str) -> None:
    with pytest.raises(ValidationError) as info:
        loads(text, "bad.yaml")
    err = info.value
    assert err.pos == Position("bad.yaml", line, col)
    assert err.message.startswith("YAML syntax error")
    assert problem in err.message


def test_load_file_missing_and_ok(tmp_path) -> None:
    with pytest.raises(ValidationError, match="file not found"):
        load_file(tmp_path / "nope.yaml")
    f = tmp_path / "ok.yaml"
    f.write_text("k: v\n", encoding="utf-8")
    data = load_file(f)
    assert data["k"].pos == Position(str(f), 1, 4)


def test_load_file_not_utf8(tmp_path) -> None:
    f = tmp_path / "latin.yaml"
    f.write_bytes(b"k: \xe9\xff\n")
    with pytest.raises(ValidationError, match="cannot read"):
        load_file(f)


def test_empty_document_is_none() -> None:
    assert loads("") is None
    assert loads("# only a comment\n") is None


def test_plain_strips_wrappers_deeply() -> None:
    data = loads("a: [x, {b: y}]\nc: 1\n")
    out = plain(data)
    assert type(out) is dict
    assert type(out["a"]) is list
    assert type(out["a"][0]) is str
    assert type(out["a"][1]) is dict
    assert json.dumps(out, sort_keys=True) == '{"a": ["x", {"b": "y"}], "c": 1}'
