"""``smlplay logs RUN -f``: follow every log of a run, each line prefixed by its source.

Like ``tail -F`` over many files (or ``docker compose logs -f``): logs that appear while
the run goes on (a worker started later) are picked up on the next poll, partial lines
wait for their newline, and following stops when the run's engine is gone.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from engine.runlogs import task_logs
from engine.runs import RunRecord


@dataclass(frozen=True)
class LogLine:
    source: str  # ``name@host`` for a process's log, ``host/task`` for a task's
    path: str  # relative to the run directory when inside it
    line: str

    def to_dict(self) -> dict[str, str]:
        return {"source": self.source, "path": self.path, "line": self.line}


def _labels(record: RunRecord) -> dict[Path, str]:
    """The process each recorded process log belongs to (``name@host``)."""
    out = {}
    for proc in record.state.get("processes", []):
        log = Path(str(proc.get("log", "")))
        out[log if log.is_absolute() else record.path / log] = f"{proc['name']}@{proc['host']}"
    return out


def source_of(path: Path, labels: dict[Path, str]) -> str:
    if path in labels:
        return labels[path]
    name = path.name
    host = path.parent.name
    if name.endswith(".process.log"):
        return f"{name.removesuffix('.process.log')}@{host}"
    return f"{host}/{name.removesuffix('.log')}"


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


@dataclass
class Follower:
    """Reads what is new in a run's logs since the last :meth:`poll`."""

    record: RunRecord
    task: str | None = None
    offsets: dict[Path, int] = field(default_factory=dict)
    partial: dict[Path, str] = field(default_factory=dict)

    def paths(self) -> list[Path]:
        found = set(task_logs(self.record, self.task))
        if self.task is None:  # process logs kept outside the run directory (a shared path)
            found |= {p for p in _labels(self.record) if p.exists()}
        return sorted(found)

    def poll(self, *, final: bool = False) -> Iterator[LogLine]:
        self.record = RunRecord.open(str(self.record.path))  # processes started since
        labels = _labels(self.record)
        for path in self.paths():
            try:
                size = os.path.getsize(path)
            except OSError:
                continue
            start = self.offsets.get(path, 0)
            if size < start:  # truncated or replaced: read it again from the start
                start = 0
            if size == start and not (final and self.partial.get(path)):
                continue
            with open(path, "rb") as f:
                f.seek(start)
                data = f.read(size - start)
            self.offsets[path] = start + len(data)
            text = self.partial.pop(path, "") + data.decode("utf-8", "replace")
            lines = text.split("\n")
            rest = lines.pop()  # after the last newline: a line still being written
            if rest and not final:
                self.partial[path] = rest
            elif rest:
                lines.append(rest)
            source, rel = source_of(path, labels), _relative(path, self.record.path)
            for line in lines:
                yield LogLine(source, rel, line)


def follow_run(
    record: RunRecord,
    emit: Callable[[LogLine], None],
    *,
    task: str | None = None,
    interval: float = 0.5,
    running: Callable[[], bool] | None = None,
) -> None:
    """Print what is there, then what comes, until the run's engine is gone."""
    follower = Follower(record, task)

    def still_running() -> bool:
        """The engine runs, or it left processes running (--keep-running) that still do."""
        from engine.runstatus import process_rows

        now = RunRecord.open(str(record.path))
        # a process this machine cannot check ("recorded") may run: follow until `down`
        return now.owner_alive() or (now.status == "kept-running" and any(r.state != "exited" for r in process_rows(now)))

    alive = running or still_running
    for line in follower.poll():
        emit(line)
    while alive():
        time.sleep(interval)
        for line in follower.poll():
            emit(line)
    for line in follower.poll(final=True):
        emit(line)
