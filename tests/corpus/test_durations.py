"""Durations at run time: ``delay`` and ``loop_control.pause`` take ``30s``/``5m``/numbers,
literal or rendered from a variable, and a rendered value that is not a duration fails the
task at the field (file:line:col, the task), never a ValueError.

Real runs of local commands (``true``/``false``) on the implicit localhost; run them under
the shared lock like every non-dry run: ``flock /tmp/smlplay-servers.lock pytest ...``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from click.testing import CliRunner

from engine.cli import main

PLAYBOOK = """\
- hosts: localhost
  vars:
    wait: 0.2s
    pause: 150ms
  tasks:
    - name: poll
      command: "true"
      register: r
      until: r.rc == 0
      delay: "{{ wait }}"
    - name: each
      debug: {msg: "{{ item }}"}
      loop: [1, 2]
      loop_control:
        pause: "{{ pause }}"
    - name: literal units
      command: "false"
      register: f
      until: f.rc == 0
      retries: 1
      delay: 300ms
      ignore_errors: true
"""

BAD_DELAY = """\
- hosts: localhost
  vars:
    wait: soon
  tasks:
    - name: poll
      command: "true"
      register: r
      until: r.rc == 1
      retries: 2
      delay: "{{ wait }}"
"""


def _run(tmp_path: Path, text: str) -> tuple[int, str, float]:
    (tmp_path / "playbook.yaml").write_text(text)
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        start = time.monotonic()
        result = CliRunner().invoke(
            main, ["run", "playbook.yaml"],
            env={"SMLPLAY_RUNS_DIR": str(tmp_path / "runs"), "SMLPLAY_ROLES_PATH": "", "NO_COLOR": "1", "COLUMNS": "200"},
        )
        elapsed = time.monotonic() - start
    finally:
        os.chdir(old)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output + result.stderr, elapsed


def test_delay_and_pause_take_duration_strings(tmp_path: Path) -> None:
    rc, out, elapsed = _run(tmp_path, PLAYBOOK)
    assert rc == 0, out
    assert "internal error" not in out and "ValueError" not in out, out
    assert "ignored=1" in out, out  # `false` retried once after its 300ms delay, then ignored
    # one 300ms retry delay plus one 150ms pause between the two loop items
    assert elapsed >= 0.45, f"{elapsed:.2f}s: the delay/pause were not applied\n{out}"


def test_rendered_delay_that_is_not_a_duration_fails_the_task_at_the_field(tmp_path: Path) -> None:
    rc, out, _ = _run(tmp_path, BAD_DELAY)
    assert rc != 0 and rc != 3, out
    assert "internal error" not in out and "Traceback" not in out, out
    assert "playbook.yaml:10:14" in out and "delay: cannot read 'soon' as a duration" in out, out
    assert "task 'poll'" in out, out
