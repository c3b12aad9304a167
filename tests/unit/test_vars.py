"""engine.vars: the eight precedence levels, explain(), dotted -e patches, cycles."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from engine.cli import parse_extra_vars
from engine.errors import TemplateError, ValidationError
from engine.events import NullSink
from engine.executor.context import RunOptions
from engine.executor.runner import Inherited, Runner
from engine.inventory import Inventory
from engine.load.loader import Loader
from engine.load.yaml import loads
from engine.template import Templar
from engine.vars import LEVELS, Layer, VarScope


def scope(*layers: Layer, magic: dict | None = None) -> VarScope:
    return VarScope(list(layers), Templar(), magic=magic)


@pytest.mark.parametrize("top", range(len(LEVELS)))
def test_each_level_overrides_the_previous(top: int) -> None:
    """Layers are given lowest first; the highest that defines a name wins."""
    layers = [Layer(level, f"src {i}", {"v": level}) for i, level in enumerate(LEVELS[: top + 1])]
    assert scope(*layers)["v"] == LEVELS[top]


def test_dicts_are_replaced_not_merged() -> None:
    s = scope(
        Layer("play vars", "p", {"d": {"a": 1, "b": 2}}), Layer("extra vars", "e", {"d": {"a": 9}})
    )
    assert s["d"] == {"a": 9}


def test_values_render_lazily_against_the_whole_scope() -> None:
    s = scope(
        Layer("role defaults", "d", {"url": "http://{{ host }}:{{ port }}", "port": 80}),
        Layer("play vars", "p", {"host": "h"}),
        Layer("extra vars", "e", {"port": "8080"}),
    )
    assert s["url"] == "http://h:8080"
    assert s["port"] == "8080"  # -e k=v values are strings


def test_native_types_survive_references() -> None:
    s = scope(Layer("play vars", "p", {"n": 4, "twice": "{{ n * 2 }}", "xs": "{{ [n, n] }}"}))
    assert s["twice"] == 8
    assert s["xs"] == [4, 4]


def test_untemplated_layers_are_never_rendered() -> None:
    s = scope(Layer("host facts", "facts", {"out": {"stdout": "{{ not_a_var }}"}}, templated=False))
    assert s["out"] == {"stdout": "{{ not_a_var }}"}


def test_magic_variables_win() -> None:
    s = scope(
        Layer("extra vars", "e", {"inventory_hostname": "x"}), magic={"inventory_hostname": "h1"}
    )
    assert s["inventory_hostname"] == "h1"
    assert "inventory_hostname" in s


def test_mapping_protocol() -> None:
    s = scope(
        Layer("play vars", "p", {"a": 1, "b": 2}), Layer("extra vars", "e", {"a": 3, "c.d": 4})
    )
    assert sorted(s) == ["a", "b"]  # dotted patch keys are not variables
    assert len(s) == 2
    assert "c" not in s
    with pytest.raises(KeyError):
        s["zzz"]


def test_child_scope_adds_layers_on_top() -> None:
    base = scope(Layer("play vars", "p", {"a": 1, "b": 1}))
    child = base.child([Layer("task vars", "t", {"a": 2})], {"item": 5})
    assert child["a"] == 2 and child["b"] == 1 and child["item"] == 5
    assert base["a"] == 1
    assert base.with_magic(item=7)["item"] == 7


# -- explain ------------------------------------------------------------------------------------


def test_explain_lists_every_candidate_highest_first() -> None:
    play = loads("port: 80\n", "pb.yaml")
    s = scope(
        Layer("role defaults", "role 'r' defaults", {"port": 1}),
        Layer("play vars", "play 'p'", play),
        Layer("extra vars", "-e port=9", {"port": "9"}),
    )
    info = s.explain("port")
    assert info.value == "9"
    assert info.winner == "extra vars (-e port=9)"
    assert [origin for origin, _ in info.candidates] == [
        "extra vars (-e port=9)",
        "play vars (pb.yaml:1:7)",
        "role defaults (role 'r' defaults)",
    ]
    assert [raw for _, raw in info.candidates] == ["9", 80, 1]


def test_explain_magic_and_missing() -> None:
    s = scope(Layer("play vars", "p", {"a": 1}), magic={"inventory_hostname": "h"})
    assert s.explain("inventory_hostname").winner == "magic variable"
    with pytest.raises(KeyError):
        s.explain("nope")


# -- dotted extra vars ------------------------------------------------------------------------


def test_dotted_extra_var_patches_one_field() -> None:
    layout = {"decode": {"workers": 1, "tp": 2}, "prefill": {"workers": 1}}
    s = scope(
        Layer("play vars", "p", {"layout": layout}), *parse_extra_vars(("layout.decode.workers=4",))
    )
    assert s["layout"] == {"decode": {"workers": "4", "tp": 2}, "prefill": {"workers": 1}}
    assert layout["decode"]["workers"] == 1  # the original is not modified


def test_dotted_extra_var_creates_missing_levels_and_renders() -> None:
    s = scope(
        Layer("play vars", "p", {"cfg": {}, "n": 3}),
        Layer("extra vars", "e", {"cfg.a.b": "{{ n + 1 }}"}),
    )
    assert s["cfg"] == {"a": {"b": 4}}


def test_dotted_extra_var_into_non_mapping_is_an_error() -> None:
    s = scope(
        Layer("play vars", "p", {"layout": "flat"}), *parse_extra_vars(("layout.decode.workers=2",))
    )
    with pytest.raises(TemplateError, match="'layout' has no mapping at 'decode'"):
        s["layout"]


# -- cycles -----------------------------------------------------------------------------------


def test_self_reference_is_reported() -> None:
    data = loads("a: '{{ a }}'\n", "pb.yaml")
    with pytest.raises(TemplateError) as info:
        scope(Layer("play vars", "p", data))["a"]
    assert "refers to itself via a -> a" in info.value.message
    assert str(info.value.pos) == "pb.yaml:1:4"


def test_cycle_through_others_names_the_chain() -> None:
    data = loads("a: '{{ b }}-x'\nb: '{{ c }}'\nc: '{{ a }}'\n", "pb.yaml")
    with pytest.raises(TemplateError, match=r"refers to itself via a -> b -> c -> a"):
        scope(Layer("play vars", "p", data))["a"]


def test_no_false_cycle_for_shared_references() -> None:
    s = scope(Layer("play vars", "p", {"a": "{{ c }}{{ c }}", "b": "{{ a }}{{ c }}", "c": "x"}))
    assert s["b"] == "xxx"


def test_lower_layer_value_is_not_a_cycle() -> None:
    """``port: "{{ port }}"`` at a higher level does not see the lower one (Ansible's behaviour too)."""
    s = scope(
        Layer("role defaults", "d", {"port": 80}), Layer("play vars", "p", {"port": "{{ port }}"})
    )
    with pytest.raises(TemplateError, match="refers to itself"):
        s["port"]


# -- extra vars parsing -------------------------------------------------------------------------


def test_parse_extra_vars_forms(tmp_path: Path) -> None:
    f = tmp_path / "vars.yaml"
    f.write_text("a: 1\nflag: yes\n", encoding="utf-8")
    layers = parse_extra_vars(("x=1 y='two words'", '{"j": [1, 2]}', f"@{f}"))
    assert [dict(layer.values) for layer in layers] == [
        {"x": "1", "y": "two words"},
        {"j": [1, 2]},
        {"a": 1, "flag": "yes"},
    ]
    assert all(layer.level == "extra vars" for layer in layers)
    s = scope(*parse_extra_vars(("k=1", "k=2")))
    assert s["k"] == "2"  # last wins


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("notkeyvalue", "expected key=value"),
        ("@/nonexistent/vars.yaml", "file not found"),
        ("[1, 2]", "must be a mapping"),
        ('{"a": [1,', "YAML syntax error"),
    ],
)
def test_parse_extra_vars_errors(arg: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("[", r"\[")):
        parse_extra_vars((arg,))


