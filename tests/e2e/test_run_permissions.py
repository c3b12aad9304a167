"""A run record may hold secrets (rendered commands, logs, state): it is private to its user."""

from __future__ import annotations

import os
import stat

import pytest

from tests.e2e.conftest import Workdir

pytestmark = pytest.mark.e2e

PLAYBOOK = """
- name: tiny
  hosts: localhost
  tasks:
    - name: say hello
      shell: echo hello; echo oops >&2
    - name: start sleeper
      process:
        name: sleeper
        cmd: exec sleep 30
    - name: show
      debug: {msg: "{{ 1 + 1 }}"}
    - name: boom
      command: "false"
      ignore_errors: true
"""


def test_run_directory_is_0700_and_its_files_0600(work: Workdir) -> None:
    work.write("pb.yaml", PLAYBOOK)
    old = os.umask(0o022)  # the usual umask: without the fix everything is world-readable
    try:
        proc = work.smlplay("run", "pb.yaml")
    finally:
        os.umask(old)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = work.last_run()
    dirs: list[str] = [str(run)]
    files: list[str] = []
    for root, dirnames, filenames in os.walk(run):
        dirs += [os.path.join(root, d) for d in dirnames]
        files += [os.path.join(root, f) for f in filenames]
    names = {os.path.relpath(f, run) for f in files}
    assert {"state.json", "events.jsonl", "plan.json", "playbook.yaml"} <= names, names
    assert any(n.startswith("logs/localhost/") and n.endswith(".process.log") for n in names), names
    assert any(n.startswith("logs/localhost/") and not n.endswith(".process.log") for n in names), names
    bad = [f"{os.path.relpath(d, run) or '.'} {oct(stat.S_IMODE(os.stat(d).st_mode))}" for d in dirs if stat.S_IMODE(os.stat(d).st_mode) != 0o700]
    bad += [f"{os.path.relpath(f, run)} {oct(stat.S_IMODE(os.stat(f).st_mode))}" for f in files if stat.S_IMODE(os.stat(f).st_mode) != 0o600]
    assert not bad, bad
