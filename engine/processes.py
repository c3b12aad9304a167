"""The registry of background processes, and the monitor that watches critical ones.

Every ``process`` action records what it started (host, pid or Slurm step, log, critical,
teardown tier). The monitor thread polls critical processes; the first death sets
:attr:`ProcessRegistry.failure`, which waits (health checks, ``wait_for``, ``pause``,
retries) observe at once and the executor checks between tasks, so a crashed server fails
the play within a second or so instead of at the end of a 60-minute deadline. A process
that is not critical (a telemetry sidecar) that exits is reported once (``on_lost``) and the
run goes on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from engine.transport.base import ProcessRecord, Transport


@dataclass(frozen=True)
class ProcessDeath:
    record: ProcessRecord
    tail: str

    def message(self) -> str:
        return (
            f"critical process '{self.record.name}' on {self.record.host} died "
            f"(log {self.record.log}); last lines:\n{self.tail}"
        )

    def warning(self) -> str:
        return (
            f"process '{self.record.name}' on {self.record.host} (not critical) exited; the run goes on "
            f"(log {self.record.log}); last lines:\n{self.tail}"
        )


def last_lines(transport: Transport, log: str, lines: int = 50, *, settle: float = 1.5) -> str:
    """The tail of a process's log just after it died. A Slurm step's output is written by
    slurmstepd, which may flush the last of it a moment after the srun client has exited:
    an empty tail is read again for up to ``settle`` seconds before it is believed."""
    deadline = time.monotonic() + settle
    while True:
        text = transport.tail(log, lines)
        if text.strip() or time.monotonic() >= deadline:
            return text or "<the log is empty>"
        time.sleep(0.1)


class ProcessRegistry:
    """Live background processes of a run, keyed by (host, name)."""

    def __init__(
        self,
        transport_for: Callable[[str], Transport],
        *,
        on_change: Callable[[], None] | None = None,
        on_lost: Callable[[ProcessDeath], None] | None = None,
    ) -> None:
        self._transport_for = transport_for
        self._on_change = on_change or (lambda: None)
        self.on_lost = on_lost  # settable: the run wires it to a warning
        #: Settable: called once, by whichever thread noticed it (the monitor, mostly), with
        #: the first death of a critical process, so the run can say so at once instead of
        #: when the task in flight (an srun step being launched over SSH) returns.
        self.on_death: Callable[[ProcessDeath], None] | None = None
        self._lost: set[tuple[str, str]] = set()
        self._procs: dict[tuple[str, str], ProcessRecord] = {}
        self._lock = threading.Lock()
        self.failure = threading.Event()
        self.death: ProcessDeath | None = None
        self._monitor: threading.Thread | None = None
        self._stop_monitor = threading.Event()

    # -- bookkeeping -----------------------------------------------------------------------
    def add(self, record: ProcessRecord) -> None:
        with self._lock:
            self._procs[(record.host, record.name)] = record
        self._on_change()

    def remove(self, host: str, name: str) -> ProcessRecord | None:
        with self._lock:
            rec = self._procs.pop((host, name), None)
        self._on_change()
        return rec

    def get(self, host: str, name: str) -> ProcessRecord | None:
        with self._lock:
            return self._procs.get((host, name))

    def all(self) -> list[ProcessRecord]:
        with self._lock:
            return list(self._procs.values())

    def alive(self, record: ProcessRecord) -> bool:
        return self._transport_for(record.host).alive(record)

    def tail(self, record: ProcessRecord, lines: int = 50) -> str:
        try:
            return last_lines(self._transport_for(record.host), record.log, lines)
        except Exception as exc:  # the log may live on a host that just went away
            return f"<log not readable: {exc}>"

    # -- monitoring ------------------------------------------------------------------------
    def check(self) -> ProcessDeath | None:
        """Look at every critical process once; record and return the first death."""
        if self.death is not None:
            return self.death
        for record in self.all():
            key = (record.host, record.name)
            if not record.critical and (self.on_lost is None or key in self._lost):
                continue
            try:
                alive = self.alive(record)
            except Exception:
                continue  # transport trouble is reported by the tasks themselves
            if alive:
                continue
            if not record.critical:
                with self._lock:
                    if key in self._lost:
                        continue
                    self._lost.add(key)
                if self.on_lost is not None:
                    self.on_lost(ProcessDeath(record, self.tail(record)))
                continue
            death = ProcessDeath(record, self.tail(record))
            with self._lock:  # two threads may see it die at once: one death, announced once
                if self.death is not None:
                    return self.death
                self.death = death
            self.failure.set()
            if self.on_death is not None:
                self.on_death(death)
            return death
        return None

    def start_monitor(self, interval: float = 0.5, *, on_death: Callable[[ProcessDeath], None] | None = None) -> None:
        """Poll every ``interval`` seconds; ``on_death`` is called (on the monitor thread)
        with the first death of a critical process, e.g. to stop foreground commands that
        would otherwise run to their end before the executor notices."""
        if self._monitor is not None:
            return

        def loop() -> None:
            while not self._stop_monitor.wait(interval):
                death = self.check()
                if death is not None:
                    if on_death is not None:
                        on_death(death)
                    return

        self._monitor = threading.Thread(target=loop, name="smlplay-monitor", daemon=True)
        self._monitor.start()

    def stop_monitor(self) -> None:
        self._stop_monitor.set()
        if self._monitor is not None:
            self._monitor.join(timeout=2)
            self._monitor = None

    def clear_failure(self) -> None:
        """Teardown stops critical processes on purpose: that is not a failure."""
        self.stop_monitor()
        self.failure.clear()
