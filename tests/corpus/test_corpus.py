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

Every case asserts: exit code 2, the location, the message (and hint), no Python traceback,
and no run record (no ``state.json``): nothing was executed.

The CLI runs in a real subprocess (``smlplay <command> playbook.yaml``) with the case copied
to a temporary directory. To keep the corpus fast on small machines, the selected cases are
started together in a small thread pool the first time one of them is needed.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

CASES_DIR = Path(__file__).parent / "cases"
CASES = sorted(p.name for p in CASES_DIR.iterdir() if (p / "expect.yaml").is_file())
WORKERS = max(2, min(6, (os.cpu_count() or 2) * 2))
TIMEOUT = 60


def _smlplay() -> list[str]:
    script = Path(sys.executable).with_name("smlplay")
    if script.exists():
        return [str(script)]
    found = shutil.which("smlplay")
    return [found] if found else [sys.executable, "-m", "engine"]


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


@dataclass
class Outcome:
    rc: int
    stdout: str
    stderr: str
    workdir: Path
    runs_dir: Path


def _run_case(name: str, base: Path) -> Outcome:
    expect = _expect(name)
    work = base / name / "case"
    shutil.copytree(CASES_DIR / name, work)
    runs = base / name / "runs"
    env = {
        **os.environ,
        "SMLPLAY_RUNS_DIR": str(runs),
        "SMLPLAY_ROLES_PATH": "",
        "NO_COLOR": "1",
        "TERM": "dumb",
        "COLUMNS": "200",
    }
    env.pop("SMLPLAY_DEBUG", None)
    cmd = [
        *_smlplay(),
        expect.get("command", "run"),
        "playbook.yaml",
        *map(str, expect.get("args") or []),
    ]
    proc = subprocess.run(
        cmd, cwd=work, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    return Outcome(proc.returncode, proc.stdout, proc.stderr, work, runs)


@pytest.fixture(scope="session")
def corpus_results(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, cf.Future[Outcome]]]:
    """Start every selected case at once (a few at a time); tests wait for their own."""
    selected = []
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if (
            callspec is not None
            and getattr(item, "originalname", "") == "test_malformed_input_is_rejected"
        ):
            selected.append(callspec.params["case"])
    base = tmp_path_factory.mktemp("corpus")
    pool = cf.ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="corpus")
    futures = {name: pool.submit(_run_case, name, base) for name in dict.fromkeys(selected)}
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


def _params() -> list[Any]:
    out = []
    for name in CASES:
        reason = _expect(name).get("xfail")
        marks = [pytest.mark.xfail(strict=True, reason=str(reason))] if reason else []
        out.append(pytest.param(name, id=name, marks=marks))
    return out


def test_corpus_is_big_enough() -> None:
    assert len(CASES) >= 35


@pytest.mark.parametrize("case", _params())
def test_malformed_input_is_rejected(
    case: str, corpus_results: dict[str, cf.Future[Outcome]]
) -> None:
    expect = _expect(case)
    out = corpus_results[case].result(timeout=TIMEOUT * 2)
    both = out.stdout + out.stderr
    report = f"exit {out.rc}\n--- stdout\n{out.stdout}\n--- stderr\n{out.stderr}"

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
    # Nothing executed: no run record anywhere, and nothing written into the case.
    assert not list(out.runs_dir.rglob("state.json")), report
    assert not (out.workdir / "runs").exists(), report
    assert not (out.workdir / "out").exists(), report
