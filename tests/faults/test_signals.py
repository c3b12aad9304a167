"""Signals to the engine: SIGINT (Ctrl-C) while the allocation waits in the queue, during
bring-up and during the benchmark; SIGTERM; a second SIGINT during teardown (abort, list
what may remain, and `smlplay down` finishes it); the engine SIGKILLed, then `smlplay down`.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from engine.executor.run import SECOND_SIGNAL_WINDOW
from tests.cluster.conftest import Cli, hold_nodes
from tests.faults.harness import Stack, check_outcome, record_of, report, teardown_seconds

pytestmark = pytest.mark.cluster

#: From the signal to the ``interrupt`` event, and from there to the end of the run.
INTERRUPT_S = 2.0


@pytest.mark.parametrize(
    ("sig", "phase", "scheduler"),
    [
        (signal.SIGINT, "bring-up", "slurm"),
        (signal.SIGINT, "benchmark", "slurm"),
        (signal.SIGTERM, "benchmark", "slurm"),
        (signal.SIGINT, "benchmark", "local"),
    ],
    ids=["sigint-bring-up-slurm", "sigint-benchmark-slurm", "sigterm-benchmark-slurm", "sigint-benchmark-local"],
)
def test_signal_stops_the_run_and_tears_down(cli: Cli, sig: signal.Signals, phase: str, scheduler: str) -> None:
    stack = Stack(cli, scheduler, {"bench_seconds": 30, "prefill_delay": 30 if phase == "bring-up" else 0})
    watch = stack.start()
    try:
        if phase == "bring-up":
            watch.health_waiting("start the prefill worker")
        else:
            watch.task_started("run the benchmark")
            time.sleep(1.0)
        sent = watch.signal(sig)
        at, _ = watch.wait_for(lambda e: e.get("event") == "interrupt", timeout=10)
        run = watch.finish(timeout=60)
    finally:
        watch.finish_quietly()
    assert at - sent < INTERRUPT_S, at - sent
    state = check_outcome(stack, watch, run, rc=130, status="interrupted")
    assert state["message"] == f"interrupted by {sig.name}", state
    report(f"{sig.name} during {phase} ({scheduler})", f"test_signals.py::test_signal_stops_the_run_and_tears_down[{sig.name.lower()}-{phase}-{scheduler}]", at - sent, teardown_seconds(watch))


def test_sigint_while_the_allocation_is_pending(cli: Cli) -> None:
    holder = hold_nodes(cli, 3)  # of 4: the stack's 2 nodes cannot start
    stack = Stack(cli, "slurm", {"alloc_timeout": "120s"})
    watch = stack.start()
    try:
        watch.wait_for(lambda e: e.get("event") == "health_progress" and "PENDING" in e.get("message", ""))
        sent = watch.signal(signal.SIGINT)
        at, _ = watch.wait_for(lambda e: e.get("event") == "interrupt", timeout=10)
        run = watch.finish(timeout=60)
    finally:
        watch.finish_quietly()
        subprocess.run(["scancel", holder], check=False)
    assert at - sent < INTERRUPT_S
    state = check_outcome(stack, watch, run, rc=130, status="interrupted")
    assert state["message"] == "interrupted by SIGINT"
    report("SIGINT during the allocation wait (PENDING)", "test_signals.py::test_sigint_while_the_allocation_is_pending", at - sent, teardown_seconds(watch))


def test_second_sigint_aborts_the_teardown_and_down_finishes_it(cli: Cli) -> None:
    stack = Stack(cli, "slurm", {"bench_seconds": 30})
    watch = stack.start()
    try:
        watch.task_started("run the benchmark")
        first = watch.signal(signal.SIGINT)
        began, _ = watch.wait_for(lambda e: e.get("event") == "teardown_start", timeout=20)
        sent = watch.signal(signal.SIGINT)
        at, answer = watch.wait_for(_abort_or_rearm, timeout=10)
        if answer["event"] == "interrupt":
            # Only a second Ctrl-C within SECOND_SIGNAL_WINDOW of the first aborts (a late one
            # re-arms the window: no accidental abort). On a loaded machine the benchmark's
            # srun step can take longer than that to stop before the teardown begins.
            assert sent - first > SECOND_SIGNAL_WINDOW and "teardown in progress" in answer["message"], (began - first, answer)
            sent = watch.signal(signal.SIGINT)
            at, answer = watch.wait_for(lambda e: e.get("event") == "teardown_aborted", timeout=10)
        aborted = answer
        run = watch.finish(timeout=30)
    finally:
        watch.finish_quietly()
    assert at - sent < INTERRUPT_S
    assert run.rc == 130, str(run)
    run_dir, state = record_of(cli)
    # it says what may remain and how to finish, and the record still holds exactly that
    assert f"smlplay down {run_dir.name}" in aborted["message"], aborted
    assert aborted["left"] and set(aborted["left"]) == {e["label"] for e in state["teardown"]}, (aborted, state["teardown"])
    assert any(label.startswith("release the allocation") for label in aborted["left"])
    assert state["status"] == "interrupted"
    started = time.monotonic()
    down = cli.smlplay("down", run_dir.name, timeout=120)
    assert down.rc == 0 and "Traceback" not in down.output, str(down)
    left = cli.wait_for_no_leftovers(timeout=15)
    assert not left, left
    assert stack.listening() == []
    _, state = record_of(cli)
    assert state["status"] == "down" and state["teardown"] == [] and state["processes"] == [], state
    report("second SIGINT during teardown, then `smlplay down`", "test_signals.py::test_second_sigint_aborts_the_teardown_and_down_finishes_it", at - sent, time.monotonic() - started)


def _abort_or_rearm(event: dict[str, object]) -> bool:
    return event.get("event") == "teardown_aborted" or (event.get("event") == "interrupt" and "teardown in progress" in str(event.get("message")))


def test_engine_sigkilled_then_down_leaves_nothing_and_down_twice_says_so(cli: Cli) -> None:
    stack = Stack(cli, "slurm", {"bench_seconds": 30})
    watch = stack.start()
    try:
        watch.task_started("run the benchmark")
        watch.proc.kill()  # SIGKILL: no handler, no teardown, the record is all that is left
        watch.finish(timeout=10)
    finally:
        watch.finish_quietly()
    run_dir, state = record_of(cli)
    assert state["status"] == "running" and state["teardown"], state  # what the crash left
    assert cli.leftovers(), "a SIGKILLed engine should leave its stack running until down"
    started = time.monotonic()
    down = cli.smlplay("down", run_dir.name, timeout=120)
    took = time.monotonic() - started
    assert down.rc == 0 and "Traceback" not in down.output, str(down)
    assert "stop prefill-0@" in down.stdout and "release the allocation" in down.stdout, down.stdout
    left = cli.wait_for_no_leftovers(timeout=15)
    assert not left, left
    assert stack.listening() == []
    _, state = record_of(cli)
    assert state["status"] == "down" and state["teardown"] == [] and state["processes"] == [], json.dumps(state)[:2000]
    again = cli.smlplay("down", run_dir.name)
    assert again.rc == 0 and "nothing to do" in again.stdout, str(again)
    assert "stop " not in again.stdout and "release" not in again.stdout
    report("engine SIGKILLed, then `smlplay down` (twice)", "test_signals.py::test_engine_sigkilled_then_down_leaves_nothing_and_down_twice_says_so", None, took)
