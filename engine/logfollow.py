"""``smlplay logs RUN -f``: follow every log of a run, each line prefixed by its source.

Like ``tail -F`` over many files (or ``docker compose logs -f``): logs that appear while
the run goes on (a worker started later) are picked up on the next poll, partial lines
wait for their newline, and following stops when the run's engine is gone.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from engine.remotelogs import RemoteLog, RemoteReader, remote_logs
from engine.runlogs import result_logs, task_logs
from engine.runs import RunRecord


@dataclass(frozen=True)
class LogLine:
    source: str  # ``name@host`` for a process's log, ``host/task`` for a task's
    path: str  # relative to the run directory when inside it
    line: str

    def to_dict(self) -> dict[str, str]:
        return {"source": self.source, "path": self.path, "line": self.line}


def _absolute(path: str, root: Path) -> Path:
    """A recorded log path: relative ones are inside the run directory; ``~/`` is the
    home of the host that writes it, so it stays as it is."""
    p = Path(path)
    return p if p.is_absolute() or path.startswith("~") else root / p


def _labels(record: RunRecord) -> dict[Path, str]:
    """The process each recorded process log belongs to (``name@host``)."""
    return {_absolute(str(proc.get("log", "")), record.path): f"{proc['name']}@{proc['host']}" for proc in record.state.get("processes", [])}


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
    """Reads what is new in a run's logs since the last :meth:`poll`: the files on this
    machine directly, those of SSH hosts and srun nodes through their hosts
    (:mod:`engine.remotelogs`)."""

    record: RunRecord
    task: str | None = None
    offsets: dict[Hashable, int] = field(default_factory=dict)
    partial: dict[Hashable, str] = field(default_factory=dict)
    reader: RemoteReader | None = None

    def paths(self, remote: list[RemoteLog] | None = None) -> list[Path]:
        """The logs read on this machine (``remote``: :meth:`remote`, when already known)."""
        found = set(task_logs(self.record, self.task))
        if self.task is None:  # process logs kept outside the run directory (a shared path)
            found |= {p for p in _labels(self.record) if p.exists()}
        elsewhere = {_absolute(r.path, self.record.path) for r in (self.remote() if remote is None else remote)}
        return sorted(found - elsewhere)  # a remote log is read where it is written

    def remote(self) -> list[RemoteLog]:
        """The process logs read through another host (all, or the matching tasks')."""
        logs = remote_logs(self.record.state)
        if self.task is not None:
            root = self.record.path
            wanted = {_absolute(log, root) for _, log in result_logs(self.record, self.task)}
            logs = [r for r in logs if _absolute(r.path, root) in wanted]
        return logs

    def errors(self) -> dict[str, str]:
        """Hosts whose logs could not be read at the last poll, and why."""
        return dict(self.reader.errors) if self.reader is not None else {}

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None

    def poll(self, *, final: bool = False) -> Iterator[LogLine]:
        self.record = RunRecord.open(str(self.record.path))  # processes started since
        labels = _labels(self.record)
        remote = self.remote()
        for path in self.paths(remote):
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
            source, rel = source_of(path, labels), _relative(path, self.record.path)
            yield from self._lines(path, start, data, source, rel, final)
        yield from self._poll_remote(remote, final)

    def _poll_remote(self, remote: list[RemoteLog], final: bool) -> Iterator[LogLine]:
        by_reader: dict[str, list[RemoteLog]] = {}
        for log in remote:
            by_reader.setdefault(log.reader, []).append(log)
        if by_reader and self.reader is None:
            self.reader = RemoteReader(self.record.state.get("hosts", {}))
        for reader, logs in sorted(by_reader.items()):
            assert self.reader is not None
            while logs:  # a log with more than one chunk waiting is read again at once
                keys = [(log.reader, log.path) for log in logs]
                chunks = self.reader.read(reader, [(log.path, self.offsets.get(key, 0)) for log, key in zip(logs, keys, strict=True)])
                more = []
                for log, key, chunk in zip(logs, keys, chunks, strict=True):
                    if chunk is None or (not chunk.data and not (final and self.partial.get(key))):
                        continue
                    rel = _relative(_absolute(log.path, self.record.path), self.record.path)
                    yield from self._lines(key, chunk.start, chunk.data, log.source, rel, final and chunk.start + len(chunk.data) >= chunk.size)
                    if final and chunk.start + len(chunk.data) < chunk.size:
                        more.append(log)
                logs = more

    def _lines(self, key: Hashable, start: int, data: bytes, source: str, rel: str, final: bool) -> Iterator[LogLine]:
        self.offsets[key] = start + len(data)
        text = self.partial.pop(key, "") + data.decode("utf-8", "replace")
        lines = text.split("\n")
        rest = lines.pop()  # after the last newline: a line still being written
        if rest and not final:
            self.partial[key] = rest
        elif rest:
            lines.append(rest)
        for line in lines:
            yield LogLine(source, rel, line)


def follow_run(
    record: RunRecord,
    emit: Callable[[LogLine], None],
    *,
    task: str | None = None,
    interval: float = 0.5,
    running: Callable[[], bool] | None = None,
) -> dict[str, str]:
    """Print what is there, then what comes, until the run's engine is gone. Returns the
    hosts whose logs could not be read at the end, and why."""
    follower = Follower(record, task)

    def still_running() -> bool:
        """The engine runs, or it left processes running (--keep-running) that still do."""
        from engine.runstatus import process_rows

        now = RunRecord.open(str(record.path))
        # a process this machine cannot check ("recorded") may run: follow until `down`
        return now.owner_alive() or (now.status == "kept-running" and any(r.state != "exited" for r in process_rows(now)))

    alive = running or still_running
    try:
        for line in follower.poll():
            emit(line)
        while alive():
            time.sleep(interval)
            for line in follower.poll():
                emit(line)
        for line in follower.poll(final=True):
            emit(line)
        return follower.errors()
    finally:
        follower.close()
