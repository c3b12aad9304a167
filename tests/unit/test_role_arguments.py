"""Role argument_specs, validated (in a dry-run) before the role's first task."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from engine.cli import parse_extra_vars
from engine.errors import Position, ValidationError
from engine.executor.context import RunOptions
from engine.executor.roleargs import _type_problem
from engine.executor.run import load, render_plan

META = """
argument_specs:
  main:
    options:
      port: {type: int, required: true, description: the port}
      mode: {type: str, choices: [fast, safe], default: safe}
      ratio: {type: float}
      hosts: {type: list, elements: str}
      opts: {type: dict}
      flag: {type: bool}
      anything: {type: raw}
"""


def plan(
    tmp_path: Path, role_entry: str, *, extra: tuple[str, ...] = (), play_vars: str = ""
) -> list:
    files = {
        "roles/web/meta/main.yaml": META,
        "roles/web/tasks/main.yaml": "- name: show\n  debug: {msg: '{{ port }}'}\n",
        "playbook.yaml": f"- hosts: localhost\n{play_vars}  roles:\n    - {role_entry}\n",
    }
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    book, _inv, loader = load(tmp_path / "playbook.yaml", None)
    return render_plan(book, None, RunOptions(extra_vars=parse_extra_vars(extra)), loader)


def test_valid_arguments(tmp_path: Path) -> None:
    out = plan(
        tmp_path,
        "{role: web, port: 80, ratio: 1, hosts: [a, b], opts: {}, flag: true, anything: [1]}",
    )
    assert out[0]["steps"][0]["args"] == {"msg": 80}


def test_templated_argument_is_checked_after_rendering(tmp_path: Path) -> None:
    plan(tmp_path, "{role: web, port: '{{ p * 2 }}'}", play_vars="  vars: {p: 40}\n")
    with pytest.raises(ValidationError, match="expected int, got str"):
        plan(tmp_path, "{role: web, port: '{{ p }}x'}", play_vars="  vars: {p: 40}\n")


def test_argument_from_play_vars_or_extra_vars(tmp_path: Path) -> None:
    plan(tmp_path, "web", play_vars="  vars: {port: 1}\n")
    with pytest.raises(ValidationError, match="expected int, got str '8'"):
        plan(tmp_path, "web", extra=("port=8",))  # -e values are strings
    plan(tmp_path, "web", extra=('{"port": 8}',))


def test_missing_required(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as info:
        plan(tmp_path, "{role: web, mode: fast}")
    e = info.value
    assert e.message == "missing required argument 'port' of role 'web'"
    assert e.pos == Position(str(tmp_path / "playbook.yaml"), 3, 14)
    assert e.hint == "the port"


@pytest.mark.parametrize(
    ("entry", "message", "line_col"),
    [
        (
            "{role: web, port: eighty}",
            "invalid argument 'port' of role 'web': expected int, got str 'eighty'",
            (3, 25),
        ),
        ("{role: web, port: true}", "expected int, got boolean True", (3, 25)),
        ("{role: web, port: 1, mode: turbo}", "'turbo' is not one of 'fast', 'safe'", (3, 34)),
        ("{role: web, port: 1, ratio: x}", "expected float", (3, 35)),
        ("{role: web, port: 1, hosts: a}", "expected list", (3, 35)),
        ("{role: web, port: 1, hosts: [a, 2]}", "element 1: expected str, got int 2", (3, 35)),
        ("{role: web, port: 1, opts: [1]}", "expected dict", (3, 34)),
        ("{role: web, port: 1, flag: 'yes'}", "expected bool, got str 'yes'", (3, 34)),
    ],
)
def test_invalid_arguments_point_at_the_value(
    tmp_path: Path, entry: str, message: str, line_col: tuple[int, int]
) -> None:
    with pytest.raises(ValidationError) as info:
        plan(tmp_path, entry)
    assert message in info.value.message
    assert info.value.pos == Position(str(tmp_path / "playbook.yaml"), *line_col)


@pytest.mark.parametrize(
    ("value", "type_name", "ok"),
    [
        (1, "int", True),
        (True, "int", False),
        (1.5, "int", False),
        (1, "float", True),
        (True, "float", False),
        ("x", "str", True),
        ("x", "path", True),
        (1, "str", False),
        ([], "list", True),
        ((), "list", True),
        ({}, "dict", True),
        ([], "dict", False),
        (False, "bool", True),
        ("false", "bool", False),
        (object(), "raw", True),
    ],
)
def test_type_problem(value: object, type_name: str, ok: bool) -> None:
    assert (_type_problem(value, type_name) is None) is ok
