"""Driving one run of ``playbooks/stack.yaml`` under a fault, and checking what it left.

A :class:`Stack` is one run's inputs (free ports, scheduler, delays); :meth:`Stack.start`
runs ``smlplay run --output json`` in the background and returns a :class:`Watch`, which
reads its events on a thread and stamps each with the time it arrived, so a test can say
"the engine reported the death 0.8 s after the kill" from what the user saw, not from the
engine's own clock. :func:`check_outcome` holds the assertions every fault shares.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.cluster.conftest import (
    LOCAL_SLURM_INVENTORY,
    Cli,
    EngineRun,
    Proc,
    free_ports,
    processes,
)

PLAYBOOK = Path(__file__).resolve().parent / "playbooks" / "stack.yaml"
PORT_NAMES = ("prefill", "bootstrap", "decode", "router", "metrics", "telemetry")

Event = dict[str, Any]

#: How each process of the stack is recognised among this machine's processes (the server
#: itself, not the srun client or the shell that carries it); all carry the test's marker.
VICTIMS: dict[str, Callable[[list[str]], bool]] = {
    "prefill-0": lambda a: a[1:3] == ["-m", "engine.sim"] and "prefill" in a,
    "decode-0": lambda a: a[1:3] == ["-m", "engine.sim"] and "decode" in a,
    "router": lambda a: a[0] == "smg::router",
    "node-exporter": lambda a: a[0].endswith("prometheus-node-exporter"),
    "client": lambda a: len(a) > 1 and a[1].endswith("client.py"),
}

#: The task that starts (or runs) each of them.
TASKS = {
    "prefill-0": "start the prefill worker",
    "decode-0": "start the decode worker",
    "router": "start the router",
    "node-exporter": "start the telemetry sidecar",
    "client": "run the benchmark",
}


@dataclass
class Stack:
    """The inputs of one run of the stack playbook."""

    cli: Cli
    scheduler: str = "slurm"
    extra: dict[str, Any] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=lambda: dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES)), strict=True)))

    @property
    def inventory(self) -> Path:
        if self.scheduler == "slurm":
            return LOCAL_SLURM_INVENTORY
        return self.cli.inventory({"login": {"connection": "local"}}, name="local-inventory.yaml")

    def vars(self) -> dict[str, Any]:
        return {"ports": self.ports, "scheduler": self.scheduler, **self.extra}

    def start(self, *args: str) -> Watch:
        bg = self.cli.popen(PLAYBOOK, *args, inventory=self.inventory, extra_vars=self.vars())
        return Watch(self.cli, bg.argv, bg.proc, bg.stderr)

    def run(self, *args: str, timeout: float = 120) -> EngineRun:
        return self.cli.run(PLAYBOOK, *args, inventory=self.inventory, extra_vars=self.vars(), timeout=timeout)

    def listening(self) -> list[int]:
        """The stack's ports something still listens on (at 127.0.0.1, where every node is)."""
        busy = []
        for port in self.ports.values():
            with socket.socket() as s:
                s.settimeout(1.0)
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    busy.append(port)
        return busy


