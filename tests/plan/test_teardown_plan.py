"""The plan's TEARDOWN section: every process stopped and how, handlers, the allocation's
release, in tier order; the same in text, JSON and markdown; and the same entries a real
run registers (not a second list that could drift)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from engine.cli import main
from tests.ports import free_port as _free_port

REPO = Path(__file__).resolve().parents[2]
CLUSTER = ["playbooks/llama70b.yaml", "-i", "inventory/example-cluster.yaml"]


def _render(*args: str) -> str:
    out = CliRunner().invoke(main, ["run", *args, "--dry-run"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    return out.output


@pytest.fixture(scope="module")
def cluster_json() -> dict[str, Any]:
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        return json.loads(_render(*CLUSTER, "--format", "json"))
    finally:
        os.chdir(cwd)


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)


def test_cluster_dry_run_shows_the_teardown_with_scancel() -> None:
    text = _render(*CLUSTER)
    section = text[text.index("TEARDOWN ("):]
    tiers = [line.split()[1] for line in section.splitlines() if line.startswith("  TIER ")]
    assert tiers == sorted(tiers) and tiers[-1] == "3", tiers
    # each srun step: a graceful scancel of the step through the controller, then SIGKILL
    assert "scancel --signal=TERM --ctld <job id>.<step of prefill-0-r0>   (SIGTERM to the srun step prefill-0-r0.<node 1>)" in section
    assert "scancel <job id>.<step of decode-0-r0>   (SIGKILL)" in section
    assert "wait up to 10s (grace)" in section
    # the allocation goes last, on the login node over SSH
    tail = section[section.index("  TIER 3"):]
    assert "release the allocation (scancel '<job id>')" in tail
    assert "on alice@login.cluster.example.org (ssh): scancel '<job id>'" in tail
    # where each entry comes from, relative to the playbook's directory
    assert "registered by 'router : start the router' at ../roles/router/tasks/main.yml:" in section


def test_a_bare_router_gets_one_second() -> None:
    # smg keeps serving for a fixed 5 s settle window after SIGTERM: nobody needs it when the
    # whole stack goes down, so without OpenTela the router is killed after 1 s
    plan = json.loads(_render(*CLUSTER, "-e", "opentela.enabled=false", "--format", "json"))
    entries = [e for t in plan["teardown"]["tiers"] for e in t["entries"]]
    assert [e["grace"] for e in entries if e.get("name") == "router"] == [1.0]


def test_json_and_markdown_carry_the_same_teardown(cluster_json: dict[str, Any]) -> None:
    tiers = cluster_json["teardown"]["tiers"]
    assert [t["tier"] for t in tiers] == sorted(t["tier"] for t in tiers)
    labels = [e["label"] for t in tiers for e in t["entries"]]
    assert labels[-1] == "release the allocation (scancel '<job id>')"
    assert {"stop router@slurm-node1", "stop prefill-0-r0@slurm-node1", "stop decode-0-r0@slurm-node2"} <= set(labels)
    workers = next(t for t in tiers if t["tier"] == 1)
    assert all(e["kind"] == "process" and e["how"] for e in workers["entries"])
    # workers get 10 s to flush; the router, wrapped by OpenTela here, otela's 30 s to deregister
    graces = {e["name"]: e["grace"] for e in workers["entries"]}
    assert graces.pop("router") == 30.0 and set(graces.values()) == {10.0}, graces
    markdown = _render(*CLUSTER, "--format", "markdown")
    md = markdown[markdown.index("## Teardown"):]
    text = _render(*CLUSTER)
    for label in labels:
        assert f"**{label}**" in md
        assert f"    - {label}\n" in text
    for line in workers["entries"][0]["how"]:
        assert line in md and line in text


def test_handlers_that_can_run_are_listed() -> None:
    data = json.loads(_render("playbooks/demo-service.yaml", "--format", "json"))["teardown"]
    (handler,) = data["handlers"]
    assert handler["name"] == "server started"
    assert handler["notified_by"] == [{"host": "localhost", "task": "start the web server"}]
    assert handler["runs"][0]["detail"].startswith("served from runs/<run-id>/site")
    assert data["tiers"][0]["entries"][0]["how"][0] == "on this machine: kill -TERM -- -<pgid of web>   (its process group)"


def test_a_plan_without_teardown_says_so(tmp_path: Path) -> None:
    book = tmp_path / "plain.yaml"
    book.write_text("- hosts: localhost\n  tasks:\n    - command: echo hi\n")
    text = _render(str(book))
    assert "nothing registered: the run starts no background process and allocates nothing" in text


def test_keep_running_says_when_the_teardown_happens() -> None:
    text = _render("playbooks/demo-service.yaml", "--keep-running")
    assert "TEARDOWN (--keep-running: not when the run ends (unless it fails or is interrupted); `smlplay down RUN` does it)" in text


def test_a_process_a_task_stops_is_marked(tmp_path: Path) -> None:
    book = tmp_path / "stop.yaml"
    book.write_text(
        "- hosts: localhost\n  tasks:\n"
        "    - name: start it\n      process: {name: sleeper, cmd: exec sleep 60, grace: 2s, tier: 0}\n"
        "    - name: stop it\n      stop: {name: sleeper}\n"
    )
    text = _render(str(book))
    section = text[text.index("TEARDOWN ("):]
    assert "  TIER 0 (benchmarks and clients)\n    - stop sleeper@localhost\n" in section
    assert "stopped earlier by task 'stop it' (then teardown finds it gone)" in section
    assert "wait up to 2s (grace)" in section


def test_the_plan_shows_what_a_real_run_registers(tmp_path: Path) -> None:
    """A real run (kept running) records on its teardown stack exactly the entries the
    dry-run showed (kind, host, name, tier, grace, label), then `down` unwinds them."""
    port = str(_free_port())
    env = {**os.environ, "SMLPLAY_RUNS_DIR": str(tmp_path / "runs")}
    argv = [sys.executable, "-m", "engine", "run", "playbooks/demo-service.yaml", "-e", f"port={port}"]
    plan = json.loads(subprocess.run([*argv, "--dry-run", "--format", "json"], cwd=REPO, env=env, capture_output=True, check=True, text=True).stdout)
    keys = ("kind", "host", "name", "tier", "grace", "label")
    planned = [{k: e.get(k) for k in keys} for t in plan["teardown"]["tiers"] for e in t["entries"]]
    done = subprocess.run([*argv, "--keep-running"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    try:
        assert done.returncode == 0, done.stdout + done.stderr
        (run_dir,) = (tmp_path / "runs").iterdir()
        state = json.loads((run_dir / "state.json").read_text())
        registered = [{k: e.get(k) for k in keys} for e in state["teardown"]]
        assert registered == planned
        recorded = json.loads((run_dir / "plan.json").read_text())
        assert [e["label"] for t in recorded["teardown"]["tiers"] for e in t["entries"]] == [e["label"] for e in planned]
    finally:
        subprocess.run([sys.executable, "-m", "engine", "down", "last"], cwd=REPO, env=env, capture_output=True, timeout=120)
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", int(port))) != 0, "the web server is still listening after down"
