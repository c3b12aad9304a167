"""engine.template: native types, strict undefined with positions, conditions, Unknown."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import Position, TemplateError
from engine.load.yaml import loads
from engine.template import Templar, Unknown, UnknownValue


@pytest.fixture(scope="module")
def t() -> Templar:
    return Templar()


# -- native types -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "scope", "expected"),
    [
        ("{{ n }}", {"n": 3}, 3),
        ("{{ 2 * n }}", {"n": 3}, 6),
        ("{{ n / 2 }}", {"n": 3}, 1.5),
        ("{{ xs }}", {"xs": [1, 2]}, [1, 2]),
        ("{{ d }}", {"d": {"a": 1}}, {"a": 1}),
        ("{{ flag }}", {"flag": False}, False),
        ("{{ nothing }}", {"nothing": None}, None),
        ("{{ xs | length }}", {"xs": [1, 2, 3]}, 3),
        ("{{  n  }}", {"n": 7}, 7),
        ("{{ [1, 2] + [3] }}", {}, [1, 2, 3]),
    ],
)
def test_single_expression_keeps_native_type(
    t: Templar, source: str, scope: dict, expected: object
) -> None:
    out = t.render(source, scope)
    assert out == expected
    assert type(out) is type(expected)


@pytest.mark.parametrize(
    ("source", "scope", "expected"),
    [
        ("{{ n }} ", {"n": 3}, "3 "),
        ("port={{ n }}", {"n": 3}, "port=3"),
        ("{{ a }}{{ b }}", {"a": 1, "b": 2}, "12"),
        ("{{ a }}-{{ b }}", {"a": 1, "b": 2}, "1-2"),
        ("{% if f %}yes{% endif %}", {"f": True}, "yes"),
        ("{{ xs }} items", {"xs": [1]}, "[1] items"),
    ],
)
def test_anything_else_renders_to_a_string(
    t: Templar, source: str, scope: dict, expected: str
) -> None:
    out = t.render(source, scope)
    assert out == expected
    assert type(out) is str


def test_no_literal_eval_of_rendered_text(t: Templar) -> None:
    # a string that looks like a list stays a string (Ansible's safe_eval would turn it into a list)
    assert t.render("{{ s }}", {"s": "[1, 2]"}) == "[1, 2]"
    assert t.render("{{ '1' }}", {}) == "1"
    assert isinstance(t.render("{{ '1' }}", {}), str)
    assert t.render("{{ s }}", {"s": "True"}) == "True"


def test_plain_values_pass_through(t: Templar) -> None:
    assert t.render(3, {}) == 3
    assert t.render(None, {}) is None
    assert t.render(True, {}) is True
    s = loads("k: hello\n")["k"]
    out = t.render(s, {})
    assert out == "hello" and type(out) is str


def test_render_recurses_into_mappings_and_lists(t: Templar) -> None:
    data = loads("a: '{{ n }}'\nb: [x, '{{ n + 1 }}', {c: '{{ n }}!'}]\n'{{ k }}': v\n")
    out = t.render(data, {"n": 1, "k": "key"})
    assert out == {"a": 1, "b": ["x", 2, {"c": "1!"}], "key": "v"}
    assert type(out) is dict


def test_rendered_values_are_not_rendered_again(t: Templar) -> None:
    assert t.render("{{ s }}", {"s": "{{ boom }}"}) == "{{ boom }}"


# -- errors carry positions -----------------------------------------------------------------


def test_undefined_variable_points_at_the_string(t: Templar) -> None:
    data = loads("cmd: echo {{ prot }}\n", "pb.yaml")
    with pytest.raises(TemplateError) as info:
        t.render(data["cmd"], {"port": 1})
    err = info.value
    assert err.pos == Position("pb.yaml", 1, 6)
    assert "'prot' is undefined" in err.message
    assert "echo {{ prot }}" in err.message


def test_undefined_in_single_expression_points_at_the_string(t: Templar) -> None:
    data = loads("x:\n  y: '{{ missing }}'\n", "pb.yaml")
    with pytest.raises(TemplateError) as info:
        t.render(data, {})
    assert info.value.pos == Position("pb.yaml", 2, 6)
    assert "'missing' is undefined" in info.value.message


def test_undefined_in_list_item_points_at_the_item(t: Templar) -> None:
    data = loads("xs:\n  - ok\n  - '{{ missing }}'\n", "pb.yaml")
    with pytest.raises(TemplateError) as info:
        t.render(data, {})
    assert info.value.pos == Position("pb.yaml", 3, 5)


def test_undefined_attribute_is_an_error(t: Templar) -> None:
    with pytest.raises(TemplateError, match="has no attribute 'nope'"):
        t.render("{{ d.nope }}", {"d": {"a": 1}})


def test_plain_string_falls_back_to_the_given_position(t: Templar) -> None:
    pos = Position("x.yaml", 4, 2)
    with pytest.raises(TemplateError) as info:
        t.render("{{ missing }}", {}, pos=pos)
    assert info.value.pos == pos


def test_syntax_error(t: Templar) -> None:
    data = loads("m: '{{ x | }}'\n", "s.yaml")
    with pytest.raises(TemplateError) as info:
        t.render(data["m"], {"x": 1})
    assert info.value.pos == Position("s.yaml", 1, 4)
    assert "template syntax error" in info.value.message


def test_unknown_filter(t: Templar) -> None:
    with pytest.raises(TemplateError, match="No filter named 'jion'"):
        t.render("{{ xs | jion(',') }}", {"xs": []})


def test_python_errors_become_template_errors(t: Templar) -> None:
    with pytest.raises(TemplateError, match="ZeroDivisionError"):
        t.render("{{ 1 / n }}", {"n": 0})


def test_mandatory_error_carries_the_position(t: Templar) -> None:
    data = loads("m: '{{ x | mandatory }}'\n", "m.yaml")
    with pytest.raises(TemplateError) as info:
        t.render(data["m"], {})
    assert info.value.pos == Position("m.yaml", 1, 4)


def test_default_on_chained_undefined(t: Templar) -> None:
    assert t.render("{{ foo.bar | default('x') }}", {}) == "x"


# -- conditions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "scope", "expected"),
    [
        ("n > 1", {"n": 2}, True),
        ("n > 1", {"n": 0}, False),
        ("flag", {"flag": True}, True),
        ("not flag", {"flag": True}, False),
        ("xs | length == 0", {"xs": []}, True),
        ("'a' in xs", {"xs": ["a"]}, True),
        ("s == 'yes'", {"s": "yes"}, True),
        ("s | bool", {"s": "yes"}, True),
        ("x is defined", {}, False),
        ("x is not defined", {}, True),
        ("r is failed", {"r": {"failed": True}}, True),
        ("r is changed", {"r": {"changed": False}}, False),
        ("r is succeeded", {"r": {"failed": False}}, True),
        ("r is skipped", {"r": {"skipped": True}}, True),
        ("s is match('ab')", {"s": "abc"}, True),
        ("s is search('bc')", {"s": "abc"}, True),
        ("s is regex('^c')", {"s": "abc"}, False),
    ],
)
def test_condition(t: Templar, expr: str, scope: dict, expected: bool) -> None:
    assert t.condition(expr, scope, keyword="when") is expected


def test_condition_passes_booleans_through(t: Templar) -> None:
    assert t.condition(True, {}, keyword="when") is True
    assert t.condition(False, {}, keyword="when") is False


@pytest.mark.parametrize("value", [1, "yes", [1], {"a": 1}, None, 0.0])
def test_condition_must_be_boolean(t: Templar, value: object) -> None:
    data = loads("when: x\n", "c.yaml")
    with pytest.raises(TemplateError) as info:
        t.condition(data["when"], {"x": value}, keyword="when")
    err = info.value
    assert "must evaluate to a boolean" in err.message
    assert err.pos == Position("c.yaml", 1, 7)
    assert err.hint and "| bool" in err.hint


@pytest.mark.parametrize("keyword", ["when", "until", "changed_when", "failed_when"])
def test_braces_in_conditions_are_rejected(t: Templar, keyword: str) -> None:
    data = loads(f"{keyword}: '{{{{ x == 1 }}}}'\n", "c.yaml")
    with pytest.raises(TemplateError) as info:
        t.condition(data[keyword], {"x": 1}, keyword=keyword)
    err = info.value
    assert f"'{keyword}' is a bare expression" in err.message
    assert err.pos == Position("c.yaml", 1, len(keyword) + 3)
    assert err.hint == f"write  {keyword}: x == 1"


def test_statement_blocks_in_conditions_are_rejected(t: Templar) -> None:
    with pytest.raises(TemplateError, match="bare expression"):
        t.condition("{% if x %}true{% endif %}", {"x": 1}, keyword="when")


def test_undefined_in_condition_carries_position(t: Templar) -> None:
    data = loads("when: enable_feature and true\n", "c.yaml")
    with pytest.raises(TemplateError) as info:
        t.condition(data["when"], {}, keyword="when")
    assert info.value.pos == Position("c.yaml", 1, 7)
    assert "'enable_feature' is undefined" in info.value.message


def test_yaml11_yes_in_when_is_not_true(t: Templar) -> None:
    data = loads("when: yes\n", "c.yaml")
    assert data["when"] == "yes"
    with pytest.raises(TemplateError) as info:
        t.condition(data["when"], {}, keyword="when")
    assert info.value.pos == Position("c.yaml", 1, 7)


def test_yaml11_yes_in_when_explains_booleans(t: Templar) -> None:
    with pytest.raises(TemplateError) as info:
        t.condition(loads("when: yes\n")["when"], {}, keyword="when")
    assert "boolean" in info.value.message or "true" in (info.value.hint or "")


# -- Unknown placeholders (dry-run) ------------------------------------------------------


def test_unknown_attribute_chain_renders_as_placeholder(t: Templar) -> None:
    r = Unknown("registered: r")
    out = t.render("{{ r.stdout }}", {"r": r})
    assert isinstance(out, Unknown)
    assert str(out) == "<registered: r.stdout>"
    assert str(t.render("{{ r.json.model }}", {"r": r})) == "<registered: r.json.model>"


def test_unknown_inside_a_string(t: Templar) -> None:
    r = Unknown("registered: r")
    assert t.render("got {{ r.stdout }}!", {"r": r}) == "got <registered: r.stdout>!"


def test_unknown_item_and_index(t: Templar) -> None:
    r = Unknown("registered: r")
    assert str(r["k"]) == "<registered: r['k']>"
    assert [str(x) for x in r] == ["<registered: r[*]>"]


def test_operations_on_unknown_make_the_string_unknown(t: Templar) -> None:
    r = Unknown("registered: r")
    out = t.render("x {{ r.rc + 1 }}", {"r": r})
    assert isinstance(out, Unknown)
    assert str(out) == "<unknown: x {{ r.rc + 1 }}>"


def test_unknown_in_condition_raises_unknown_value(t: Templar) -> None:
    r = Unknown("registered: r")
    with pytest.raises(UnknownValue) as info:
        t.condition("r.rc == 0", {"r": r}, keyword="when")
    assert str(info.value.unknown) == "<registered: r.rc>"
    with pytest.raises(UnknownValue):
        t.condition("r", {"r": r}, keyword="when")


def test_unknown_refuses_truthiness_and_arithmetic() -> None:
    u = Unknown("registered: x")
    with pytest.raises(UnknownValue):
        bool(u)
    with pytest.raises(UnknownValue):
        len(u)
    with pytest.raises(UnknownValue):
        _ = u + 1
    with pytest.raises(UnknownValue):
        _ = u == 1
    assert hash(u) == hash(Unknown("registered: x"))


# -- template files --------------------------------------------------------------------------


def test_render_file(t: Templar, tmp_path: Path) -> None:
    f = tmp_path / "app.conf.j2"
    f.write_text("listen = {{ port }}\n{% for h in hosts %}{{ h }}\n{% endfor %}", encoding="utf-8")
    assert t.render_file(f, {"port": 80, "hosts": ["a", "b"]}) == "listen = 80\na\nb\n"


def test_render_file_reads_a_file_again_once_it_changed(t: Templar, tmp_path: Path) -> None:
    f = tmp_path / "x.j2"
    f.write_text("v1 {{ n }}")
    assert [t.render_file(f, {"n": i}) for i in (1, 2)] == ["v1 1", "v1 2"]  # read once, rendered twice
    f.write_text("version 2 {{ n }}")  # another size: rendered from the new text
    assert t.render_file(f, {"n": 3}) == "version 2 3"
    f.unlink()
    with pytest.raises(TemplateError, match="cannot read template"):
        t.render_file(f, {"n": 4})


def test_render_file_keeps_trailing_newline(t: Templar, tmp_path: Path) -> None:
    f = tmp_path / "x.j2"
    f.write_text("a\n\n", encoding="utf-8")
    assert t.render_file(f, {}) == "a\n\n"


def test_render_file_syntax_error_has_template_line(t: Templar, tmp_path: Path) -> None:
    f = tmp_path / "bad.j2"
    f.write_text("# header\nlisten = {{ port }}\n{% if port %}\nx\n{% endfi %}\n", encoding="utf-8")
    with pytest.raises(TemplateError) as info:
        t.render_file(f, {"port": 1})
    assert info.value.pos == Position(str(f), 5, 1)
    assert "endfi" in info.value.message


def test_render_file_undefined_names_the_template(t: Templar, tmp_path: Path) -> None:
    f = tmp_path / "undef.j2"
    f.write_text("# header\nlisten = {{ port }}\nworkers = {{ worker_count }}\n", encoding="utf-8")
    with pytest.raises(TemplateError) as info:
        t.render_file(f, {"port": 1})
    assert info.value.pos is not None and info.value.pos.file == str(f)
    assert "'worker_count' is undefined" in info.value.message


def test_render_file_undefined_has_template_line(t: Templar, tmp_path: Path) -> None:
    f = tmp_path / "undef.conf.j2"
    f.write_text("# header\nlisten = {{ port }}\nworkers = {{ worker_count }}\n", encoding="utf-8")
    with pytest.raises(TemplateError) as info:
        t.render_file(f, {"port": 1})
    assert info.value.pos == Position(str(f), 3, 1)


def test_render_file_missing(t: Templar, tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="cannot read template"):
        t.render_file(tmp_path / "nope.j2", {})


def test_compiled_templates_are_cached() -> None:
    t = Templar()
    for n in range(5):
        assert t.render("v={{ n }}", {"n": n}) == f"v={n}"
        assert t.render("{{ n + 1 }}", {"n": n}) == n + 1
    assert len(t._cache) == 2


def test_template_file_compiles_once_and_follows_edits(tmp_path: Path) -> None:
    # a launch script rendered for every worker compiles once; an edited file is recompiled
    t = Templar()
    path = tmp_path / "launch.sh.j2"
    path.write_text("port {{ port }}\n")
    assert [t.render_file(path, {"port": p}) for p in (1, 2)] == ["port 1\n", "port 2\n"]
    assert sum(1 for kind, _ in t._cache if kind == "file") == 1
    path.write_text("{% if port > 1 %}big{% endif %}\n{{ undefined_here }}\n")
    with pytest.raises(TemplateError) as info:
        t.render_file(path, {"port": 2})
    assert info.value.pos is not None and info.value.pos.line == 2
