"""`smlplay status RUN` is a table (never dict reprs) with --output json; `smlplay logs RUN
-f` follows every log with a prefix per process and stops when the run is over."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.logfollow import Follower
from engine.runs import RunRecord
from tests.ports import free_port as _free_port

REPO = Path(__file__).resolve().parents[2]


def _detached_like(tmp_path: Path) -> RunRecord:
    """A record as a run inside a Slurm job leaves it: srun steps whose clients ran on the
    job's node (another boot id: their pids mean nothing here)."""
    book = tmp_path / "pb.yaml"
    book.write_text("- hosts: localhost\n  tasks: []\n")
    record = RunRecord.create(book, base=tmp_path / "runs")
    log = record.process_log("slurm-node1", "prefill-0-r0")
    log.write_text("server up\n")
    client = {"host": "login", "name": "srun-prefill-0-r0.n1", "log": f"{log}.srun", "transport": "local", "handle": {"pid": 1, "pgid": 1, "boot": "another-boot"}, "critical": True, "tier": 1, "started_at": 1.0}
    proc = {"host": "slurm-node1", "name": "prefill-0-r0", "log": str(log), "transport": "srun", "critical": True, "tier": 1, "started_at": 1.0,
            "handle": {"job_id": "4242", "step_id": "3", "step": "4242.3", "step_name": "prefill-0-r0.n1", "node": "n1", "client": client}}
    record.update(status="running", processes=[proc], teardown=[{"kind": "process", "host": "slurm-node1", "name": "prefill-0-r0", "tier": 1, "grace": 10.0, "label": "stop prefill-0-r0@slurm-node1"},
                                                              {"kind": "command", "host": "login", "cmd": "scancel 4242", "tier": 3, "label": "release the allocation (scancel 4242)"}])
    return record


def test_status_is_a_table_not_dict_reprs(tmp_path: Path) -> None:
    record = _detached_like(tmp_path)
    out = CliRunner().invoke(main, ["status", str(record.path)])
    assert out.exit_code == 0, out.output
    assert "{" not in out.output and "'client'" not in out.output
    lines = out.output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("PROCESS"))
    assert lines[header].split() == ["PROCESS", "NODE", "STEP", "STATE", "UPTIME", "LOG"]
    assert lines[header + 1].split() == ["prefill-0-r0", "slurm-node1", "4242.3", "recorded", "-", "logs/slurm-node1/prefill-0-r0.process.log"]
    assert "  tier 1: stop prefill-0-r0@slurm-node1" in out.output
    assert out.output.index("tier 1:") < out.output.index("tier 3: release the allocation (scancel 4242)")
    data = json.loads(CliRunner().invoke(main, ["status", str(record.path), "--output", "json"]).output)
    assert data["processes"] == [{"process": "prefill-0-r0", "node": "slurm-node1", "step": "4242.3", "state": "recorded", "uptime": None, "log": "logs/slurm-node1/prefill-0-r0.process.log"}]
    assert data["status"] == "running" and [e["tier"] for e in data["teardown"]] == [1, 3]


def test_follower_prefixes_and_waits_for_whole_lines(tmp_path: Path) -> None:
    record = _detached_like(tmp_path)
    follower = Follower(record)
    assert [(line.source, line.line) for line in follower.poll()] == [("prefill-0-r0@slurm-node1", "server up")]
    log = record.path / "logs" / "slurm-node1" / "prefill-0-r0.process.log"
    with open(log, "a") as f:
        f.write("half a li")
    assert list(follower.poll()) == []
    with open(log, "a") as f:
        f.write("ne\n")
    task = record.task_log("login", "allocate the nodes")
    task.write_text("$ sbatch\n")
    got = [(line.source, line.path, line.line) for line in follower.poll()]
    assert got == [("login/allocate-the-nodes", "logs/login/allocate-the-nodes.log", "$ sbatch"), ("prefill-0-r0@slurm-node1", "logs/slurm-node1/prefill-0-r0.process.log", "half a line")]


def test_status_and_logs_follow_of_a_live_run(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "SMLPLAY_RUNS_DIR": str(tmp_path / "runs")}

    def smlplay(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "engine", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)

    started = smlplay("run", "playbooks/demo-service.yaml", "-e", f"port={port}", "--keep-running")
    follower: subprocess.Popen[str] | None = None
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        status = smlplay("status", "last")
        assert status.returncode == 0, status.stderr
        row = next(line.split() for line in status.stdout.splitlines() if line.startswith("web "))
        assert row[:2] == ["web", "localhost"] and row[2] == "pid" and row[4] == "running", status.stdout
        assert row[-1] == "logs/localhost/web.process.log"
        data = json.loads(smlplay("status", "last", "--output", "json").stdout)
        (proc,) = data["processes"]
        assert proc["state"] == "running" and proc["uptime"] > 0
        follower = subprocess.Popen([sys.executable, "-m", "engine", "logs", "last", "-f"], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
        urllib.request.urlopen(f"http://127.0.0.1:{port}/status.json?from-the-test", timeout=10).read()
        assert follower.stdout is not None
        deadline = time.monotonic() + 30
        seen: list[str] = []
        while time.monotonic() < deadline and not any("from-the-test" in line for line in seen):
            seen.append(follower.stdout.readline())
        hit = next(line for line in seen if "from-the-test" in line)
        assert hit.startswith("web@localhost") and " | " in hit, seen
    finally:
        down = smlplay("down", "last")
    assert down.returncode == 0, down.stdout + down.stderr
    assert follower is not None
    follower.wait(timeout=15)  # the run is over: following ends by itself
    assert follower.returncode == 0
    after = json.loads(smlplay("status", "last", "--output", "json").stdout)
    assert after["status"] == "down" and after["processes"] == [] and after["teardown"] == []


@pytest.mark.parametrize("output", ["text", "json"])
def test_logs_without_follow_keeps_its_behaviour(tmp_path: Path, output: str) -> None:
    record = _detached_like(tmp_path)
    out = CliRunner().invoke(main, ["logs", str(record.path), "--output", output])
    assert out.exit_code == 0, out.output
    if output == "text":
        assert out.output == "==> logs/slurm-node1/prefill-0-r0.process.log <==\nserver up\n"
    else:
        assert json.loads(out.output) == {"source": "prefill-0-r0@slurm-node1", "path": "logs/slurm-node1/prefill-0-r0.process.log", "line": "server up"}
