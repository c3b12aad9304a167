"""engine.filters: every filter in FILTERS, used through the Templar as playbooks use them."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from engine.errors import TemplateError
from engine.filters import FILTERS, combine, quote
from engine.template import Templar

T = Templar()


def r(source: str, **scope: object) -> object:
    return T.render(source, scope)


# Which filters this module covers; a new filter in FILTERS without a test fails here.
COVERED = {
    # engine.serving's filters are covered by tests/unit/test_serving.py
    "place_workers",
    "nodes_for",
    "merge_flags",
    "render_flags",
    "allocation_layout",
    "ranks_on",
    "worker_endpoints",
    "extract",
    "default",
    "d",
    "mandatory",
    "bool",
    "to_json",
    "to_nice_json",
    "from_json",
    "to_yaml",
    "to_nice_yaml",
    "from_yaml",
    "combine",
    "regex_replace",
    "regex_search",
    "regex_findall",
    "quote",
    "b64encode",
    "b64decode",
    "basename",
    "dirname",
    "flatten",
    "dict2items",
    "items2dict",
    "ternary",
    "union",
    "difference",
    "intersect",
    "unique",
    "hostlist_expand",
    "hostlist_compress",
    # tests/unit/test_profiling.py
    "profile_targets",
    "profile_summary",
    "nsys_prefix",
}


def test_every_filter_is_covered() -> None:
    assert set(FILTERS) == COVERED


def test_filters_are_installed() -> None:
    for name in FILTERS:
        # wrapped so that a value only the run knows stays unknown (engine.template)
        assert T.env.filters[name].__wrapped__ is FILTERS[name]


# -- default / mandatory / bool -----------------------------------------------------------


def test_default() -> None:
    assert r("{{ x | default(5) }}") == 5
    assert r("{{ x | default(5) }}", x=0) == 0
    assert r("{{ x | default('') }}") == ""
    assert r("{{ x | default }}") == ""
    assert r("{{ d.missing | default('k') }}", d={}) == "k"


def test_default_boolean_replaces_falsy() -> None:
    assert r("{{ x | default(5, true) }}", x=0) == 5
    assert r("{{ x | default(5, true) }}", x="") == 5
    assert r("{{ x | default(5, true) }}", x=[]) == 5
    assert r("{{ x | default(5, true) }}", x=3) == 3


def test_d_is_default() -> None:
    assert r("{{ x | d('z') }}") == "z"
    assert r("{{ x | d('z') }}", x="a") == "a"


def test_mandatory() -> None:
    assert r("{{ x | mandatory }}", x=1) == 1
    with pytest.raises(TemplateError, match="mandatory"):
        r("{{ x | mandatory }}")
    with pytest.raises(TemplateError, match="set the model path"):
        r("{{ x | mandatory('set the model path') }}")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        (1, True),
        (0, False),
        (2.5, True),
        ("true", True),
        ("True", True),
        ("yes", True),
        ("on", True),
        ("1", True),
        ("y", True),
        ("false", False),
        ("no", False),
        ("off", False),
        ("0", False),
        ("n", False),
        ("", False),
        (" Yes ", True),
    ],
)
def test_bool(value: object, expected: bool) -> None:
    assert r("{{ v | bool }}", v=value) is expected


def test_bool_rejects_garbage() -> None:
    with pytest.raises(TemplateError, match="cannot interpret 'maybe' as a boolean"):
        r("{{ v | bool }}", v="maybe")


# -- serialisation ---------------------------------------------------------------------------


def test_to_json_and_from_json() -> None:
    assert r("{{ d | to_json }}", d={"b": 1, "a": [1, "x"]}) == '{"b": 1, "a": [1, "x"]}'
    assert r("{{ d | to_json(sort_keys=True) }}", d={"b": 1, "a": 2}) == '{"a": 2, "b": 1}'
    assert r("{{ s | from_json }}", s='{"a": [1, true, null]}') == {"a": [1, True, None]}


def test_to_nice_json() -> None:
    assert r("{{ d | to_nice_json }}", d={"b": 1, "a": 2}) == '{\n    "a": 2,\n    "b": 1\n}'
    assert r("{{ d | to_nice_json(indent=2) }}", d={"a": [1]}) == '{\n  "a": [\n    1\n  ]\n}'


def test_to_yaml_and_to_nice_yaml() -> None:
    assert r("{{ d | to_yaml }}", d={"a": 1}) == "{a: 1}\n"
    assert r("{{ d | to_nice_yaml }}", d={"b": [1, 2], "a": "x"}) == "b:\n- 1\n- 2\na: x\n"


def test_from_yaml_uses_yaml12_booleans() -> None:
    assert r("{{ s | from_yaml }}", s="a: yes\nb: true\nc: [1, 2]\n") == {
        "a": "yes",
        "b": True,
        "c": [1, 2],
    }
    out = r("{{ s | from_yaml }}", s="k: v\n")
    assert type(out) is dict and type(out["k"]) is str


def test_yaml_round_trip() -> None:
    data = {"name": "x", "n": 3, "items": [{"a": None}], "flag": False}
    assert r("{{ d | to_nice_yaml | from_yaml }}", d=data) == data
    assert r("{{ d | to_json | from_json }}", d=data) == data


# -- combine ----------------------------------------------------------------------------------


def test_combine_shallow_replaces_nested_dicts() -> None:
    out = r("{{ a | combine(b) }}", a={"x": {"p": 1, "q": 2}, "y": 1}, b={"x": {"p": 9}, "z": 3})
    assert out == {"x": {"p": 9}, "y": 1, "z": 3}


def test_combine_recursive_merges_nested_dicts() -> None:
    a = {"x": {"p": 1, "q": {"deep": 1, "keep": 2}}, "y": 1}
    b = {"x": {"p": 9, "q": {"deep": 3}}, "z": 3}
    out = r("{{ a | combine(b, recursive=True) }}", a=a, b=b)
    assert out == {"x": {"p": 9, "q": {"deep": 3, "keep": 2}}, "y": 1, "z": 3}
    assert a["x"]["q"] == {"deep": 1, "keep": 2}  # inputs untouched


def test_combine_many_and_list_of_dicts() -> None:
    assert r("{{ a | combine(b, c) }}", a={"k": 1}, b={"k": 2}, c={"k": 3, "j": 0}) == {
        "k": 3,
        "j": 0,
    }
    assert r("{{ ds | combine }}", ds=[{"a": 1}, {"b": 2}, {"a": 3}]) == {"a": 3, "b": 2}


def test_combine_list_merge() -> None:
    assert combine({"l": [1]}, {"l": [2]}) == {"l": [2]}
    assert combine({"l": [1]}, {"l": [2]}, list_merge="append") == {"l": [1, 2]}


# -- regex ------------------------------------------------------------------------------------


def test_regex_replace() -> None:
    assert r("{{ s | regex_replace('o+', '0') }}", s="foo boo") == "f0 b0"
    assert r("{{ s | regex_replace('^(\\w+)@(.*)$', '\\2/\\1') }}", s="u@h") == "h/u"
    assert r("{{ s | regex_replace('A', 'x', ignorecase=True) }}", s="aA") == "xx"
    assert r("{{ s | regex_replace('a', 'x', count=1) }}", s="aaa") == "xaa"


def test_regex_backslashes_are_literal_in_playbook_values() -> None:
    # YAML unescaped the value already; Jinja string literals keep backslashes (as Ansible)
    assert r(r"{{ 'host-12' | regex_replace('(\w+)-(\d+)', '\2_\1') }}") == "12_host"
    assert r(r"{{ 'a\nb' }}") == "a\\nb"
    assert r(r"x\y {{ 'a\b' | length }}") == "x\\y 3"
    assert T.evaluate(r"'a1' is match('\w\d')", {}) is True


def test_regex_search() -> None:
    assert r("{{ s | regex_search('[0-9]+') }}", s="gpu17 gpu2") == "17"
    assert r("{{ s | regex_search('zzz') }}", s="abc") is None
    assert r("{{ s | regex_search('(?P<n>[a-z]+)(\\d+)', '\\2', '\\1') }}", s="node12") == [
        "12",
        "node",
    ]
    assert r("{{ s | regex_search('(?P<n>[a-z]+)', '\\g<n>') }}", s="node12") == ["node"]
    assert r("{{ s | regex_search('NODE', ignorecase=True) }}", s="node") == "node"


def test_regex_findall() -> None:
    assert r("{{ s | regex_findall('[0-9]+') }}", s="a1 b22 c333") == ["1", "22", "333"]
    assert r("{{ s | regex_findall('X', ignorecase=True) }}", s="xX") == ["x", "X"]


# -- quote: shell safety ------------------------------------------------------------------------

NASTY = [
    "plain",
    "with spaces",
    "it's",
    'say "hi"',
    "$(touch /tmp/smlplay-quote-pwned)",
    "`id`",
    "a; rm -rf /nonexistent",
    "$HOME && echo x | cat > /dev/null",
    "*",
    "back\\slash",
    "new\nline",
    "",
    "--flag=1",
    "tab\there",
]


@pytest.mark.parametrize("value", NASTY)
def test_quote_is_shell_safe(value: str, tmp_path) -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash not available")
    script = T.render("printf %s {{ value | quote }}", {"value": value})
    assert isinstance(script, str)
    proc = subprocess.run(
        [bash, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=False, timeout=10
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == value
    assert list(tmp_path.iterdir()) == []  # nothing ran, no glob expanded into a file


def test_quote_plain_values() -> None:
    assert quote("abc") == "abc"
    assert quote(8000) == "8000"
    assert r("{{ 'a b' | quote }}") == "'a b'"


# -- encoding / paths ------------------------------------------------------------------------


def test_b64() -> None:
    assert r("{{ 'hello wörld' | b64encode }}") == "aGVsbG8gd8O2cmxk"
    assert r("{{ 'aGVsbG8gd8O2cmxk' | b64decode }}") == "hello wörld"
    assert r("{{ s | b64encode | b64decode }}", s="x:y\n") == "x:y\n"


def test_basename_dirname() -> None:
    assert r("{{ p | basename }}", p="/models/llama/config.json") == "config.json"
    assert r("{{ p | dirname }}", p="/models/llama/config.json") == "/models/llama"
    assert r("{{ p | basename }}", p="/models/llama/") == ""


# -- lists and dicts ----------------------------------------------------------------------------


def test_flatten() -> None:
    assert r("{{ xs | flatten }}", xs=[1, [2, [3, [4]]], None, 5]) == [1, 2, 3, 4, 5]
    assert r("{{ xs | flatten(1) }}", xs=[1, [2, [3]]]) == [1, 2, [3]]
    assert r("{{ xs | flatten(levels=0) }}", xs=[1, [2]]) == [1, [2]]


def test_dict2items_and_items2dict() -> None:
    assert r("{{ d | dict2items }}", d={"a": 1, "b": 2}) == [
        {"key": "a", "value": 1},
        {"key": "b", "value": 2},
    ]
    assert r("{{ d | dict2items(key_name='k', value_name='v') }}", d={"a": 1}) == [
        {"k": "a", "v": 1}
    ]
    assert r("{{ xs | items2dict }}", xs=[{"key": "a", "value": 1}]) == {"a": 1}
    assert r("{{ xs | items2dict(key_name='n', value_name='p') }}", xs=[{"n": "x", "p": 2}]) == {
        "x": 2
    }
    d = {"a": 1, "b": [2]}
    assert r("{{ d | dict2items | items2dict }}", d=d) == d


def test_ternary() -> None:
    assert r("{{ f | ternary('on', 'off') }}", f=True) == "on"
    assert r("{{ f | ternary('on', 'off') }}", f=False) == "off"
    assert r("{{ f | ternary('on', 'off') }}", f=None) == "off"
    assert r("{{ f | ternary('on', 'off', 'unset') }}", f=None) == "unset"
    assert r("{{ (n > 1) | ternary(n, 1) }}", n=4) == 4


def test_set_filters_keep_order_and_drop_duplicates() -> None:
    assert r("{{ a | union(b) }}", a=[3, 1, 3], b=[1, 2]) == [3, 1, 2]
    assert r("{{ a | difference(b) }}", a=[3, 1, 3, 4], b=[1]) == [3, 4]
    assert r("{{ a | intersect(b) }}", a=[3, 1, 3, 4], b=[4, 3]) == [3, 4]
    assert r("{{ a | unique }}", a=[2, 1, 2, {"x": 1}, {"x": 1}]) == [2, 1, {"x": 1}]


def test_hostlist_expand_and_compress() -> None:
    assert r("{{ s | hostlist_expand }}", s="gpu[01-03]") == ["gpu01", "gpu02", "gpu03"]
    assert r("{{ s | hostlist_expand }}", s=["a[1-2]", "b"]) == ["a1", "a2", "b"]
    assert r("{{ xs | hostlist_compress }}", xs=["n1", "n2", "n3", "m"]) == "m,n[1-3]"
    assert r("{{ 'x5' | hostlist_compress }}") == "x5"
    assert r("{{ s | hostlist_expand | hostlist_compress }}", s="node[1-4,7]") == "node[1-4,7]"


# -- Jinja built-ins the docs promise -----------------------------------------------------------


def test_jinja_builtins_used_daily() -> None:
    hosts = [{"n": "a", "gpu": True}, {"n": "b", "gpu": False}]
    assert r("{{ hs | selectattr('gpu') | map(attribute='n') | list }}", hs=hosts) == ["a"]
    assert r("{{ hs | rejectattr('gpu') | map(attribute='n') | join(',') }}", hs=hosts) == "b"
    assert r("{{ '8' | int + 1 }}") == 9


def test_extract() -> None:
    assert r("{{ ['a', 'b'] | map('extract', {'a': 1, 'b': 2}) | list }}") == [1, 2]
    assert r("{{ ['a'] | map('extract', dict(a=dict(x=3)), 'x') | list }}") == [3]
