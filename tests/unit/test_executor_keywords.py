"""The executor's keywords on real local runs and dry-runs: start_at_task, end_host,
clear_host_errors, delegate_to and run_once (two local hosts, each writing what it saw)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from engine.cli import main

INVENTORY = """\
all:
  hosts:
    h1: {connection: local}
    h2: {connection: local}
"""


class Run:
    def __init__(self, tmp: Path, rc: int, output: str) -> None:
        self.tmp, self.rc, self.output = tmp, rc, output

    def events(self, kind: str) -> list[dict[str, Any]]:
        found = []
        for line in self.output.splitlines():
            if line.startswith("{"):
                event = json.loads(line)
                if event.get("event") == kind:
                    found.append(event)
        return found

    def seen(self, host: str) -> list[str]:
        path = self.tmp / f"obs-{host}"
        return path.read_text().split() if path.exists() else []

    @property
    def recap(self) -> dict[str, dict[str, int]]:
        return self.events("recap")[-1]["recap"]


def run(tmp: Path, monkeypatch: pytest.MonkeyPatch, playbook: str, *args: str) -> Run:
    (tmp / "playbook.yml").write_text(textwrap.dedent(playbook))
    (tmp / "inventory.yml").write_text(INVENTORY)
    monkeypatch.chdir(tmp)
    monkeypatch.setenv("SMLPLAY_RUNS_DIR", str(tmp / "runs"))
    argv = ["run", "playbook.yml", "-i", "inventory.yml", "-e", f"obs={tmp}/obs", "--output", "json", *args]
    result = CliRunner().invoke(main, argv, catch_exceptions=False)
    return Run(tmp, result.exit_code, result.output)


def plan_steps(tmp: Path, monkeypatch: pytest.MonkeyPatch, playbook: str) -> list[dict[str, Any]]:
    (tmp / "playbook.yml").write_text(textwrap.dedent(playbook))
    (tmp / "inventory.yml").write_text(INVENTORY)
    monkeypatch.chdir(tmp)
    monkeypatch.setenv("SMLPLAY_RUNS_DIR", str(tmp / "runs"))
    argv = ["run", "playbook.yml", "-i", "inventory.yml", "-e", f"obs={tmp}/obs", "--dry-run", "--format", "json"]
    result = CliRunner().invoke(main, argv, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return [step for play in json.loads(result.output)["plays"] for step in play["steps"]]


def write(word: str) -> str:
    """A task body that appends ``word`` to this host's observation file."""
    return f"""shell: 'echo {word} >> "{{{{ obs }}}}-{{{{ inventory_hostname }}}}"'"""


def test_start_at_task_skips_the_tasks_before_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = run(
        tmp_path,
        monkeypatch,
        f"""
        - hosts: h1
          tasks:
            - {{name: first, {write("first")}}}
            - block:
                - {{name: second, {write("second")}}}
                - {{name: third, {write("third")}}}
        """,
        "--start-at-task",
        "second",
    )
    assert out.rc == 0, out.output
    assert out.seen("h1") == ["second", "third"]
    assert out.recap["h1"]["changed"] == 2


def test_end_host_ends_only_that_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = run(
        tmp_path,
        monkeypatch,
        f"""
        - hosts: all
          tasks:
            - {write("before")}
            - meta: end_host
              when: inventory_hostname == 'h1'
            - {write("after")}
        - hosts: all
          tasks:
            - {write("next_play")}
        """,
    )
    assert out.rc == 0, out.output
    assert out.seen("h2") == ["before", "after", "next_play"]
    # end_host ends the host for this play only (Ansible): the next play runs on it again
    assert out.seen("h1") == ["before", "next_play"]


def test_clear_host_errors_returns_failed_hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = run(
        tmp_path,
        monkeypatch,
        f"""
        - hosts: all
          tasks:
            - command: "false"
              when: inventory_hostname == 'h1'
            - meta: clear_host_errors
        - hosts: all
          tasks:
            - {write("next_play")}
        """,
    )
    assert out.seen("h2") == ["next_play"]
    assert out.seen("h1") == ["next_play"], "a cleared host is back for the next play"
    assert out.recap["h1"]["failed"] == 1


