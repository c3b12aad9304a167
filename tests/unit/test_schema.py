"""engine.load.schema: field positions for voluptuous errors, suggestions, helpers."""

from __future__ import annotations

import pytest
import voluptuous as vol

from engine.errors import Position, ValidationError
from engine.load import schema as S
from engine.load.yaml import loads

DOC = "a:\n  b: 1\n  c: x\nlist:\n  - 1\n  - two\n"


def _err(schema: object, data: object, **kw: object) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        S.validate(schema, data, what="thing", **kw)  # type: ignore[arg-type]
    return info.value


@pytest.mark.parametrize(
    ("word", "candidates", "expected"),
    [
        ("notfy", ["notify", "name", "when"], "notify"),
        ("comand", ["command", "shell"], "command"),
        ("taks", ["tasks", "hosts", "vars"], "tasks"),
        ("whenn", ["when", "name"], "when"),
        ("chdri", ["chdir", "cmd"], "chdir"),
        ("zzzzzz", ["notify", "when"], None),
        ("", ["notify"], None),
    ],
)
def test_suggest(word: str, candidates: list[str], expected: str | None) -> None:
    assert S.suggest(word, candidates) == expected


def test_is_template() -> None:
    assert S.is_template("{{ x }}")
    assert S.is_template("a {% if x %}b{% endif %}")
    assert not S.is_template("plain { braces }")
    assert not S.is_template(3)


def test_templatable_accepts_templates_and_checks_the_rest() -> None:
    check = S.templatable(int)
    assert check("{{ port }}") == "{{ port }}"
    assert check(80) == 80
    with pytest.raises(vol.Invalid):
        check("eighty")


def test_unknown_keyword_points_at_the_key_and_suggests() -> None:
    err = _err({"a": {"b": int, "cc": str}, "list": list}, loads(DOC, "f.yaml"))
    assert err.message == "unknown keyword 'c' in thing"
    assert err.pos == Position("f.yaml", 3, 3)
    assert err.hint == "did you mean 'cc'?"


def test_unknown_keyword_without_close_match_has_no_hint() -> None:
    err = _err({"a": {"b": int, "zzzzzz": str}, "list": list}, loads(DOC, "f.yaml"))
    assert err.hint is None


def test_suggestion_looks_through_optional_and_required_markers() -> None:
    schema = {
        vol.Required("a"): {vol.Optional("b"): int, vol.Optional("cc"): str},
        vol.Required("list"): list,
    }
    err = _err(schema, loads(DOC, "f.yaml"))
    assert err.hint == "did you mean 'cc'?"


def test_wrong_type_points_at_the_value() -> None:
    err = _err({"a": {"b": str, "c": str}, "list": list}, loads(DOC, "f.yaml"))
    assert err.pos == Position("f.yaml", 2, 6)
    assert err.message == "invalid value for 'a.b' in thing: expected str (got int 1)"


def test_wrong_type_in_a_list_points_at_the_item() -> None:
    err = _err({"a": dict, "list": [int]}, loads(DOC, "f.yaml"))
    assert err.pos == Position("f.yaml", 6, 5)
    assert "'list.1'" in err.message
    assert "got str 'two'" in err.message


def test_missing_required_key_points_at_the_parent_mapping() -> None:
    err = _err(
        {"a": {vol.Required("z"): int, "b": int, "c": str}, "list": list}, loads(DOC, "f.yaml")
    )
    assert err.message == "missing required keyword 'z' in thing"
    assert err.pos == Position("f.yaml", 2, 3)


def test_missing_required_top_level_key_points_at_the_mapping() -> None:
    data = loads("- name: x\n  tasks: []\n", "p.yaml")[0]
    err = _err(S.PLAY, data)
    assert err.message == "missing required keyword 'hosts' in thing"
    assert err.pos == Position("p.yaml", 1, 3)


def test_first_error_in_file_order_is_reported() -> None:
    data = loads("x: 1\ny: 2\nz: 3\n", "o.yaml")
    err = _err({"a": int}, data)
    assert err.message == "unknown keyword 'x' in thing"
    assert err.pos == Position("o.yaml", 1, 1)


def test_context_is_kept() -> None:
    err = _err({"a": int}, loads("b: 1\n", "c.yaml"), context="task 'x'")
    assert err.context == "task 'x'"
    assert "(in task 'x')" in str(err)


def test_play_schema_suggests_play_keywords() -> None:
    data = loads("- hosts: all\n  roless: []\n", "p.yaml")[0]
    err = _err(S.PLAY, data)
    assert err.pos == Position("p.yaml", 2, 3)
    assert err.hint == "did you mean 'roles'?"


def test_play_vars_names_must_be_identifiers() -> None:
    data = loads("- hosts: all\n  vars:\n    bad-name: 1\n", "p.yaml")[0]
    err = _err(S.PLAY, data)
    assert "vars.bad-name" in err.message


