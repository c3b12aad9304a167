"""engine.inventory: loading, host patterns, limit, implicit localhost, group-vars order."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from engine.errors import ValidationError
from engine.inventory import Inventory

INVENTORY = """
all:
  vars:
    who: all
  hosts:
    login:
      connection: local
  children:
    gpu:
      vars:
        who: gpu
      hosts:
        gpu01:
        gpu02:
        gpu03:
          who: host
    cpu:
      hosts:
        cpu01:
        cpu02:
    prefill:
      hosts:
        gpu01:
        cpu01:
    decode:
      children:
        gpu:
top_level:
  hosts:
    extra1:
"""


def _inv(tmp_path: Path, text: str = INVENTORY) -> Inventory:
    f = tmp_path / "inventory.yaml"
    f.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return Inventory.from_file(f)


@pytest.fixture
def inv(tmp_path: Path) -> Inventory:
    return _inv(tmp_path)


ALL = ["login", "gpu01", "gpu02", "gpu03", "cpu01", "cpu02", "extra1"]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("all", ALL),
        ("*", ALL),
        ("gpu", ["gpu01", "gpu02", "gpu03"]),
        ("gpu01", ["gpu01"]),
        ("gpu:cpu", ["gpu01", "gpu02", "gpu03", "cpu01", "cpu02"]),
        ("gpu,cpu", ["gpu01", "gpu02", "gpu03", "cpu01", "cpu02"]),
        ("cpu:gpu01:cpu01", ["cpu01", "cpu02", "gpu01"]),
        ("gpu:&prefill", ["gpu01"]),
        ("gpu:!prefill", ["gpu02", "gpu03"]),
        ("all:!gpu", ["login", "cpu01", "cpu02", "extra1"]),
        ("prefill:&gpu:!gpu01", []),
        ("gpu:cpu:&prefill", ["gpu01", "cpu01"]),
        ("gpu*", ["gpu01", "gpu02", "gpu03"]),
        ("gpu0[12]", ["gpu01", "gpu02"]),
        ("*01", ["gpu01", "cpu01"]),
        ("?pu02", ["gpu02", "cpu02"]),
        ("decode", ["gpu01", "gpu02", "gpu03"]),
        ("top_level", ["extra1"]),
        ("nothing", []),
        (["gpu01", "cpu02"], ["gpu01", "cpu02"]),
    ],
)
def test_select_patterns(inv: Inventory, pattern: str | list[str], expected: list[str]) -> None:
    assert inv.select(pattern) == expected


def test_pattern_order_does_not_matter(inv: Inventory) -> None:
    assert inv.select("!gpu01:gpu") == inv.select("gpu:!gpu01") == ["gpu02", "gpu03"]
    assert inv.select("&prefill:gpu") == ["gpu01"]
    assert inv.select("!gpu01:&prefill:cpu:gpu") == ["cpu01"]
    # only intersections and exclusions: Ansible starts from 'all'
    assert inv.select("!gpu:!cpu") == ["login", "extra1"]


@pytest.mark.parametrize(
    ("pattern", "limit", "expected"),
    [
        ("all", "gpu01:cpu01", ["gpu01", "cpu01"]),
        ("gpu", "prefill", ["gpu01"]),
        ("gpu", "all:!gpu02", ["gpu01", "gpu03"]),
        ("gpu", "cpu", []),
        ("all", "gpu0*", ["gpu01", "gpu02", "gpu03"]),
        ("localhost", "gpu", []),
        ("gpu", None, ["gpu01", "gpu02", "gpu03"]),
    ],
)
def test_limit(inv: Inventory, pattern: str, limit: str | None, expected: list[str]) -> None:
    assert inv.select(pattern, limit=limit) == expected


def test_implicit_localhost() -> None:
    inv = Inventory.implicit()
    assert inv.select("all") == []  # like Ansible: not a member of all
    assert inv.select("localhost") == ["localhost"]
    assert inv.select("127.0.0.1") == ["127.0.0.1"]
    host = inv.host("localhost")
    assert host.implicit and dict(host.vars) == {"connection": "local"}
    layers = inv.layers_for("localhost")
    assert [layer.level for layer in layers] == ["inventory host vars"]
    with pytest.raises(KeyError):
        inv.host("other")


def test_localhost_is_implicit_even_with_an_inventory(inv: Inventory) -> None:
    assert inv.select("localhost") == ["localhost"]
    assert "localhost" not in inv.select("all")
    assert "localhost" in inv.known_names()


def test_explicit_localhost_replaces_the_implicit_one(tmp_path: Path) -> None:
    inv = _inv(tmp_path, "all:\n  hosts:\n    localhost:\n      connection: local\n      x: 1\n")
    assert inv.select("all") == ["localhost"]
    assert not inv.host("localhost").implicit
    assert inv.host("localhost").vars["x"] == 1


def test_host_and_group_membership(inv: Inventory) -> None:
    assert inv.host("gpu03").vars == {"who": "host"}
    assert inv.host("gpu01").groups == ["gpu", "prefill"]
    assert inv.groups["decode"].children == ["gpu"]
    assert "top_level" in inv.groups["all"].children
    assert inv.groups_dict()["prefill"] == ["gpu01", "cpu01"]


def test_group_vars_order_all_then_child_then_host(inv: Inventory) -> None:
    layers = inv.layers_for("gpu03")
    assert [layer.level for layer in layers] == [
        "inventory group vars",
        "inventory group vars",
        "inventory host vars",
    ]
    assert [dict(layer.values)["who"] for layer in layers] == ["all", "gpu", "host"]


def test_host_groups_sorted_by_depth_then_name(inv: Inventory) -> None:
    groups = inv.host_groups("cpu01")
    assert groups[0] == "all"
    assert groups[1:] == ["cpu", "prefill"]


NESTED = """
all:
  vars: {v: all, a: all, p: all}
  children:
    parent:
      vars: {v: parent, p: parent}
      children:
        child:
          vars: {v: child}
          hosts:
            h1: {h: host}
            h2: {v: host}
