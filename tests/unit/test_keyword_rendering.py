"""Task keywords that accept a template must be rendered before use (checked through the CLI)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path


def smlplay(tmp_path: Path, playbook: str, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "playbook.yaml").write_text(textwrap.dedent(playbook).lstrip(), encoding="utf-8")
    script = Path(sys.executable).with_name("smlplay")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "engine"]
    env = {**os.environ, "SMLPLAY_RUNS_DIR": str(tmp_path / "runs"), "NO_COLOR": "1"}
    return subprocess.run(
        [*cmd, *args, "playbook.yaml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_templated_delay_is_rendered(tmp_path: Path) -> None:
    out = smlplay(
        tmp_path,
        """
        - hosts: localhost
          vars: {d: 0}
          tasks:
            - name: retry
              command: "true"
              register: r
              until: r.rc == 1
              retries: 2
              delay: "{{ d }}"
        """,
        "run",
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    assert "FAILED - RETRYING: [localhost]: retry (1 retries left)." in out.stdout
    assert "after 2 attempts" in out.stdout


def test_templated_retries_is_rendered(tmp_path: Path) -> None:
    out = smlplay(
        tmp_path,
        """
        - hosts: localhost
          vars: {n: 2}
          tasks:
            - name: retry
              command: "true"
              register: r
              until: r.rc == 1
              retries: "{{ n }}"
              delay: 0
        """,
        "run",
    )
    assert "after 2 attempts" in out.stdout, out.stdout + out.stderr


def test_templated_ignore_errors_is_rendered(tmp_path: Path) -> None:
    out = smlplay(
        tmp_path,
        """
        - hosts: localhost
          vars: {flag: true}
          tasks:
            - name: failing
              command: "false"
              ignore_errors: "{{ flag }}"
            - name: after
              command: "true"
        """,
        "run", "-v",  # -v: the Ansible-style log names every task
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "TASK [after]" in out.stdout
