"""``smlplay preflight`` on the local default (no Slurm): the local scheduler needs no
request checks, the simulator's --help accepts the rendered flags, and a framework that is
not installed where the workers run fails the flags check with the launcher's own error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def preflight(*extra: str) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, "-m", "engine", "preflight", "playbooks/llama70b.yaml", "--output", "json", *extra],
        capture_output=True, text=True, timeout=120, cwd=REPO, check=False,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def checks(report: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["status"] for c in report["checks"]}


def test_local_default_passes(tmp_path: Path) -> None:
    rc, report = preflight("-e", f"model.path={tmp_path}", "--strict")
    assert rc == 0 and report["ok"], report
    assert checks(report) == {"connect": "ok", "partition": "skip", "model": "ok", "flags": "ok"}


def test_framework_missing_fails_the_flags_check(tmp_path: Path) -> None:
    rc, report = preflight("-e", f"model.path={tmp_path}", "-e", "framework=sglang")  # no torch here: --help cannot run
    assert rc == 1 and checks(report)["flags"] == "fail"
    [flags] = [c for c in report["checks"] if c["name"] == "flags"]
    assert "-m sglang.launch_server --help` failed" in flags["message"] and "install the framework" in flags["remedy"]