"""


def test_group_vars_all_lt_parent_lt_child_lt_host(tmp_path: Path) -> None:
    inv = _inv(tmp_path, NESTED)
    assert inv.host_groups("h1") == ["all", "parent", "child"]
    values = [dict(layer.values) for layer in inv.layers_for("h2")]
    assert [v.get("v") for v in values] == ["all", "parent", "child", "host"]


def test_group_vars_nested_child_wins_over_all(tmp_path: Path) -> None:
    inv = _inv(tmp_path, NESTED)
    layers = inv.layers_for("h2")
    assert dict(layers[0].values)["v"] == "all"
    assert dict(layers[-2].values)["v"] == "child"
    assert dict(layers[-1].values)["v"] == "host"


def test_ungrouped(inv: Inventory) -> None:
    assert inv.select("ungrouped") == ["login"]


def test_add_host_at_run_time(inv: Inventory) -> None:
    inv.add_host("node7", ["decode_nodes"], {"port": 1}, source="alloc")
    assert inv.select("decode_nodes") == ["node7"]
    assert "node7" in inv.select("all")
    assert "decode_nodes" in inv.groups["all"].children
    inv.add_host("node7", ["decode_nodes"], {"rank": 2})
    assert inv.host("node7").vars == {"port": 1, "rank": 2}


def test_empty_inventory_file(tmp_path: Path) -> None:
    inv = _inv(tmp_path, "# nothing\n")
    assert inv.select("all") == []
    assert inv.select("localhost") == ["localhost"]


def test_unknown_group_keyword(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as info:
        _inv(tmp_path, "all:\n  hosts:\n    a:\n  varz:\n    x: 1\n")
    err = info.value
    assert "unknown keyword 'varz' in inventory group 'all'" in err.message
    assert err.hint == "did you mean 'vars'?"
    assert err.pos is not None and (err.pos.line, err.pos.col) == (4, 3)


def test_inventory_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="inventory must be a mapping"):
        _inv(tmp_path, "- a\n- b\n")


def test_bad_group_vars_name(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="bad-name"):
        _inv(tmp_path, "all:\n  vars:\n    bad-name: 1\n")


def test_check_pattern(inv: Inventory) -> None:
    inv.check_pattern("gpu:!prefill:&cpu", pos=None)
    inv.check_pattern("gpu*:localhost", pos=None)
    inv.check_pattern("decode_nodes", pos=None, runtime_groups=["decode_nodes"])
    with pytest.raises(ValidationError) as info:
        inv.check_pattern("gpu:gpuu", pos=None)
    assert "'gpuu'" in info.value.message
    assert info.value.hint == "did you mean 'gpu'?"
