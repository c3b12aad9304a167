"""End-to-end helpers: run the real CLI in a subprocess, in a scratch directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.ports import free_port

SMLPLAY = [sys.executable, "-m", "engine"]
REPO = Path(__file__).resolve().parents[2]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return False


class Workdir:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.env = {**os.environ, "SMLPLAY_RUNS_DIR": str(path / "runs"), "PYTHONPATH": str(REPO), "COLUMNS": "200"}

    def write(self, name: str, text: str) -> Path:
        p = self.path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        return p

    def smlplay(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*SMLPLAY, *args], cwd=self.path, env=self.env, capture_output=True, text=True, timeout=timeout)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([*SMLPLAY, *args], cwd=self.path, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def last_run(self) -> Path:
        runs = sorted((self.path / "runs").iterdir())
        assert runs, "no run recorded"
        return runs[-1]

    def state(self) -> dict[str, Any]:
        return json.loads((self.last_run() / "state.json").read_text())

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in (self.last_run() / "events.jsonl").read_text().splitlines()]


@pytest.fixture
def work(tmp_path: Path) -> Workdir:
    return Workdir(tmp_path)


@pytest.fixture
def port() -> Callable[[], int]:
    return free_port
