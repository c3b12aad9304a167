"""One node of the allocation goes down mid-run: its slurmd, its step daemons and every
task on it SIGKILLed at once (what a node crash does; the local cluster's nodes are
processes on this machine, so a crash of one is the death of those processes). The engine
must notice within seconds, name what died, tear down what is left on the other node and
release the allocation; once the node comes back (slurmd restarted, as after a reboot)
Slurm finishes the job and nothing of the run is left anywhere."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.cluster.conftest import Cli, job_ended, processes
from tests.faults.harness import Stack, find_victim, record_of, report, teardown_seconds

pytestmark = pytest.mark.cluster

LOCAL_SLURM = Path(__file__).resolve().parents[1] / "cluster" / "local-slurm.sh"


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def _node_of_the_run(job: str, node: str) -> list[int]:
    """Every process the node runs for the job: the tasks of its steps and their step
    daemons (``slurmstepd: [job.step]``)."""
    tasks = [p for p in processes() if (env := _environ(p.pid)).get("SLURM_JOB_ID") == job and env.get("SLURMD_NODENAME") == node]
    stepds = {p.pid for p in processes() if p.cmdline.startswith(f"slurmstepd: [{job}.")}
    # a task's step daemon is its parent (or its parent's, under a shell)
    by_pid = {p.pid: p for p in processes()}
    mine: set[int] = set()
    for task in tasks:
        mine.add(task.pid)
        up = task.ppid
        while up in by_pid and up > 1:
            if up in stepds:
                mine.add(up)
                break
            up = by_pid[up].ppid
    return sorted(mine)


def crash_node(slurm_dir: Path, job: str, node: str) -> list[int]:
    """SIGKILL the node's slurmd and everything it runs for ``job``; the pids killed."""
    slurmd = int((slurm_dir / "run" / f"slurmd-{node}.pid").read_text().strip())
    victims = [slurmd, *_node_of_the_run(job, node)]
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return victims


def bring_back(node: str) -> None:
    """Restart the node's slurmd (the script's ``up`` is idempotent) and resume the node."""
    up = subprocess.run(["bash", str(LOCAL_SLURM), "up"], capture_output=True, text=True, timeout=120, check=False)
    assert up.returncode == 0, up.stdout + up.stderr
    subprocess.run(["scontrol", "update", f"NodeName={node}", "State=RESUME"], capture_output=True, check=False)


def test_one_node_goes_down_mid_run(cli: Cli) -> None:
    stack = Stack(cli, "slurm", {"bench_seconds": 30, "slurm_node_probe": "1s"})
    watch = stack.start()
    node = ""
    try:
        watch.task_started("run the benchmark")
        time.sleep(1.0)  # requests flowing
        victim = find_victim(cli, "prefill-0")
        node = _environ(victim.pid)["SLURMD_NODENAME"]
        (job,) = {_environ(victim.pid)["SLURM_JOB_ID"]}
        killed_pids = crash_node(cli.cluster.dir, job, node)
        killed = time.monotonic()
        at, event = watch.wait_for(lambda e: e.get("event") in ("process_died", "run_error"), timeout=30)
        run = watch.finish(timeout=90)
    finally:
        watch.finish_quietly()
        if node:
            bring_back(node)
    detected = at - killed
    assert detected < 5.0, (detected, event)
    assert run.rc == 1 and "Traceback" not in run.output, str(run)
    assert f"on {node}" in run.output and "died" in run.output, str(run)
    steps = [e for _, e in watch.events if e["event"] == "teardown_step"]
    assert steps and all(s["status"] == "ok" for s in steps), steps
    assert steps[-1]["label"] == f"release the allocation (scancel {job})", steps
    # with the node back, Slurm ends the job; nothing of the run is left on either node
    assert job_ended(job, wait=60), subprocess.run(["squeue", "-j", job], capture_output=True, text=True).stdout
    left = cli.wait_for_no_leftovers(timeout=30)
    assert not left, (left, killed_pids)
    assert stack.listening() == [], f"still listening: {stack.listening()}"
    _, state = record_of(cli)
    assert state["status"] == "failed" and f"on {node} died" in state["message"], state
    assert state["processes"] == [] and state["teardown"] == [], state
    report(f"one node down mid-run (slurmd, step daemons and tasks of {node} SIGKILLed)", "test_node_down.py::test_one_node_goes_down_mid_run", detected, teardown_seconds(watch))
