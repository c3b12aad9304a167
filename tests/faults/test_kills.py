"""kill -9 of each process of a running stack, in each phase, on the real local Slurm
cluster (every process an srun step, reached through the loopback sshd) and on the local
default (virtual nodes on this machine).

Each case asserts that the engine reported the death within a bound (measured from the
kill to the first event that names it), showed the last lines of the victim's log, tore
everything down (steps, the allocation), exited 1, left nothing running or listening, and
that ``runs/<id>/state.json`` says what happened.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.conftest import Cli
from tests.faults.harness import (
    TASKS,
    Stack,
    Watch,
    check_outcome,
    kill9,
    record_of,
    report,
    teardown_seconds,
)

pytestmark = pytest.mark.cluster

#: Detection bounds: the monitor polls every 0.5 s; through srun the liveness check is a
#: command on the login node over SSH, on a 2-core machine shared with other runs.
DETECT_S = {"slurm": 5.0, "local": 3.0}


@dataclass(frozen=True)
class Kill:
    victim: str
    phase: str  # bring-up | health | benchmark
    scheduler: str = "slurm"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.victim}-{self.phase}-{self.scheduler}"


KILLS = [
    # bring-up: the victim is up, a later process is still coming up
    Kill("prefill-0", "bring-up", extra={"decode_delay": 6}),
    Kill("decode-0", "bring-up", "local", extra={"decode_delay": 0}),
    # health: the victim itself is in its health wait (a slow cold start)
    Kill("prefill-0", "health", extra={"prefill_delay": 30}),
    Kill("decode-0", "health", extra={"decode_delay": 30}),
    Kill("prefill-0", "health", "local", extra={"prefill_delay": 30}),
    # benchmark: requests flowing through the gateway
    Kill("prefill-0", "benchmark"),
    Kill("decode-0", "benchmark"),
    Kill("router", "benchmark"),
    Kill("router", "benchmark", "local"),
]


def _strike(watch: Watch, stack: Stack, kill: Kill) -> float:
    """Wait for the phase, then kill the victim; the time of the kill."""
    if kill.phase == "bring-up":
        later = {"prefill-0": "start the decode worker", "decode-0": "start the router"}[kill.victim]
        watch.task_started(later)
    elif kill.phase == "health":
        watch.health_waiting(TASKS[kill.victim])
    else:
        watch.task_started("run the benchmark")
        time.sleep(1.0)  # let requests flow
    _wait_for_a_log_line(watch, kill.victim)
    return kill9(stack, kill.victim)


def _wait_for_a_log_line(watch: Watch, victim: str, timeout: float = 10.0) -> None:
    """The victim has written its first line (its start-up echo): the tail the engine must
    show is then known to be there, on a machine slow enough to kill it before that."""
    run_dir = Path(watch.wait_for(lambda e: e.get("event") == "run_start")[1]["run_dir"])
    deadline = time.monotonic() + timeout
    while not any(p.read_text().strip() for p in run_dir.rglob(f"{victim}.process.log")):
        assert time.monotonic() < deadline, f"{victim} wrote nothing to its log under {run_dir} in {timeout}s"
        time.sleep(0.05)


@pytest.mark.parametrize("kill", KILLS, ids=[k.id for k in KILLS])
def test_kill9_of_a_critical_process(cli: Cli, kill: Kill) -> None:
    stack = Stack(cli, kill.scheduler, {"bench_seconds": 30, **kill.extra})
    watch = stack.start()
    try:
        killed = _strike(watch, stack, kill)
        at, event = watch.wait_for(lambda e: _names_death(e, kill.victim), timeout=30)
        run = watch.finish(timeout=90)
    finally:
        watch.finish_quietly()
    detected = at - killed
    assert detected < DETECT_S[kill.scheduler], f"reported {detected:.1f}s after the kill: {event}"
    state = check_outcome(stack, watch, run, rc=1, status="failed", says=(f"'{kill.victim}' on ",))
    # the victim's log tail is in the message (the simulator / gateway wrote it at start-up)
    run_dir, _ = record_of(cli)
    assert "last lines" in state["message"] and kill.victim in state["message"], state["message"]
    assert _log_tail(run_dir, kill.victim) in state["message"], state["message"]
    report(f"kill -9 {kill.victim} during {kill.phase} ({kill.scheduler})", f"test_kills.py::test_kill9_of_a_critical_process[{kill.id}]", detected, teardown_seconds(watch))


def _names_death(event: dict[str, Any], victim: str) -> bool:
    if event.get("event") == "process_died":
        return event.get("name") == victim
    if event.get("event") in ("task_result", "run_error"):
        text = str(event.get("message") or (event.get("result") or {}).get("msg") or "")
        return f"'{victim}' on " in text and "died" in text
    return False


def _log_tail(run_dir: Any, victim: str) -> str:
    """The last non-empty line of the victim's own log in the run record."""
    logs = [p for p in run_dir.rglob(f"{victim}.process.log")]
    assert logs, f"no log of {victim} under {run_dir}"
    lines = [line for line in logs[0].read_text().splitlines() if line.strip()]
    assert lines, f"{logs[0]} is empty"
    return lines[-1].strip()


def test_kill9_of_the_benchmark_client(cli: Cli) -> None:
    stack = Stack(cli, "slurm", {"bench_seconds": 30})
    watch = stack.start()
    try:
        watch.task_started("run the benchmark")
        time.sleep(1.0)
        killed = kill9(stack, "client")
        at, event = watch.wait_for(lambda e: e.get("event") == "task_result" and e.get("task") == "run the benchmark", timeout=30)
        run = watch.finish(timeout=90)
    finally:
        watch.finish_quietly()
    detected = at - killed
    assert event["status"] == "failed" and detected < DETECT_S["slurm"], (detected, event)
    state = check_outcome(stack, watch, run, rc=1, status="failed", says=("run the benchmark",))
    # what it printed before it died is shown (its stdout), and the record names the task
    assert f"benchmark {cli.marker} against" in str(event["result"]), event
    assert "task 'run the benchmark' on " in state["message"], state
    report("kill -9 benchmark client during benchmark (slurm)", "test_kills.py::test_kill9_of_the_benchmark_client", detected, teardown_seconds(watch))


def test_kill9_of_the_telemetry_sidecar_is_a_warning(cli: Cli) -> None:
    stack = Stack(cli, "slurm", {"bench_seconds": 4})
    watch = stack.start()
    try:
        watch.task_started("run the benchmark")
        killed = kill9(stack, "node-exporter")
        at, event = watch.wait_for(lambda e: e.get("event") == "warning" and "node-exporter" in e.get("message", ""), timeout=30)
        run = watch.finish(timeout=90)
    finally:
        watch.finish_quietly()
    detected = at - killed
    assert detected < DETECT_S["slurm"], detected
    assert "(not critical) exited; the run goes on" in event["message"]
    # the run went on: the benchmark completed, the run is ok, teardown found it gone
    state = check_outcome(stack, watch, run, rc=0, status="ok")
    bench = run.results("run the benchmark")
    assert len(bench) == 1 and next(iter(bench.values()))["_status"] == "changed", bench
    steps = {e["label"]: e.get("detail") for e in run.events() if e["event"] == "teardown_step"}
    assert any(label.startswith("stop node-exporter@") and detail == "had already exited" for label, detail in steps.items()), steps
    assert state["message"] is None
    report("kill -9 telemetry sidecar during benchmark (slurm, not critical)", "test_kills.py::test_kill9_of_the_telemetry_sidecar_is_a_warning", detected, teardown_seconds(watch))
