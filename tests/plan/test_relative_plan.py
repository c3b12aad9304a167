"""Two renderings of the same playbook on different checkouts are byte-identical."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _checkout(dest: Path) -> Path:
    """A copy of the tracked files (working-tree content, so uncommitted edits count)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def _render(checkout: Path, fmt: str) -> bytes:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    argv = [sys.executable, "-m", "engine", "render", "playbooks/llama70b.yaml", "-i", "inventory/example-cluster.yaml", "--format", fmt]
    done = subprocess.run(argv, cwd=checkout, env=env, capture_output=True, check=True)
    return done.stdout


@pytest.mark.parametrize("fmt", ["text", "json", "markdown"])
def test_renderings_on_two_checkouts_are_byte_identical(tmp_path: Path, fmt: str) -> None:
    a = _checkout(tmp_path / "clone-a")
    b = _checkout(tmp_path / "somewhere" / "else" / "clone-b")
    out_a, out_b = _render(a, fmt), _render(b, fmt)
    assert out_a == out_b
    assert str(tmp_path).encode() not in out_a
    assert b"../roles/allocate/tasks/main.yml:1" in out_a
