"""The malformed-input corpus: every case must be rejected before anything runs.

Each directory under ``cases/`` holds a ``playbook.yaml`` (plus roles, templates, inventory
or vars files where needed) and an ``expect.yaml``:

``location``
    ``file:line:col`` that must appear on stderr (the path relative to the case directory),
    or ``null`` for errors that come from the command line (``-e``) and have no file.
``message``
    a substring of the error message.
``hint`` (optional)
    a substring of the hint line.
``command`` (optional)
    ``run`` (default), ``check`` or ``render``.
``args`` (optional)
    extra CLI arguments (``-e``, ``-i inventory.yaml``...).
``xfail`` (optional)
    the reason the engine does not (yet) behave as expected; the case is a strict xfail.

Every case asserts: exit code 2, the location, the message (and hint), no Python traceback
and no internal error, nothing started (no child process left), no run record (no
``state.json``), no process started and no socket connected (audit events), and no file
created, changed or removed outside the run directory (see
:mod:`tests.corpus.sandbox`: the case's copy, ``HOME`` and ``TMPDIR`` are all inside the
sandbox, so the comparison covers every place a run could write to).

The CLI runs in-process (click's CliRunner), one case at a time: ~0.1 s a case instead of a
Python start-up each. ``test_real_cli_subprocess`` runs a few cases through a real
``smlplay`` process, so the console script and stderr of the installed command are covered.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.corpus.sandbox import Outcome, changed, children, listing, recording, run_in_sandbox

CASES_DIR = Path(__file__).parent / "cases"
CASES = sorted(p.name for p in CASES_DIR.iterdir() if (p / "expect.yaml").is_file())
#: Run through a real process too (the first of each command kind, and an -e case).
SUBPROCESS_CASES = ["01-yaml-unclosed-bracket", "42-extra-vars-missing-file", "52-render-undefined-in-vars"]
TIMEOUT = 60


def _expect(name: str) -> dict[str, Any]:
    data = yaml.safe_load((CASES_DIR / name / "expect.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{name}/expect.yaml must be a mapping"
    unknown = set(data) - {"location", "message", "hint", "command", "args", "xfail"}
    assert not unknown, f"{name}/expect.yaml: unknown keys {sorted(unknown)}"
    assert "location" in data and data.get("message"), (
        f"{name}/expect.yaml needs location and message"
    )
    assert data.get("command", "run") in ("run", "check", "render")
    return data


def _argv(expect: dict[str, Any]) -> list[str]:
    return [expect.get("command", "run"), "playbook.yaml", *map(str, expect.get("args") or [])]


def _params() -> list[Any]:
    out = []
    for name in CASES:
        reason = _expect(name).get("xfail")
        marks = [pytest.mark.xfail(strict=True, reason=str(reason))] if reason else []
        out.append(pytest.param(name, id=name, marks=marks))
    return out


def test_corpus_is_big_enough() -> None:
    assert len(CASES) >= 150, f"{len(CASES)} cases"


def _check(expect: dict[str, Any], out: Outcome) -> None:
    both = out.stdout + out.stderr
    report = (
        f"exit {out.rc}\n--- stdout\n{out.stdout}\n--- stderr\n{out.stderr}"
        f"\n--- written {out.written}\n--- run dir {out.run_files}\n--- started {out.started}"
    )
    if out.exception is not None:
        raise AssertionError(f"raised {type(out.exception).__name__}: {out.exception}\n{report}") from out.exception
    assert "Traceback" not in both, report
    assert "internal error" not in both, report
    assert out.rc == 2, report
    location = expect["location"]
    if location is not None:
        assert location in out.stderr, f"expected location {location!r}\n{report}"
    assert expect["message"] in out.stderr, f"expected message {expect['message']!r}\n{report}"
    if expect.get("hint"):
        hint_lines = [line for line in out.stderr.splitlines() if "hint:" in line]
        assert any(expect["hint"] in line for line in hint_lines), (
            f"expected hint {expect['hint']!r}\n{report}"
        )
    # Nothing executed: no process left, no run record, nothing written anywhere else.
    assert not out.started, report
    assert not [p for p in out.run_files if p.endswith("state.json")], report
    assert not out.written, report


@pytest.mark.parametrize("case", _params())
def test_malformed_input_is_rejected(case: str, tmp_path: Path) -> None:
    expect = _expect(case)
    _check(expect, run_in_sandbox(CASES_DIR / case, tmp_path, _argv(expect)))


def _smlplay() -> list[str]:
    script = Path(sys.executable).with_name("smlplay")
    if script.exists():
        return [str(script)]
    found = shutil.which("smlplay")
    return [found] if found else [sys.executable, "-m", "engine"]


@pytest.mark.parametrize("case", SUBPROCESS_CASES)
def test_real_cli_subprocess(case: str, tmp_path: Path) -> None:
    """The same contract through the installed ``smlplay`` script in its own process."""
    expect = _expect(case)
    work, home = tmp_path / "case", tmp_path / "home"
    shutil.copytree(CASES_DIR / case, work)
    home.mkdir()
    env = {**os.environ, "SMLPLAY_RUNS_DIR": str(tmp_path / "runs"), "SMLPLAY_ROLES_PATH": "",
           "HOME": str(home), "TMPDIR": str(home), "NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "200"}
    env.pop("SMLPLAY_DEBUG", None)
    before = listing(tmp_path)
    proc = subprocess.run([*_smlplay(), *_argv(expect)], cwd=work, env=env, capture_output=True,
                          text=True, timeout=TIMEOUT, check=False)
    written = changed(before, listing(tmp_path))
    _check(expect, Outcome(proc.returncode, proc.stdout, proc.stderr, written=written))


# --- the harness's own checks can fail --------------------------------------------------


def test_sandbox_sees_a_written_file_and_a_started_process(tmp_path: Path) -> None:
    """A file written into the sandbox's HOME, and a child process, are both reported."""
    (tmp_path / "home").mkdir()
    before, procs = listing(tmp_path), children()
    (tmp_path / "home" / ".smlplay").mkdir()
    (tmp_path / "home" / ".smlplay" / "x").write_text("x")
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert changed(before, listing(tmp_path)) == ["home/.smlplay/", "home/.smlplay/x"]
        assert child.pid in children() - procs
    finally:
        child.kill()
        child.wait()
    assert child.pid not in children()


def test_sandbox_records_a_process_or_connection_even_when_it_is_over() -> None:
    """A process started and reaped, or a socket connected, inside the block is recorded."""
    import socket

    with recording() as events:
        subprocess.run(["true"], check=True)
        with socket.socket() as sock, contextlib.suppress(OSError):
            sock.connect(("127.0.0.1", 9))
    assert any(e.startswith("subprocess.Popen") for e in events), events
    assert any(e.startswith("socket.connect") for e in events), events
    with recording() as events:
        pass
    assert events == []


def test_sandbox_reports_a_valid_playbook_as_not_rejected(tmp_path: Path) -> None:
    """A playbook that is fine passes ``check`` (exit 0): the corpus contract fails on it."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "playbook.yaml").write_text("- hosts: localhost\n  tasks:\n    - debug: {msg: hi}\n")
    out = run_in_sandbox(source, tmp_path / "box", ["check", "playbook.yaml"])
    assert out.rc == 0 and out.exception is None and not out.written and not out.started, out
    with pytest.raises(AssertionError, match="exit 0"):
        _check({"location": "playbook.yaml:1:1", "message": "x"}, out)
