"""``smlplay run --detach``: the engine runs as a batch job inside its own allocation, the
client goes away, and ``smlplay status/down`` drive it from the run record. Also the salloc
wrapper, the other way to get an allocation without a shell."""

from __future__ import annotations

import json
import subprocess
import time

from engine.slurm import job_info, local_run, salloc, scancel
from tests.cluster.conftest import Cli, SlurmCluster


def _steps(job: str) -> list[str]:
    out = subprocess.run(["squeue", "-h", "-s", "-j", job, "-o", "%j"], capture_output=True, text=True, check=False)
    return out.stdout.split()


def test_detached_run_serves_until_down(cli: Cli) -> None:
    started = time.monotonic()
    run = cli.run("keep_running.yaml", "--detach", "--keep-running", json_output=False)
    assert run.rc == 0, str(run)
    assert time.monotonic() - started < 30  # the client only submits
    record = cli.last_run_dir()
    state = json.loads((record / "state.json").read_text())
    assert state["detached"] and state["status"] == "submitted"
    job = state["job_id"]
    # inside the job: the same playbook, adopting the job as its allocation
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(s.startswith("sleeper.") for s in _steps(job)):
        time.sleep(0.3)
    assert any(s.startswith("sleeper.") for s in _steps(job)), (record / "engine.log").read_text()
    info = job_info(local_run, job)
    assert info is not None and info.is_running
    status = cli.smlplay("status", record.name)
    assert status.rc == 0 and f"detached: job {job}" in status.stdout and "RUNNING" in status.stdout, str(status)
    down = cli.smlplay("down", record.name, timeout=200)
    assert down.rc == 0, str(down)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (job_info(local_run, job) or info).is_active:
        time.sleep(0.3)
    after = job_info(local_run, job)
    assert after is None or after.is_finished
    # the engine in the job tore down: its record says so step by step (what the console
    # shows of it is the live view's business), and its log names the stop that ran
    log = (record / "engine.log").read_text()
    events = [json.loads(line) for line in (record / "events.jsonl").read_text().splitlines() if line.strip()]
    assert any(e["event"] == "teardown_start" for e in events), log
    steps = {e["label"]: (e["status"], e.get("detail")) for e in events if e["event"] == "teardown_step"}
    stops = [label for label in steps if label.startswith("stop sleeper@")]
    assert stops and all(steps[label] == ("ok", "stopped") for label in stops), (steps, log)
    assert f"ok: tier 1: {stops[0]} (stopped)" in log, log
    sleeper_logs = list((record / "logs").rglob("sleeper.process.log"))
    assert sleeper_logs and f"got TERM {cli.marker}" in sleeper_logs[0].read_text()


def test_salloc_no_shell_allocates_and_scancel_releases(slurm: SlurmCluster) -> None:
    job = salloc(local_run, ["--nodes=2", "--job-name=smlplay-salloc-test", "--time=5"])
    try:
        info = job_info(local_run, job)
        assert info is not None and info.is_running and len(info.nodes) == 2
    finally:
        scancel(local_run, job)
    assert not slurm.wait_no_active_jobs()
