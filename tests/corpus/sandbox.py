"""Run one ``smlplay`` command in-process, in a sandbox, and record what it touched.

The sandbox is a fresh directory per case: the working directory (a copy of the case),
``HOME``, ``TMPDIR`` and ``SMLPLAY_RUNS_DIR`` all live under it, so "nothing written outside
the run directory" is a comparison of two listings of that tree, and "nothing started" a
record of the audit events that start a process or connect a socket while the command
runs (``sys.addaudithook``: a process started and already reaped counts too), plus this
process's children before and after (``/proc``: one still running).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from click.testing import CliRunner

from engine.cli import main

#: What a listing records per file: size and modification time (a rewrite changes one).
Listing = dict[str, tuple[int, int]]


def listing(root: Path) -> Listing:
    """Every file and directory under ``root`` (relative path -> size, mtime)."""
    out: Listing = {}
    for path in root.rglob("*"):
        st = path.lstat()
        out[str(path.relative_to(root)) + ("/" if path.is_dir() else "")] = (st.st_size, st.st_mtime_ns)
    return out


def changed(before: Listing, after: Listing) -> list[str]:
    """Paths created, modified or removed between two listings."""
    out = []
    for path in sorted(before.keys() | after.keys()):
        if path.endswith("/"):  # a directory: created or removed (its files speak for it)
            if (path in before) != (path in after):
                out.append(path)
        elif before.get(path) != after.get(path):
            out.append(path)
    return out


#: Audit events that mean "something was started or contacted": a process, or a socket.
STARTS = frozenset({"subprocess.Popen", "os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.system", "os.exec", "pty.spawn", "socket.connect"})
_recording: list[str] | None = None


def _audit(event: str, args: tuple[object, ...]) -> None:
    if _recording is not None and event in STARTS:
        _recording.append(f"{event} {str(args[:2])[:200]}")


sys.addaudithook(_audit)  # once per process; records only inside recording()


@contextlib.contextmanager
def recording() -> Iterator[list[str]]:
    """The start/connect audit events raised in this block (any thread)."""
    global _recording
    events: list[str] = []
    _recording = events
    try:
        yield events
    finally:
        _recording = None


def children() -> set[int]:
    """This process's live child processes (every thread's, from /proc)."""
    out: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        try:
            out.update(int(pid) for pid in (task / "children").read_text().split())
        except OSError:
            continue
    return out


@dataclass
class Outcome:
    rc: int
    stdout: str
    stderr: str
    #: files and directories created, changed or removed outside the run directory
    written: list[str] = field(default_factory=list)
    #: every file the command left in the run directory
    run_files: list[str] = field(default_factory=list)
    #: processes started or sockets connected while it ran (audit events), and child
    #: processes still there when it returned
    started: list[str] = field(default_factory=list)
    #: an exception the command raised (not SystemExit): always a bug
    exception: BaseException | None = None


def run_in_sandbox(source: Path, base: Path, argv: list[str]) -> Outcome:
    """Copy ``source`` to ``base/case`` and run ``smlplay ARGV`` there."""
    work, home, tmp, runs = base / "case", base / "home", base / "tmp", base / "runs"
    shutil.copytree(source, work)
    for d in (home, tmp):
        d.mkdir()
    env = {
        "SMLPLAY_RUNS_DIR": str(runs),
        "SMLPLAY_ROLES_PATH": "",
        "SMLPLAY_DEBUG": None,
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "NO_COLOR": "1",
        "TERM": "dumb",
        "COLUMNS": "200",
    }
    before, procs = listing(base), children()
    old_cwd = os.getcwd()
    os.chdir(work)
    tempfile.tempdir = None  # re-read TMPDIR
    try:
        with recording() as events:
            result = CliRunner().invoke(main, argv, env=env)
    finally:
        os.chdir(old_cwd)
        tempfile.tempdir = None
    after = listing(base)
    in_runs = [p for p in changed(before, after) if p.startswith("runs/") or p == "runs/"]
    return Outcome(
        rc=result.exit_code,
        stdout=result.stdout,
        stderr=result.stderr,
        written=[p for p in changed(before, after) if p not in in_runs],
        run_files=[p for p in after if p.startswith("runs/") and not p.endswith("/")],
        started=events + [f"child process {pid}" for pid in sorted(children() - procs)],
        exception=None if isinstance(result.exception, SystemExit) else result.exception,
    )
