"""Deployment sweeps through the CLI: a failed point is recorded and the sweep goes on,
``--fail-fast`` stops it, ``--dry-run`` lists every point, ``--zip`` pairs values."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PLAYBOOK = """\
- hosts: localhost
  gather_facts: false
  tasks:
    - name: maybe fail
      command: "test {{ v }} -ne 2"
"""


def smlplay(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "pb.yaml").write_text(PLAYBOOK)
    return tmp_path


def sweep_record(cwd: Path) -> dict:
    (path,) = (cwd / "runs").glob("*-sweep-pb-*/sweep.json")
    return json.loads(path.read_text())


def states(record: dict) -> list[str]:
    return [p["state"] for p in record["points"]]


def test_failed_point_is_recorded_and_the_sweep_goes_on(workdir: Path) -> None:
    proc = smlplay(workdir, "run", "pb.yaml", "--sweep", "v=1,2,3")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    assert "2 of 3 points ok" in out
    assert "point 2 [v=2]: failed: task 'maybe fail'" in out
    assert states(sweep_record(workdir)) == ["ok", "failed", "ok"]


def test_fail_fast_stops_at_the_first_failed_point(workdir: Path) -> None:
    proc = smlplay(workdir, "run", "pb.yaml", "--sweep", "v=1,2,3", "--fail-fast")
    assert proc.returncode == 1
    assert "the sweep stopped at point 2" in proc.stdout + proc.stderr
    assert states(sweep_record(workdir)) == ["ok", "failed", "not-run"]


def test_all_points_ok_exits_zero(workdir: Path) -> None:
    proc = smlplay(workdir, "run", "pb.yaml", "--sweep", "v=1,3")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert states(sweep_record(workdir)) == ["ok", "ok"]


def test_dry_run_lists_every_grid_point_and_starts_nothing(workdir: Path) -> None:
    proc = smlplay(workdir, "run", "pb.yaml", "--sweep", "v=1,2", "--sweep", "w=a,b", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    points = [line for line in proc.stdout.splitlines() if line.strip().startswith("point ")]
    assert len(points) == 4
    assert "nothing started" in proc.stdout


def test_zip_needs_matching_lengths(workdir: Path) -> None:
    proc = smlplay(workdir, "run", "pb.yaml", "--sweep", "v=1,2", "--sweep", "w=a", "--zip")
    assert proc.returncode == 2
    assert "--zip needs the same number of values" in proc.stderr
    assert not (workdir / "runs").exists() or not list((workdir / "runs").glob("*sweep*"))
