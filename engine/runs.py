"""The run record: ``runs/<run-id>/`` holds everything needed to inspect or undo a run.

* ``playbook.yaml``  a copy of what ran
* ``plan.json``      the rendered plan (what dry-run prints)
* ``state.json``     hosts, live processes, pending teardown and handlers, status -- written
                     atomically (temp file + rename) after every change, so a crash leaves the
                     last consistent state for ``smlplay down``
* ``events.jsonl``   one JSON event per line (task start/result, handler, teardown)
* ``logs/<host>/<task>.log``  stdout/stderr of each task on each host
"""

from __future__ import annotations

import json
import os
import re
import secrets
import threading
import time
import weakref
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine import secrets as masking
from engine.errors import ValidationError

DEFAULT_RUNS_DIR = "runs"


def runs_dir() -> Path:
    return Path(os.environ.get("SMLPLAY_RUNS_DIR", DEFAULT_RUNS_DIR))


def new_run_id(playbook: Path, name: str | None = None) -> str:
    """``<stamp>-<playbook>[-<name>]-<4 hex>``; ``name`` e.g. a sweep point's parameters."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    middle = f"{slug(playbook.stem)}-{slug(name, limit=80)}" if name else slug(playbook.stem)
    return f"{stamp}-{middle}-{secrets.token_hex(2)}"


def slug(text: str, *, limit: int | None = None, empty: str = "run") -> str:
    """``text`` as a safe file or directory name (run ids, log files, plan trees)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:limit] or empty


#: A run record holds logs, rendered commands and state that may carry secrets: its
#: directories are 0700 and every file the engine writes there is 0600.
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_opener(path: str | os.PathLike[str], flags: int) -> int:
    """``open(..., opener=private_opener)``: a file the engine creates is 0600, whatever the umask."""
    return os.open(path, flags, PRIVATE_FILE_MODE)


_APPEND_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC


def open_private_append(path: str | os.PathLike[str]) -> int:
    """A raw descriptor appending to ``path`` (created 0600)."""
    return private_opener(path, _APPEND_FLAGS)


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until all of ``data`` is written (one call may write less)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def append_private(path: str | os.PathLike[str], text: str) -> None:
    """Append ``text`` to ``path`` (created 0600). Raw ``os`` calls, not ``open()``: a run
    appends to a task log per host and task, and ``open()``'s buffered text layer costs
    five more system calls each time (fstat, isatty, lseek...) than open, write, close."""
    fd = open_private_append(path)
    try:
        write_all(fd, text.encode("utf-8"))
    finally:
        os.close(fd)


# Directories private_mkdir made or found: a run asks for its host's log directory on every
# task, and checking each parent every time was a stat storm.
_MADE: set[Path] = set()


def private_mkdir(directory: Path) -> None:
    """``mkdir -p`` whose new directories are 0700 (parents too, not only the last one)."""
    if directory in _MADE:
        return
    missing = [d for d in (directory, *directory.parents) if not d.exists()]
    directory.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    for d in missing:
        os.chmod(d, PRIVATE_DIR_MODE)
    _MADE.add(directory)


