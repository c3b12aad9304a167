"""What the dry-run reuses across hosts and tasks (issue #15) is rebuilt when its inputs
change: magic variables and inventory layers after ``add_host``, a host's facts layer, the
``-e`` patch roots of child scopes, and Jinja contexts that share nothing between renders."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli import parse_extra_vars
from engine.events import NullSink
from engine.executor.context import RunOptions
from engine.executor.runner import Inherited, Runner
from engine.inventory import Inventory
from engine.load.loader import Loader
from engine.template import Templar
from engine.vars import Layer, VarScope

INVENTORY = """\
all:
  children:
    web:
      hosts:
        h1: {connection: local, port: 1}
        h2: {connection: local}
"""


@pytest.fixture
def runner(tmp_path: Path) -> Runner:
    (tmp_path / "inventory.yaml").write_text(INVENTORY)
    (tmp_path / "playbook.yaml").write_text("- hosts: web\n  tasks:\n    - debug: {msg: hi}\n")
    loader = Loader([tmp_path / "roles"])
    book = loader.load_playbook(tmp_path / "playbook.yaml")
    options = RunOptions(extra_vars=parse_extra_vars(("layout.decode.workers=2",)))
    r = Runner(book, Inventory.from_file(tmp_path / "inventory.yaml"), options, loader=loader, sink=NullSink(), run_dir=tmp_path / "runs" / "x", run_id="x")
    r._play = book.plays[0]
    r._play_hosts = ["h1", "h2"]
    r._play_layers = r._build_play_layers(book.plays[0])
    return r


def test_magic_variables_follow_add_host(runner: Runner) -> None:
    task = runner.playbook.plays[0].tasks[0]
    before = runner.scope_for("h1", task, Inherited())
    assert before["groups"]["web"] == ["h1", "h2"]
    assert list(before["group_names"]) == ["web"]
    runner.inventory.add_host("h1", ["gpu"])
    after = runner.scope_for("h1", task, Inherited())
    assert after["groups"]["gpu"] == ["h1"]
    assert sorted(after["group_names"]) == ["gpu", "web"]


def test_group_names_is_shared_and_read_only(runner: Runner) -> None:
    task = runner.playbook.plays[0].tasks[0]
    names = runner.scope_for("h1", task, Inherited())["group_names"]
    with pytest.raises(TypeError, match="read-only"):
        names.append("x")  # one list for all of h1's scopes: a change would leak into them
    assert runner.templar.render("{{ group_names | list + ['x'] }}", runner.scope_for("h1", task, Inherited())) == ["web", "x"]


def test_inventory_layers_follow_add_host_vars(runner: Runner) -> None:
    inv = runner.inventory
    assert inv.layers_for("h1")[-1].values["port"] == 1
    inv.add_host("h1", [], {"port": 2})
    assert inv.layers_for("h1")[-1].values["port"] == 2
    layers = inv.layers_for("h1")
    layers.clear()  # a copy: the cache is not the caller's list
    assert inv.layers_for("h1")


def test_facts_layer_sees_new_and_replaced_facts(runner: Runner) -> None:
    task = runner.playbook.plays[0].tasks[0]
    runner._host("h1").facts["f"] = 1
    assert runner.scope_for("h1", task, Inherited())["f"] == 1
    runner._host("h1").facts = {"f": 2}  # a new dict: the layer is rebuilt
    assert runner.scope_for("h1", task, Inherited())["f"] == 2


def test_patch_roots_given_by_the_runner_still_patch_in_child_scopes(runner: Runner) -> None:
    task = runner.playbook.plays[0].tasks[0]
    layout = Layer("play vars", "p", {"layout": {"decode": {"workers": 1, "tp": 8}}})
    runner._play_layers = [layout]
    s = runner.scope_for("h1", task, Inherited())
    assert s["layout"] == {"decode": {"workers": "2", "tp": 8}}
    child = s.child([Layer("task vars", "loop", {"item": 1})])
    assert child["layout"] == {"decode": {"workers": "2", "tp": 8}}
    # without roots from the caller, the scope works them out: the same answer
    plain = VarScope(s.layers, runner.templar)
    assert plain["layout"] == s["layout"]


def test_connection_vars_are_a_copy_for_callers(runner: Runner) -> None:
    got = runner._connection_vars("h1")
    got["connection"] = "ssh"
    assert runner._connection_vars("h1")["connection"] == "local"


def test_string_templates_share_no_variables_between_renders() -> None:
    templar = Templar()
    scope = VarScope([Layer("play vars", "p", {"x": 1})], templar)
    assert templar.render("{% set y = x + 1 %}{{ y }}", scope) == "2"
    with pytest.raises(Exception, match="y"):
        templar.render("{{ y }}", scope)  # y was local to the first render
    assert templar.render("{% macro m(a) %}<{{ a }}>{% endmacro %}{{ m(x) }}", scope) == "<1>"


def test_expressions_see_their_own_scope() -> None:
    templar = Templar()
    one = VarScope([Layer("play vars", "p", {"x": 1})], templar)
    two = VarScope([Layer("play vars", "p", {"x": 2})], templar)
    assert [templar.evaluate("x * 10", s) for s in (one, two, one)] == [10, 20, 10]
    assert templar.evaluate("range(3) | list", one) == [0, 1, 2]  # a global, after the scope
    assert templar.condition("x is defined and missing is not defined", one, keyword="when") is True


def test_host_groups_follow_add_host_whoever_asks_first(runner: Runner) -> None:
    inv = runner.inventory
    assert inv.host_groups("h2") == ["all", "web"]
    inv.add_host("h2", ["gpu"])
    inv.groups_dict()  # rebuilt first (a scope's `groups`): h2's own groups must follow
    assert inv.host_groups("h2") == ["all", "gpu", "web"]
    assert [layer.source.split(" ")[1] for layer in inv.layers_for("h2")][-1] == "'h2'"