def test_play_vars_bad_name_points_at_the_key() -> None:
    data = loads("- hosts: all\n  vars:\n    bad-name: 1\n", "p.yaml")[0]
    err = _err(S.PLAY, data)
    assert err.pos == Position("p.yaml", 3, 5)


@pytest.mark.parametrize(
    ("keyword", "value", "message"),
    [
        ("retries", "[1]", "expected a whole number of retries"),
        ("retries", "-1", "retries"),
        ("delay", "-2", "delay"),
        ("ignore_errors", "3", "expected true or false"),
        ("loop_control", "3", "expected a mapping of loop_var"),
        ("tags", "{a: 1}", "expected a name or a list of names"),
        ("register", "my-result", "expected a variable name"),
        ("notify", "[1]", "notify"),
        ("no_log", "maybe", "expected true or false"),
        ("vars", "[1]", "expected a mapping of variable names to values"),
        ("loop", "{a: 1}", "expected list"),
        ("name", "''", "name"),
    ],
)
def test_task_keyword_schemas_reject(keyword: str, value: str, message: str) -> None:
    data = loads(f"{keyword}: {value}\n", "t.yaml")
    with pytest.raises(ValidationError) as info:
        S.validate({vol.Required(keyword): S.TASK_KEYWORD_SCHEMAS[keyword]}, data, what="task")
    assert message in info.value.message
    assert info.value.pos is not None and info.value.pos.line == 1


@pytest.mark.parametrize(
    ("keyword", "value"),
    [
        ("retries", "3"),
        ("retries", "'{{ n }}'"),
        ("delay", "0.5"),
        ("when", "[a, b == 1]"),
        ("when", "true"),
        ("tags", "[a, b]"),
        ("tags", "a"),
        ("register", "out_1"),
        ("loop", "'{{ xs }}'"),
        ("loop_control", "{loop_var: host, index_var: i, label: x, pause: 1}"),
        ("environment", "{A: 1, B: x, C: true}"),
        ("timeout", "'5m'"),
    ],
)
def test_task_keyword_schemas_accept(keyword: str, value: str) -> None:
    data = loads(f"{keyword}: {value}\n", "t.yaml")
    S.validate({vol.Required(keyword): S.TASK_KEYWORD_SCHEMAS[keyword]}, data, what="task")


@pytest.mark.parametrize(("keyword", "value"), [("retries", "many"), ("ignore_errors", "maybe")])
def test_non_template_strings_are_rejected_for_typed_keywords(keyword: str, value: str) -> None:
    data = loads(f"{keyword}: {value}\n", "t.yaml")
    with pytest.raises(ValidationError):
        S.validate({vol.Required(keyword): S.TASK_KEYWORD_SCHEMAS[keyword]}, data, what="task")


def test_top_level_type_mismatch_points_at_the_document() -> None:
    err = _err(dict, loads("- a\n- b\n", "v.yaml"))
    assert err.pos == Position("v.yaml", 1, 1)
    assert "expected dict" in err.message


def test_top_level_type_mismatch_names_the_actual_type() -> None:
    err = _err(dict, loads("- a\n- b\n", "v.yaml"))
    assert "got list" in err.message


def test_exclusive_keys_are_named() -> None:
    schema = {vol.Exclusive("msg", "what"): str, vol.Exclusive("var", "what"): str}
    err = _err(schema, loads("msg: a\nvar: b\n", "d.yaml"))
    assert "'msg'" in err.message and "'var'" in err.message


def test_require_mapping_and_list() -> None:
    data = loads("- a\n", "r.yaml")
    with pytest.raises(ValidationError, match="a play must be a mapping, got str") as info:
        S.require_mapping(data[0], what="a play", pos=None)
    assert info.value.pos == Position("r.yaml", 1, 3)
    with pytest.raises(ValidationError, match="tasks must be a list, got mapping"):
        S.require_list(loads("a: 1\n", "r.yaml"), what="tasks", pos=None)
    fallback = Position("x.yaml", 9, 9)
    with pytest.raises(ValidationError) as info2:
        S.require_list(3, what="tasks", pos=fallback)
    assert info2.value.pos == fallback
    assert "got int" in info2.value.message
    assert S.require_list(data, what="tasks", pos=None) is data


def test_inventory_group_schema() -> None:
    good = loads("hosts: {a: null, b: {x: 1}}\nvars: {k: v}\nchildren: {g: null}\n", "i.yaml")
    S.validate(S.INVENTORY_GROUP, good, what="group")
    err = _err(S.INVENTORY_GROUP, loads("host: {a: null}\n", "i.yaml"))
    assert err.hint == "did you mean 'hosts'?"


def test_role_meta_argument_spec_types() -> None:
    meta = loads(
        "argument_specs:\n  main:\n    options:\n      port:\n        type: integer\n", "m.yaml"
    )
    err = _err(S.ROLE_META, meta)
    assert err.pos == Position("m.yaml", 5, 15)
    assert "expected one of: str, int" in err.message and err.hint == "did you mean 'int'?"
