"""Faults of the cluster and of the inputs the run meets at run time: the allocation
cancelled from outside, its time limit, a job that stays PENDING past its deadline, a worker
that never becomes healthy, a port already taken, an unusable run directory, and a detached
run whose batch job is cancelled."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.cluster.conftest import Cli, hold_nodes, job_ended, squeue_state
from tests.faults.harness import Stack, check_outcome, record_of, report, teardown_seconds

pytestmark = pytest.mark.cluster


def _steps(job: str) -> list[str]:
    out = subprocess.run(["squeue", "-h", "-s", "-j", job, "-o", "%j"], capture_output=True, text=True, check=False)
    return out.stdout.split()


def _job(cli: Cli) -> str:
    (job,) = [j for j in cli.job_ids if squeue_state(j)]
    return job


def test_allocation_cancelled_from_outside(cli: Cli) -> None:
    stack = Stack(cli, "slurm", {"bench_seconds": 30})
    watch = stack.start()
    try:
        watch.task_started("run the benchmark")
        time.sleep(1.0)
        job = _job(cli)
        subprocess.run(["scancel", job], check=True)
        cancelled = time.monotonic()
        at, event = watch.wait_for(lambda e: e.get("event") in ("process_died", "run_error"), timeout=30)
        run = watch.finish(timeout=90)
    finally:
        watch.finish_quietly()
    detected = at - cancelled
    assert detected < 8.0, (detected, event)
    state = check_outcome(stack, watch, run, rc=1, status="failed", says=("died",))
    assert "critical process" in state["message"], state
    assert job_ended(job)
    report("scancel of the allocation from outside", "test_cluster_faults.py::test_allocation_cancelled_from_outside", detected, teardown_seconds(watch))


@pytest.mark.parametrize(
    "limit",
    [
        # Slurm's smallest --time is a minute, and slurmctld enforces limits in a sweep every
        # 30 s (PERIODIC_TIMEOUT), then KillWait (5 s here): 65-100 s a run, too long for CI.
        pytest.param("1min", marks=pytest.mark.skipif(not os.environ.get("SMLPLAY_SLOW_FAULTS"), reason="65-100 s (a 1-minute --time and slurmctld's 30 s sweep): set SMLPLAY_SLOW_FAULTS=1")),
        # The same kill path (Reason=TimeLimit, SIGTERM, KillWait, SIGKILL), sooner: the limit
        # of the running job lowered to 0 (as an admin may), so the next sweep (<= 30 s) ends it.
        "lowered",
    ],
)
def test_allocation_reaches_its_time_limit(cli: Cli, limit: str) -> None:
    slurm_time = "00:01:00" if limit == "1min" else None
    stack = Stack(cli, "slurm", {"bench_seconds": 1, "slurm_time": slurm_time, "hold": 150})
    watch = stack.start()
    try:
        watch.task_started("hold", timeout=60)
        job = _job(cli)
        if limit == "lowered":
            subprocess.run(["scontrol", "update", f"JobId={job}", "TimeLimit=0"], check=True, capture_output=True)
        at, _ = watch.wait_for(lambda e: e.get("event") in ("process_died", "run_error"), timeout=150)
        run = watch.finish(timeout=90)
    finally:
        watch.finish_quietly()
    ended = _end_time(job)
    state = check_outcome(stack, watch, run, rc=1, status="failed", says=("died",))
    assert "critical process" in state["message"], state
    assert _job_field(job, "JobState") == "TIMEOUT", subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True).stdout
    report(f"the allocation reaches its time limit ({limit})", f"test_cluster_faults.py::test_allocation_reaches_its_time_limit[{limit}]", None if ended is None else max(0.0, time.time() - ended - (time.monotonic() - at)), teardown_seconds(watch))


def _job_field(job: str, name: str) -> str | None:
    out = subprocess.run(["scontrol", "-o", "show", "job", job], capture_output=True, text=True, check=False).stdout
    return next((f.split("=", 1)[1] for f in out.split() if f.startswith(f"{name}=")), None)


def _end_time(job: str) -> float | None:
    out = subprocess.run(["scontrol", "-o", "show", "job", job], capture_output=True, text=True, check=False).stdout
    for field in out.split():
        if field.startswith("EndTime="):
            stamp = field.split("=", 1)[1]
            try:
                return time.mktime(time.strptime(stamp, "%Y-%m-%dT%H:%M:%S"))
            except ValueError:
                return None
    return None


def test_job_pending_past_its_deadline(cli: Cli) -> None:
    holder = hold_nodes(cli, 3)
    stack = Stack(cli, "slurm", {"alloc_timeout": "3s"})
    try:
        started = time.monotonic()
        run = stack.run(timeout=60)
        took = time.monotonic() - started
    finally:
        subprocess.run(["scancel", holder], check=False)
    assert run.rc == 1, str(run)
    (job,) = run.job_ids
    assert f"job {job} did not start within 3s (state PENDING, reason Resources)" in run.output, str(run)
    assert job_ended(job)
    assert took < 20, took
    _, state = record_of(cli)
    assert state["status"] == "failed" and f"job {job} did not start within 3s" in state["message"], state
    assert state["teardown"] == [] and state["processes"] == []
    events = run.events()
    assert [e["label"] for e in events if e["event"] == "teardown_step"] == [f"release the allocation (scancel {job})"]
    report("job PENDING past the allocation deadline (3 s)", "test_cluster_faults.py::test_job_pending_past_its_deadline", took, None)


@pytest.mark.parametrize("scheduler", ["slurm", "local"])
def test_worker_never_healthy(cli: Cli, scheduler: str) -> None:
    stack = Stack(cli, scheduler, {"decode_delay": 120, "health_timeout": "3s"})
    started = time.monotonic()
    run = stack.run(timeout=90)
    took = time.monotonic() - started
    assert run.rc == 1, str(run)
    failed = run.results("start the decode worker")
    (result,) = failed.values()
    assert result["_status"] == "failed"
    assert result["msg"].startswith("not healthy after 3.0s"), result["msg"]
    # the log tail: the simulator says it is loading (its --sim-startup-delay)
    assert "last lines of" in result["msg"] and "decode-0" in result["msg"], result["msg"]
    assert run.results("start the router") == {}
    _, state = record_of(cli)
    assert state["status"] == "failed" and "not healthy after 3.0s" in state["message"], state
    assert state["teardown"] == [] and state["processes"] == []
    assert stack.listening() == []
    assert not cli.wait_for_no_leftovers(timeout=15)
    report(f"worker never healthy (3 s deadline, {scheduler})", f"test_cluster_faults.py::test_worker_never_healthy[{scheduler}]", took, None)


def test_port_already_taken(cli: Cli) -> None:
    stack = Stack(cli, "slurm")
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", stack.ports["decode"]))
    squatter.listen()
    try:
        started = time.monotonic()
        run = stack.run(timeout=90)
        took = time.monotonic() - started
    finally:
        squatter.close()
    assert run.rc == 1, str(run)
    (result,) = run.results("start the decode worker").values()
    assert f"port {stack.ports['decode']} on 127.0.0.1 is already in use on n" in result["msg"], result
    _, state = record_of(cli)
    assert state["status"] == "failed" and "already in use" in state["message"], state
    assert state["teardown"] == [] and state["processes"] == []
    steps = [e["label"] for e in run.events() if e["event"] == "teardown_step"]
    assert any(s.startswith("stop prefill-0@") for s in steps) and steps[-1].startswith("release the allocation"), steps
    assert stack.listening() == []
    assert not cli.wait_for_no_leftovers(timeout=15)
    report("a worker's port already taken on its node", "test_cluster_faults.py::test_port_already_taken", took, None)


@pytest.mark.parametrize("why", ["not-a-directory", "read-only", "full"])
def test_unusable_run_directory(cli: Cli, why: str, tmp_path: Path) -> None:
    runs = _unusable(why, tmp_path)
    cli.env["SMLPLAY_RUNS_DIR"] = str(runs)
    try:
        stack = Stack(cli, "slurm")
        started = time.monotonic()
        run = stack.run(timeout=60)
        took = time.monotonic() - started
    finally:
        _release(why, tmp_path)
    assert run.rc == 2, str(run)
    assert "Traceback" not in run.output
    assert "run directory" in run.output and str(runs) in run.output, str(run)
    assert run.job_ids == [] and "submitted job" not in run.output  # nothing started
    assert not cli.wait_for_no_leftovers(timeout=5)
    report(f"run directory unusable ({why})", f"test_cluster_faults.py::test_unusable_run_directory[{why}]", took, None)


def _unusable(why: str, tmp_path: Path) -> Path:
    if why == "not-a-directory":
        (tmp_path / "file").write_text("")
        return tmp_path / "file" / "runs"
    mount = tmp_path / "mnt"
    mount.mkdir()
    options = "ro,size=1m" if why == "read-only" else "size=16k"
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    if why == "full":
        try:
            with open(mount / "filler", "wb") as f:
                while True:
                    f.write(b"\0" * 4096)
                    f.flush()
        except OSError:
            pass  # ENOSPC: full
    return mount / "runs" if why == "full" else mount


def _release(why: str, tmp_path: Path) -> None:
    if why != "not-a-directory":
        subprocess.run(["umount", str(tmp_path / "mnt")], check=False)


def test_detached_run_whose_job_is_cancelled(cli: Cli) -> None:
    stack = Stack(cli, "slurm", {"bench_seconds": 1, "hold": 120})
    run = stack.run("--detach", timeout=60)
    assert run.rc == 0, str(run)
    record, state = record_of(cli)
    job = str(state["job_id"])
    cli.job_ids.add(job)
    deadline = time.monotonic() + 90
    while not any(s.startswith("node-exporter.") for s in _steps(job)):  # the stack is up
        assert time.monotonic() < deadline, (record / "engine.log").read_text(errors="replace")[-3000:]
        time.sleep(0.3)
    subprocess.run(["scancel", job], check=True)
    cancelled = time.monotonic()
    assert job_ended(job, wait=30)
    status = cli.smlplay("status", record.name)
    assert status.rc == 0, str(status)
    assert f"detached: job {job}" in status.stdout, status.stdout
    assert ": gone" in status.stdout or "CANCELLED" in status.stdout, status.stdout
    state = json.loads((record / "state.json").read_text())
    assert state["status"] not in ("running", "submitted"), state  # the record does not claim it still runs
    down = cli.smlplay("down", record.name)
    assert down.rc == 0 and "Traceback" not in down.output, str(down)
    assert not cli.wait_for_no_leftovers(timeout=15)
    assert stack.listening() == []
    report("detached run whose batch job is cancelled", "test_cluster_faults.py::test_detached_run_whose_job_is_cancelled", None, time.monotonic() - cancelled)