def write_json_atomic(path: Path, data: Any, *, indent: int | None = 2) -> None:
    """Write ``data`` as JSON, atomically, 0600, with every secret value masked."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8", opener=private_opener) as f:
        f.write(masking.mask_text(json.dumps(data, indent=indent, sort_keys=True, default=str)))
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class RunRecord:
    """Writes and reads one run's directory. Thread-safe: tasks on many hosts log at once."""

    def __init__(self, path: Path, state: dict[str, Any] | None = None) -> None:
        self.path = path
        self.id = path.name
        self.state: dict[str, Any] = state or {}
        self._lock = threading.RLock()
        # events.jsonl stays open while the record writes events (a run writes one per task
        # and host): an open, fstat, close per event was most of its cost
        self._events_fd: int | None = None
        self._events_closer: weakref.finalize | None = None

    @classmethod
    def create(cls, playbook: Path, *, base: Path | None = None, argv: list[str] | None = None, name: str | None = None) -> RunRecord:
        base = base or runs_dir()
        run_id = new_run_id(playbook, name)
        path = base / run_id
        base.mkdir(parents=True, exist_ok=True)  # runs/ itself: the user's umask
        path.mkdir(mode=PRIVATE_DIR_MODE, exist_ok=False)
        os.chmod(path, PRIVATE_DIR_MODE)
        private_mkdir(path / "logs")
        try:
            text = playbook.read_text(encoding="utf-8")
            with open(path / "playbook.yaml", "w", encoding="utf-8", opener=private_opener) as f:
                f.write(masking.mask_text(text))
        except OSError:
            pass
        record = cls(path)
        record.state = {
            "run_id": run_id,
            "playbook": str(playbook),
            "argv": argv or [],
            "status": "running",
            "pid": os.getpid(),
            "started": time.time(),
            "hosts": {},
            "processes": [],
            "teardown": [],
            "pending_handlers": [],
        }
        record.save()
        return record

    @classmethod
    def open(cls, run: str, *, base: Path | None = None) -> RunRecord:
        """Open by id, by unique id prefix, by path, or ``last`` (the newest run)."""
        base = base or runs_dir()
        candidate = Path(run)
        if (candidate / "state.json").exists():
            path = candidate
        else:
            runs = sorted(p for p in base.glob("*") if (p / "state.json").exists()) if base.is_dir() else []
            if run in ("last", "latest"):
                matches = runs[-1:]
            else:
                matches = [p for p in runs if p.name == run] or [p for p in runs if p.name.startswith(run)]
            if len(matches) != 1:
                known = ", ".join(p.name for p in runs[-5:]) or "none"
                why = "is ambiguous" if matches else "not found"
                raise ValidationError(f"run '{run}' {why} in {base}/ (recent runs: {known})")
            path = matches[0]
        state = json.loads((path / "state.json").read_text(encoding="utf-8"))
        return cls(path, state)

    @classmethod
    def all(cls, *, base: Path | None = None) -> list[RunRecord]:
        base = base or runs_dir()
        if not base.is_dir():
            return []
        out = []
        for p in sorted(base.iterdir()):
            try:
                out.append(cls(p, json.loads((p / "state.json").read_text(encoding="utf-8"))))
            except (OSError, ValueError):
                continue
        return out

    # -- writing -------------------------------------------------------------------------
    def save(self) -> None:
        with self._lock:
            write_json_atomic(self.path / "state.json", self.state)

    def update(self, **changes: Any) -> None:
        with self._lock:
            self.state.update(changes)
            write_json_atomic(self.path / "state.json", self.state)

    def event(self, kind: str, **data: Any) -> dict[str, Any]:
        event = {"ts": round(time.time(), 3), "event": kind, **data}
        line = masking.mask_text(json.dumps(event, default=str, sort_keys=True)) + "\n"
        with self._lock:
            if self._events_fd is None:
                self._events_fd = open_private_append(self.path / "events.jsonl")
                self._events_closer = weakref.finalize(self, os.close, self._events_fd)
            write_all(self._events_fd, line.encode("utf-8"))  # one write: lines never interleave
        return event

    def close(self) -> None:
        """Close events.jsonl (the next event opens it again)."""
        with self._lock:
            if self._events_closer is not None:
                self._events_closer()
            self._events_fd = self._events_closer = None

    def write_plan(self, plan: Mapping[str, Any]) -> None:
        # one line: json's C encoder (indenting is pure Python, seconds for a 1,000-node plan)
        write_json_atomic(self.path / "plan.json", plan, indent=None)

    def task_log(self, host: str, task: str) -> Path:
        directory = self.path / "logs" / slug(host)
        private_mkdir(directory)
        return directory / f"{slug(task, limit=80)}.log"

    def process_log(self, host: str, name: str) -> Path:
        directory = self.path / "logs" / slug(host)
        private_mkdir(directory)
        return directory / f"{slug(name)}.process.log"

    # -- reading ---------------------------------------------------------------------------
    def events(self) -> list[dict[str, Any]]:
        path = self.path / "events.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    @property
    def status(self) -> str:
        return str(self.state.get("status", "unknown"))

    def owner_alive(self) -> bool:
        """Is the engine process that owns this run still running?"""
        pid = self.state.get("pid")
        if not pid or self.status not in ("running", "tearing-down"):
            return False
        try:
            os.kill(int(pid), 0)
            return True
        except (ProcessLookupError, PermissionError):
            return False