def test_parse_extra_vars_file_must_be_a_mapping(tmp_path: Path) -> None:
    f = tmp_path / "l.yaml"
    f.write_text("- a\n", encoding="utf-8")
    with pytest.raises(ValidationError, match="must hold a mapping"):
        parse_extra_vars((f"@{f}",))


# -- the real precedence chain: Runner.scope_for ------------------------------------------------


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")


# v1 is defined at level 1 only, v2 at levels 1-2, ... v8 at every level: vN must come from level N.
def _defs(first: int, label: str, indent: int) -> str:
    return "".join(f"{' ' * indent}v{n}: {label}\n" for n in range(first, 9))


def _inventory() -> str:
    return (
        "all:\n"
        "  vars:\n"
        "    gv: all\n    gp: all\n    gc: all\n" + _defs(2, "group all", 4) + "  children:\n"
        "    parent:\n"
        "      vars:\n"
        "        gp: parent\n        gc: parent\n"
        "      children:\n"
        "        web:\n"
        "          vars:\n"
        "            gc: child\n" + _defs(2, "inventory group vars", 12) + "          hosts:\n"
        "            h1:\n" + _defs(3, "inventory host vars", 14)
    )


@pytest.fixture
def precedence_runner(tmp_path: Path) -> tuple[Runner, object, Inherited]:
    _write(
        tmp_path,
        {
            "roles/r/defaults/main.yaml": _defs(1, "role defaults", 0),
            "roles/r/vars/main.yaml": _defs(5, "role vars", 0),
            "roles/r/tasks/main.yaml": """
                - name: outer
                  vars:
                    v6: block vars
                    v7: block vars
                    v8: block vars
                    blockonly: block
                    both: block
                  block:
                    - name: the task
                      debug: {msg: hi}
                      vars:
                        both: task
                """,
            "inventory.yaml": _inventory(),
            "playbook.yaml": "- hosts: web\n  vars:\n"
            + _defs(4, "play vars", 4)
            + "  roles:\n    - role: r\n      v5: role params\n",
        },
    )
    loader = Loader([tmp_path / "roles"])
    book = loader.load_playbook(tmp_path / "playbook.yaml")
    inventory = Inventory.from_file(tmp_path / "inventory.yaml")
    options = RunOptions(extra_vars=parse_extra_vars(("v8='extra vars'",)))
    runner = Runner(
        book,
        inventory,
        options,
        loader=loader,
        sink=NullSink(),
        run_dir=tmp_path / "runs" / "x",
        run_id="x",
    )
    play = book.plays[0]
    runner._play = play
    runner._play_hosts = ["h1"]
    runner._play_layers = runner._build_play_layers(play)
    runner._host("h1").facts["v7"] = "host facts"
    runner._host("h1").facts["v8"] = "host facts"
    role_block = play.tasks[0]
    outer = role_block.block[0]
    task = outer.block[0]
    inherited = Inherited().enter(role_block).enter(outer)
    return runner, task, inherited


