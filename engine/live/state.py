"""What the compact view knows about a run, folded from the executor's events.

No output here: :class:`RunView` turns events into state (plays, hosts, waits) and into
:class:`Note` items, the lines that stay on screen (a finished play, a failure, a warning).
The terminal view (:mod:`engine.live.terminal`) draws the state as a live region and prints
the notes above it; the plain view (:mod:`engine.live.plain`) prints the notes only.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_WAITING = re.compile(r"^waiting (?P<elapsed>\S+) / (?P<timeout>\S+): (?P<detail>.*)$", re.S)  # health
_QUEUED = re.compile(r", waited \d+s of (?P<timeout>[0-9hms.]+)")  # an allocation's progress


@dataclass
class Wait:
    """A long wait on one host: a health check or an allocation in the queue."""

    what: str  # "health" or "wait" (progress of a long action: an allocation)
    started: float
    timeout: float | None = None
    last: str = ""  # the last probe result / progress message

    def remaining(self, now: float) -> float | None:
        return None if self.timeout is None else max(0.0, self.started + self.timeout - now)


@dataclass
class HostRow:
    """One host in the current play."""

    name: str
    started: float
    finished: float | None = None  # time of its last result in the play
    state: str = "running"  # running | ok | failed | unreachable
    task: str = ""
    results: int = 0  # results that were not skipped
    busy: bool = False  # running a task now (else waiting for the other hosts, or done)
    wait: Wait | None = None

    def elapsed(self, now: float) -> float:
        return (now if self.busy else self.finished or self.started) - self.started


@dataclass
class PlayView:
    name: str
    started: float
    hosts: dict[str, HostRow] = field(default_factory=dict)
    task: str = ""
    notes: list[tuple[str, str]] = field(default_factory=list)  # (host, debug message)
    ended: float | None = None

    @property
    def failed(self) -> bool:
        return any(h.state in ("failed", "unreachable") for h in self.hosts.values())


@dataclass(frozen=True)
class Note:
    """A line (or block) that stays: ``kind`` picks its style."""

    kind: str  # header | play | output | failure | warning | info | recap | summary
    text: str
    play: PlayView | None = None


@dataclass
class Teardown:
    total: int
    started: float
    done: int = 0
    failed: int = 0
    current: str = ""
    steps: list[str] = field(default_factory=list)  # listed when the run did not end ok


@dataclass
class RunView:
    """The run as the compact view sees it. ``apply`` returns the notes an event makes."""

    verbosity: int = 0
    clock: Callable[[], float] = time.monotonic
    run_id: str = ""
    run_dir: str = ""
    play: PlayView | None = None
    teardown: Teardown | None = None
    plays: list[PlayView] = field(default_factory=list)

    def apply(self, kind: str, data: dict[str, Any]) -> list[Note]:
        handler = getattr(self, f"_on_{kind}", None)
        return list(handler(**data) or ()) if handler is not None else []

    # --- plays and tasks ---------------------------------------------------------------
    def _on_run_start(self, run_id: str, run_dir: str, playbook: str, **_: Any) -> list[Note]:
        self.run_id, self.run_dir = run_id, run_dir
        return [Note("header", f"run {run_id} ({playbook}) -> {run_dir}")]

    def _on_play_start(self, play: str, hosts: list[str], **_: Any) -> list[Note]:
        notes = self._end_play()
        now = self.clock()
        self.play = PlayView(play, now, {h: HostRow(h, now) for h in hosts})
        self.plays.append(self.play)
        return notes

    def _on_task_start(self, task: str, hosts: list[str] | None = None, **_: Any) -> None:
        if self.play is None:
            return
        self.play.task = task
        for host in hosts or []:
            row = self._row(host)
            row.task, row.wait, row.busy = task, None, True

    def _on_task_result(self, task: str, host: str, status: str, ignored: bool = False, result: dict[str, Any] | None = None, action: str | None = None, **_: Any) -> list[Note]:
        result = result or {}
        row = self._row(host)
        row.wait, row.busy = None, False
        if status != "skipped":
            row.finished, row.results = self.clock(), row.results + 1
        if status in ("failed", "unreachable") and not ignored:
            row.state = status
        if status == "unreachable":
            return [Note("failure", f"fatal: [{host}]: UNREACHABLE! => {result.get('msg')}")]
        if status == "failed":
            # (the row's task is the name as rendered at task_start; results carry the raw one)
            return [Note("warning" if ignored else "failure", _failure_text(row.task or task, host, result, ignored))]
        if action == "debug" and status != "skipped" and self.play is not None:
            self.play.notes.append((host, str(result.get("msg", ""))))
        return []

    def _on_health_start(self, task: str, host: str, probes: list[str] | None = None, timeout: float | None = None, **_: Any) -> None:
        row = self._row(host)
        row.wait = Wait("health", self.clock(), timeout, (probes or [""])[0])

    def _on_health_progress(self, task: str, host: str, message: str, **_: Any) -> list[Note]:
        row = self._row(host)
        match = _WAITING.match(message)
        if row.wait is None:
            row.wait = Wait("wait", self.clock())
        if match:
            row.wait.last = match["detail"]
            if row.wait.timeout is None:
                row.wait.timeout = _seconds(match["timeout"])
        elif queued := _QUEUED.search(message):  # the countdown shows the wait: drop it here
            row.wait.last = message[: queued.start()] + message[queued.end() :]
            if row.wait.timeout is None:
                row.wait.timeout = _seconds(queued["timeout"])
        else:
            row.wait.last = message
            if ", waited " not in message:  # a milestone, not a tick ("submitted job 7"): it stays
                return [Note("info", f"  [{host}] {message}")]
        return []

    def _on_retry(self, task: str, host: str, retries_left: int, **_: Any) -> list[Note]:
        return [Note("warning", f"FAILED - RETRYING: [{host}]: {task} ({retries_left} retries left).")]

    def _on_warning(self, message: str, **_: Any) -> list[Note]:
        return [Note("warning", f"[WARNING]: {message}")]

    def _on_process_died(self, host: str, name: str, log: str, tail: str, **_: Any) -> list[Note]:
        return [Note("failure", f"CRITICAL PROCESS DIED: '{name}' on {host} (log {log})\n{_indent(tail)}")]

    def _on_run_error(self, message: str, **_: Any) -> list[Note]:
        return [Note("failure", f"ERROR: {message}")]

    def _on_interrupt(self, signal: str, message: str, **_: Any) -> list[Note]:
        return [Note("warning", f"[{signal}] {message}")]

    def _on_holding(self, message: str, **_: Any) -> list[Note]:
        return [*self._end_play(), Note("info", message)]

    def _on_detached(self, message: str, **_: Any) -> list[Note]:
        return [Note("info", message)]

    # --- teardown and the end ----------------------------------------------------------
    def _on_teardown_start(self, entries: int, **_: Any) -> list[Note]:
        notes = self._end_play()
        self.teardown = Teardown(entries, self.clock())
        return notes

    def _on_teardown_step(self, tier: int, label: str, status: str, detail: str, **_: Any) -> list[Note]:
        td = self.teardown or Teardown(0, self.clock())
        self.teardown = td
        td.done += 1
        td.current = label
        td.steps.append(f"  {status}: tier {tier}: {label} ({detail})")
        if status != "ok":
            td.failed += 1
            return [Note("failure", f"teardown failed: tier {tier}: {label} ({detail})")]
        return []

    def _on_teardown_aborted(self, left: list[str], message: str, **_: Any) -> list[Note]:
        return [Note("warning", f"[WARNING]: {message}")]

    def _on_recap(self, recap: dict[str, dict[str, int]], run_dir: str, status: str, **_: Any) -> list[Note]:
        from engine.executor.context import STATS

        notes = self._end_play()
        if self.teardown is not None:
            td, self.teardown = self.teardown, None
            took = self.clock() - td.started
            failed = f", {td.failed} failed" if td.failed else ""
            head = f"teardown: {td.done} step{'s' if td.done != 1 else ''} in {took:.1f}s{failed}"
            # after a failure or Ctrl-C, say what was stopped and released (a success: count)
            notes.append(Note("summary", "\n".join([head, *td.steps]) if status != "ok" else head))
        width = max((len(h) for h in recap), default=0)
        lines = ["PLAY RECAP"]
        for host, stats in recap.items():
            lines.append(f"{host:<{width}} : " + "  ".join(f"{col}={stats.get(col, 0)}" for col in STATS))
        notes.append(Note("recap", "\n".join(lines)))
        notes.append(Note("summary", f"run directory: {run_dir}  status: {status}"))
        return notes

    def _on_down_signal(self, run_id: str, pid: int | None = None, job_id: str | None = None, **_: Any) -> list[Note]:
        owner = f"job {job_id}" if job_id else f"pid {pid}"
        return [Note("info", f"run {run_id} is still running ({owner}); asked it to stop and tear down")]

    def _on_down_done(self, run_id: str, status: str, problems: list[str] | None = None, **_: Any) -> list[Note]:
        return [Note("info", "\n".join([f"run {run_id}: {status}", *(f"  {p}" for p in problems or [])]))]

    # --- helpers -----------------------------------------------------------------------
    def _row(self, host: str) -> HostRow:
        if self.play is None:  # an event outside any play (teardown handlers): a scratch play
            self.play = PlayView("", self.clock())
        row = self.play.hosts.get(host)
        if row is None:
            row = self.play.hosts[host] = HostRow(host, self.clock())
        return row

    def _end_play(self) -> list[Note]:
        play, self.play = self.play, None
        if play is None or not play.name:
            return []
        play.ended = self.clock()
        for row in play.hosts.values():
            row.wait, row.busy = None, False
            if row.state == "running":
                row.state = "ok"
        notes = [Note("play", play.name, play)]
        messages = _dedupe(play.notes)
        if messages:
            notes.append(Note("output", "\n".join(_indent(m) for m in messages), play))
        return notes


def _failure_text(task: str, host: str, result: dict[str, Any], ignored: bool) -> str:
    lines = [f"fatal: [{host}]: FAILED! => {result.get('msg') or 'failed'}", f"  task: {task}"]
    for key in ("stdout", "stderr"):
        if result.get(key):
            lines.append(f"  {key}:\n" + _indent(str(result[key])[-4000:]))
    if ignored:
        lines.append("...ignoring")
    return "\n".join(lines)


def _dedupe(notes: list[tuple[str, str]]) -> list[str]:
    """One line per distinct message; the host is named when the hosts disagree."""
    distinct = list(dict.fromkeys(msg for _, msg in notes))
    if len(distinct) <= 1:
        return distinct
    return [f"{host}: {msg}" for host, msg in notes]


def _seconds(text: str) -> float | None:
    from engine.errors import ValidationError
    from engine.units import parse_duration

    try:
        return parse_duration(text, what="health timeout")
    except ValidationError:  # a format this view does not know: no countdown, the rest shows
        return None


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in str(text).splitlines())
