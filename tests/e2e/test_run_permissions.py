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


MORE = """
- name: more writers
  hosts: localhost
  tasks:
    - name: a process logging into a new directory
      process:
        name: worker
        cmd: exec sleep 30
        log: "{{ run_dir }}/logs/workers/worker.log"
    - name: a launch script staged into a new directory
      template: {src: s.sh.j2, dest: "{{ run_dir }}/scripts/s.sh", mode: "0700"}
    - name: results directory
      file: {path: "{{ run_dir }}/results", state: directory, mode: "0700"}
    - name: a result
      copy: {content: "x={{ x }}\\n", dest: "{{ run_dir }}/results/r.txt", mode: "0600"}
"""


def _modes(root: str) -> list[str]:
    """Everything under ``root`` that someone else could read: directories not 0700, files
    with any group or other bit."""
    bad = []
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            mode = stat.S_IMODE(os.stat(os.path.join(dirpath, d)).st_mode)
            if mode != 0o700:
                bad.append(f"{os.path.relpath(os.path.join(dirpath, d), root)}/ {oct(mode)}")
        for f in filenames:
            mode = stat.S_IMODE(os.stat(os.path.join(dirpath, f)).st_mode)
            if mode & 0o077:
                bad.append(f"{os.path.relpath(os.path.join(dirpath, f), root)} {oct(mode)}")
    return bad


def test_process_logs_scripts_results_and_sweep_records_are_private(work: Workdir) -> None:
    work.write("pb.yaml", MORE)
    work.write("templates/s.sh.j2", "echo {{ x }}\n")
    old = os.umask(0o022)
    try:
        proc = work.smlplay("run", "pb.yaml", "-e", "x=1", "--sweep", "x=1,2")
    finally:
        os.umask(old)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = work.path / "runs"
    written = {os.path.relpath(os.path.join(d, f), runs) for d, _dirs, files in os.walk(runs) for f in files}
    assert any(n.endswith("sweep.json") for n in written), written
    assert any(n.endswith("logs/workers/worker.log") for n in written), written
    assert any(n.endswith("scripts/s.sh") for n in written), written
    assert any(n.endswith("results/r.txt") for n in written), written
    assert not _modes(str(runs)), _modes(str(runs))
