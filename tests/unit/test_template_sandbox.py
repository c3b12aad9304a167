"""Templates run in Jinja's sandbox: reaching Python internals is a clear TemplateError."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engine.errors import TemplateError
from engine.load.yaml import loads
from engine.template import Templar, Unknown

ESCAPES = [
    "''.__class__.__mro__",
    "cycler.__init__.__globals__",
    "lipsum.__globals__",
    "joiner.__init__.__globals__.os",
    "namespace.__init__.__globals__",
    "self._TemplateReference__context",
    "().__class__.__base__.__subclasses__()",
    "'{0.__class__}'.format('')",
    "'{0.__class__.__mro__}'.format(x)",
    "x.__class__",
    "lookup.__globals__",
]


@pytest.fixture(scope="module")
def t() -> Templar:
    return Templar()


@pytest.mark.parametrize("expr", ESCAPES)
@pytest.mark.parametrize("shape", ["{{ %s }}", "before {{ %s }} after", "{%% set v = %s %%}{{ v }}"])
def test_escape_in_a_value_is_a_template_error(t: Templar, expr: str, shape: str) -> None:
    source = shape % expr
    with pytest.raises(TemplateError, match="unsafe template") as info:
        t.render(source, {"x": "s"})
    assert "<class" not in str(info.value) and "__builtins__" not in str(info.value)


@pytest.mark.parametrize("expr", ESCAPES)
def test_escape_in_a_condition_is_a_template_error(t: Templar, expr: str) -> None:
    with pytest.raises(TemplateError, match="unsafe template"):
        t.condition(f"{expr} is not none", {"x": "s"}, keyword="when")


@pytest.mark.parametrize("expr", ESCAPES)
def test_escape_in_a_template_file_names_file_and_line(t: Templar, tmp_path: Path, expr: str) -> None:
    path = tmp_path / "launch.sh.j2"
    path.write_text("#!/bin/sh\necho ok\necho {{ " + expr + " }}\n", encoding="utf-8")
    with pytest.raises(TemplateError, match="unsafe template") as info:
        t.render_file(path, {"x": "s"})
    assert info.value.pos is not None
    assert (info.value.pos.file, info.value.pos.line) == (str(path), 3)


def test_error_carries_the_yaml_position(t: Templar) -> None:
    doc = loads("a: 1\nv: \"{{ lipsum.__globals__ }}\"\n", "pb.yaml")
    with pytest.raises(TemplateError) as info:
        t.render(doc["v"], {})
    assert info.value.pos is not None and (info.value.pos.file, info.value.pos.line) == ("pb.yaml", 2)


def test_legitimate_templates_still_work(t: Templar) -> None:
    assert t.render("{{ '{0}-{1}'.format(a, 2) }}", {"a": 1}) == "1-2"
    assert t.render("{% set xs = [] %}{% do xs.append(1) %}{% set d = {} %}{% do d.update({'k': 2}) %}{{ xs }}{{ d }}", {}) == "[1]{'k': 2}"
    assert t.render("{{ d.items() | list }}", {"d": {"a": 1}}) == [("a", 1)]
    assert t.render("{{ s.upper() }}", {"s": "ab"}) == "AB"


def test_unknown_placeholders_survive_the_sandbox(t: Templar) -> None:
    r = Unknown("registered: r")
    assert str(t.render("{{ r.stdout }}", {"r": r})) == "<registered: r.stdout>"
    assert isinstance(t.render("x {{ r.stdout.split() }}", {"r": r}), Unknown)


@pytest.mark.parametrize("command", [["run", "--dry-run"], ["check"]])
def test_cli_rejects_an_escape_with_its_position(tmp_path: Path, command: list[str]) -> None:
    (tmp_path / "playbook.yaml").write_text(
        textwrap.dedent(
            """\
            - hosts: localhost
              tasks:
                - name: leak
                  debug:
                    msg: "{{ cycler.__init__.__globals__.os }}"
            """
        ),
        encoding="utf-8",
    )
    env = {**os.environ, "SMLPLAY_RUNS_DIR": str(tmp_path / "runs"), "NO_COLOR": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "engine", *command, "playbook.yaml"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "unsafe template" in out and "playbook.yaml:5" in out, out
    assert "Traceback" not in out and "<module 'os'" not in out


@pytest.mark.parametrize("expr", ["''.__class__ | default('x')", "lipsum.__globals__ is defined", "x.__class__ is none"])
def test_escape_is_not_swallowed_by_default_or_tests(t: Templar, expr: str) -> None:
    with pytest.raises(TemplateError, match="unsafe template"):
        t.render("{{ " + expr + " }}", {"x": "s"})