def test_scope_for_follows_the_eight_levels(precedence_runner) -> None:
    runner, task, inherited = precedence_runner
    s = runner.scope_for("h1", task, inherited)
    got = {f"v{n}": s[f"v{n}"] for n in range(1, 9)}
    assert got == {
        "v1": "role defaults",
        "v2": "inventory group vars",
        "v3": "inventory host vars",
        "v4": "play vars",
        "v5": "role params",
        "v6": "block vars",
        "v7": "host facts",
        "v8": "extra vars",
    }


def test_scope_for_role_params_beat_role_vars_and_task_beats_block(precedence_runner) -> None:
    runner, task, inherited = precedence_runner
    s = runner.scope_for("h1", task, inherited)
    assert s["both"] == "task"
    assert s["blockonly"] == "block"
    info = s.explain("v5")
    assert info.winner.startswith("role vars (")
    assert [o.split(" (")[0] for o, _ in info.candidates] == [
        "role vars",
        "role vars",
        "play vars",
        "inventory host vars",
        "inventory group vars",
        "inventory group vars",
        "role defaults",
    ]


def test_scope_for_group_vars_all_then_parent_then_child(precedence_runner) -> None:
    runner, task, inherited = precedence_runner
    s = runner.scope_for("h1", task, inherited)
    assert s["gv"] == "all"
    assert s["gp"] == "parent"
    assert s["gc"] == "child"


def test_explain_lists_all_eight_candidates(precedence_runner) -> None:
    runner, task, inherited = precedence_runner
    info = runner.scope_for("h1", task, inherited).explain("v8")
    levels = [origin.split(" (")[0] for origin, _ in info.candidates]
    # every level appears, highest first (group vars twice: group 'web' and group 'all')
    assert levels[0] == "extra vars"
    assert levels[-1] == "role defaults"
    assert list(dict.fromkeys(reversed(levels))) == list(LEVELS)


def test_role_defaults_are_private_to_the_role(precedence_runner) -> None:
    runner, _task, _inherited = precedence_runner
    s = runner.scope_for("h1", None, Inherited())
    assert "v1" not in s
    assert s["v4"] == "play vars"