class Watch:
    """A ``smlplay run --output json`` in flight: its events, each with its arrival time."""

    def __init__(self, cli: Cli, argv: list[str], proc: subprocess.Popen[str], stderr: Path) -> None:
        self.cli = cli
        self.argv = argv
        self.proc = proc
        self.stderr = stderr
        self.started = time.monotonic()
        self.lines: list[str] = []
        self.events: list[tuple[float, Event]] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            now = time.monotonic()
            with self._cond:
                self.lines.append(line)
                if line.startswith("{"):
                    event = json.loads(line)
                    self.events.append((now, event))
                    if event.get("event") == "health_progress" or "submitted job" in line:
                        import re

                        self.cli.job_ids.update(re.findall(r"submitted job (\d+)", line))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[Event], bool], timeout: float = 60.0) -> tuple[float, Event]:
        """The first event (arrival time, event) that matches, waiting for it if need be."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for at, event in self.events[seen:]:
                    if predicate(event):
                        return at, event
                seen = len(self.events)
                left = deadline - time.monotonic()
                if left <= 0 or (not self._reader.is_alive() and seen == len(self.events)):
                    break
                self._cond.wait(min(left, 0.2))
        raise AssertionError(f"no such event within {timeout}s (rc={self.proc.poll()}); output so far:\n{''.join(self.lines)[-5000:]}\n{self.stderr.read_text()[-2000:]}")

    def task_started(self, task: str, timeout: float = 60.0) -> float:
        return self.wait_for(lambda e: e.get("event") == "task_start" and e.get("task") == task, timeout)[0]

    def health_waiting(self, task: str, timeout: float = 60.0) -> float:
        return self.wait_for(lambda e: e.get("event") == "health_progress" and e.get("task") == task, timeout)[0]

    def after(self, at: float, predicate: Callable[[Event], bool]) -> tuple[float, Event] | None:
        with self._cond:
            return next(((t, e) for t, e in self.events if t >= at and predicate(e)), None)

    def signal(self, signum: int) -> float:
        self.proc.send_signal(signum)
        return time.monotonic()

    def finish(self, timeout: float = 90.0) -> EngineRun:
        try:
            self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=10)
        ended = time.monotonic()
        self.ended = ended
        run = EngineRun(self.argv, int(self.proc.returncode), "".join(self.lines), self.stderr.read_text(), ended - self.started)
        self.cli.job_ids.update(run.job_ids)
        return run

    def finish_quietly(self) -> None:
        """For a ``finally:``: give a run that is still going its SIGINT and time to tear down."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def listener_pids(port: int) -> set[int]:
    """Processes with a socket listening on ``port`` (any address), from /proc."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in inodes for fd in (entry / "fd").iterdir()):
                pids.add(int(entry.name))
        except OSError:
            continue
    return pids


def find_victim(cli: Cli, name: str, timeout: float = 20.0, *, port: int | None = None) -> Proc:
    """The live process of the stack called ``name`` (see :data:`VICTIMS`); by the port it
    listens on when given (smg renames its process to ``smg::router``: no marker to see)."""
    match = VICTIMS[name]
    deadline = time.monotonic() + timeout
    while True:
        if port is not None:
            pids = listener_pids(port)
            found = [p for p in processes() if p.pid in pids]
        else:
            found = [p for p in processes() if cli.marker in p.cmdline and match(p.cmdline.split())]
        if len(found) == 1:
            return found[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"expected one {name} process of {cli.marker}, found {found}")
        time.sleep(0.05)


def kill9(stack: Stack, name: str) -> float:
    """SIGKILL the stack's ``name`` process; the monotonic time of the kill."""
    victim = find_victim(stack.cli, name, port=stack.ports["router"] if name == "router" else None)
    os.kill(victim.pid, signal.SIGKILL)
    return time.monotonic()


# ------------------------------------------------------------------------------ checks


def teardown_seconds(watch: Watch) -> float:
    start = watch.after(0, lambda e: e.get("event") == "teardown_start")
    assert start is not None, "the teardown never started:\n" + "".join(watch.lines)[-4000:]
    return watch.ended - start[0]


def record_of(cli: Cli) -> tuple[Path, dict[str, Any]]:
    run_dir = cli.last_run_dir()
    return run_dir, json.loads((run_dir / "state.json").read_text())


def check_outcome(
    stack: Stack,
    watch: Watch,
    run: EngineRun,
    *,
    rc: int,
    status: str,
    says: tuple[str, ...] = (),
) -> dict[str, Any]:
    """What every fault must end with: the exit code, the output naming what happened,
    the teardown run (release of the allocation included), nothing listening on the
    stack's ports, and a run record that says what happened and holds nothing pending.
    Jobs, steps and processes of the run are checked by the ``cli`` fixture afterwards."""
    assert run.rc == rc, str(run)
    assert "Traceback" not in run.output, str(run)
    for text in says:
        assert text in run.output, f"{text!r} not in the output:\n{run}"
    events = [e for _, e in watch.events]
    steps = [e for e in events if e["event"] == "teardown_step"]
    assert steps and all(s["status"] == "ok" for s in steps), steps
    if stack.scheduler == "slurm":
        (job,) = {j for j in run.job_ids}
        assert steps[-1]["label"] == f"release the allocation (scancel {job})", steps
    left = stack.cli.wait_for_no_leftovers(timeout=15)
    assert not left, left
    assert stack.listening() == [], f"still listening: {stack.listening()}"
    _, state = record_of(stack.cli)
    assert state["status"] == status, state
    assert state["processes"] == [] and state["teardown"] == [], state
    return state


def report(fault: str, test: str, detected: float | None, teardown: float | None) -> None:
    """Print the figures of one case (``-s``) and append them to ``$SMLPLAY_FAULT_FIGURES``
    (JSON lines) when set: docs/reliability.md's table is made from them."""
    row = {"fault": fault, "test": test, "detected_s": None if detected is None else round(detected, 2), "teardown_s": None if teardown is None else round(teardown, 2), "left": 0}
    print(f"\nFAULT {json.dumps(row)}")
    path = os.environ.get("SMLPLAY_FAULT_FIGURES")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