def test_a_failed_host_stays_out_of_later_plays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The counterpart of the test above: without clear_host_errors, h1 is done."""
    out = run(
        tmp_path,
        monkeypatch,
        f"""
        - hosts: all
          tasks:
            - command: "false"
              when: inventory_hostname == 'h1'
            - {write("same_play")}
        """,
    )
    assert out.rc == 1
    assert out.seen("h1") == []
    assert out.seen("h2") == ["same_play"]


def test_delegate_to_runs_on_the_delegate_with_the_host_s_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    playbook = f"""
        - hosts: h1
          tasks:
            - {write("delegated")}
              delegate_to: h2
        """
    steps = plan_steps(tmp_path, monkeypatch, playbook)
    assert [(s["host"], s.get("delegate_to")) for s in steps] == [("h1", "h2")]
    out = run(tmp_path, monkeypatch, playbook)
    assert out.rc == 0, out.output
    assert out.seen("h1") == ["delegated"]  # inventory_hostname is still h1
    assert out.recap["h1"]["changed"] == 1 and not any(out.recap.get("h2", {}).values())


def test_run_once_plans_one_step_and_shares_the_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    playbook = f"""
        - hosts: all
          tasks:
            - name: once
              command: echo from-first
              run_once: true
              register: r
            - {write("{{ r.stdout | trim }}")}
        """
    steps = plan_steps(tmp_path, monkeypatch, playbook)
    assert [s["host"] for s in steps if s["task"] == "once"] == ["h1"]
    # the later task is planned on both hosts, with the shared result decided at run time
    later = [s for s in steps if s["task"] != "once"]
    assert [s["host"] for s in later] == ["h1", "h2"]
    assert all("<registered: r" in s["detail"] for s in later), later
    out = run(tmp_path, monkeypatch, playbook)
    assert out.rc == 0, out.output
    assert out.seen("h1") == out.seen("h2") == ["from-first"], out.output


def test_run_time_error_in_args_is_a_task_failure_rescue_sees(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = run(
        tmp_path,
        monkeypatch,
        f"""
        - hosts: h1
          tasks:
            - block:
                - command: "true"
                  register: r
                - {write("{{ r.stdout | from_json }}")}
              rescue:
                - {write("rescued")}
        """,
    )
    assert out.rc == 0, out.output
    assert out.seen("h1") == ["rescued"]
    assert out.recap["h1"]["failed"] == 0 and out.recap["h1"]["rescued"] == 1


def test_dry_run_refuses_an_undefined_variable_on_every_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = run(
        tmp_path,
        monkeypatch,
        """
        - hosts: h1
          tasks:
            - command: "true"
            - debug: {msg: "{{ nosuch }}"}
        """,
        "--dry-run",
    )
    assert out.rc == 2
    assert "playbook.yml:5:20" in out.output and "'nosuch' is undefined" in out.output


def test_dry_run_leaves_what_a_rescue_sets_to_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    steps = plan_steps(
        tmp_path,
        monkeypatch,
        """
        - hosts: h1
          tasks:
            - block:
                - command: "false"
              rescue:
                - set_fact: {flag: recovered}
            - debug: {msg: "flag={{ flag }}"}
        """,
    )
    assert steps[-1]["detail"] == "flag=<decided at run time: flag>"


def test_dry_run_leaves_an_include_of_a_registered_name_to_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The file is decided at run time, and so is what it defines: not an undefined variable."""
    (tmp_path / "b.yml").write_text("- set_fact: {from_b: yes_b}\n")
    playbook = """
        - hosts: h1
          tasks:
            - command: echo b
              register: which
            - include_tasks: "{{ which.stdout }}.yml"
            - debug: {msg: "{{ from_b }}"}
        """
    steps = plan_steps(tmp_path, monkeypatch, playbook)
    assert [s["action"] for s in steps] == ["command", "include_tasks", "debug"]
    assert all(s["detail"].startswith("(decided at run time") for s in steps[1:]), steps
    out = run(tmp_path, monkeypatch, playbook)
    assert out.rc == 0, out.output
    assert [e["result"].get("msg") for e in out.events("task_result") if e["action"] == "debug"] == ["yes_b"]
