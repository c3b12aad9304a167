"""The live view in a real terminal: a tmux session of fixed size runs ``smlplay run``
(typed with send-keys), and capture-pane reads the screen while it runs and at the end.

A private tmux server (``-L``) keeps these sessions apart from anyone else's. The main job
(``playbooks/llama70b.yaml``) runs too when SMLPLAY_TMUX_MAIN=1 (about a minute and a
half of CPU: not in every CI run).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.ports import free_port

REPO = Path(__file__).resolve().parents[2]
WIDTH, HEIGHT = 120, 50
SPIN = "[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]"

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)")


@dataclass
class Terminal:
    socket: str
    session: str = "live"
    screens: list[str] = field(default_factory=list)

    def tmux(self, *args: str) -> str:
        out = subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", *args], capture_output=True, text=True, timeout=20, check=True)
        return out.stdout

    def type(self, command: str) -> None:
        self.tmux("send-keys", "-t", self.session, command, "Enter")

    def screen(self) -> str:
        text = self.tmux("capture-pane", "-p", "-J", "-t", self.session)  # -J: wrapped lines joined
        self.screens.append(text)
        return text

    def run(self, command: str, timeout: float) -> tuple[int, str]:
        """Type ``command``; capture the screen until it exits. Returns (rc, final screen)."""
        self.type(f"clear; {command}; echo EXIT=$?")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(0.2)
            done = re.search(r"^EXIT=(\d+)", self.screen(), re.M)
            if done:
                return int(done.group(1)), self.screens[-1]
        raise AssertionError(f"no exit within {timeout}s; last screen:\n{self.screens[-1] if self.screens else ''}")


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    term = Terminal(socket=f"smlplay-test-{os.getpid()}-{time.monotonic_ns()}")
    env = {"SMLPLAY_RUNS_DIR": str(tmp_path / "runs"), "LANG": "C.UTF-8", "PS1": "$ "}
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    term.tmux("new-session", "-d", "-s", term.session, "-x", str(WIDTH), "-y", str(HEIGHT), "-c", str(REPO),
              f"env {exports} bash --norc --noprofile")
    try:
        yield term
    finally:
        subprocess.run(["tmux", "-L", term.socket, "kill-server"], capture_output=True, timeout=20, check=False)


def smlplay() -> str:
    script = Path(sys.executable).with_name("smlplay")
    return shlex.quote(str(script)) if script.exists() else f"{shlex.quote(sys.executable)} -m engine"


def output_lines(screen: str) -> list[str]:
    """What the run left on the screen: from its first line to the EXIT marker."""
    lines = screen.rstrip("\n").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("run "))
    end = next(i for i, line in enumerate(lines) if line.startswith("EXIT="))
    return lines[start:end]


def test_live_view_in_tmux(terminal: Terminal) -> None:
    port = free_port()
    rc, final = terminal.run(f"{smlplay()} run tests/display/playbooks/live.yaml -e port={port} -e delay=3", timeout=90)
    assert rc == 0, final
    screens = "\n".join(terminal.screens)
    # while it ran: the play's spinner line with its host, and the health countdown
    assert re.search(rf"^{SPIN} slow service +localhost {SPIN} \d+\.\ds  · start the slow web server$", screens, re.M), screens[-3000:]
    assert re.search(r"localhost: start the slow web server: health \d+\.\ds / 1m00s \(\d+\.\ds left\): ConnectionRefusedError", screens), screens[-3000:]
    # at the end: the kept lines only (the live region is gone), compact
    lines = output_lines(final)
    assert lines[1:] == [
        lines[1],  # ✓ prepare ... (its time varies)
        f"    serving {lines[0].split(' -> ')[1]}/site",
        lines[3],
        f"    up on port {port}",
        lines[5],
        "PLAY RECAP",
        "localhost : ok=4  changed=2  unreachable=0  failed=0  skipped=1  rescued=0  ignored=0",
        f"run directory: {lines[0].split(' -> ')[1]}  status: ok",
    ], "\n".join(lines)
    assert re.fullmatch(r"✓ prepare +localhost ✓ \d+\.\ds", lines[1])
    assert re.fullmatch(r"✓ slow service +localhost ✓ [3-9]\.\ds", lines[3]), lines[3]
    assert re.fullmatch(r"teardown: 1 step in \d+\.\ds", lines[5])
    assert not re.search(SPIN, final) and "skipping" not in final and "never on this machine" not in final


def test_failure_is_printed_in_full_in_tmux(terminal: Terminal, tmp_path: Path) -> None:
    book = tmp_path / "fail.yaml"
    book.write_text(
        "- name: breaks\n  hosts: localhost\n  tasks:\n"
        "    - name: a failing step\n      shell: echo 'first detail'; echo 'second detail' >&2; exit 4\n"
        "    - name: never runs\n      debug: {msg: nope}\n",
        encoding="utf-8",
    )
    rc, final = terminal.run(f"{smlplay()} run {shlex.quote(str(book))}", timeout=60)
    assert rc == 1, final
    lines = output_lines(final)
    text = "\n".join(lines)
    assert "fatal: [localhost]: FAILED! => non-zero return code 4" in text, text
    assert "  task: a failing step" in text and "first detail" in text and "second detail" in text
    assert re.search(r"^✗ breaks +localhost ✗ \d+\.\ds$", text, re.M), text
    assert "nope" not in text and "status: failed" in text


@pytest.mark.skipif(os.environ.get("SMLPLAY_TMUX_MAIN") != "1", reason="the main job in tmux: set SMLPLAY_TMUX_MAIN=1 (about 90 s)")
def test_main_job_fits_one_screen(terminal: Terminal) -> None:
    rc, _ = terminal.run(f"{smlplay()} run playbooks/llama70b.yaml", timeout=280)
    final = terminal.tmux("capture-pane", "-p", "-J", "-S", "-", "-t", terminal.session)  # with scrollback
    assert rc == 0, final
    lines = output_lines(final)
    text = "\n".join(lines)
    rows = output_lines(terminal.tmux("capture-pane", "-p", "-S", "-", "-t", terminal.session))  # wrapped rows count too
    assert len(rows) < 40, f"{len(rows)} rows on a {WIDTH}-column terminal:\n" + "\n".join(rows)
    print(f"main job: {len(lines)} lines, {len(rows)} rows on {WIDTH}x{HEIGHT}")
    assert re.search(r"^ +concurrency +requests", text, re.M), text  # the benchmark table
    assert re.search(r"^run directory: \S+  status: ok$", text, re.M) and "report.html" in text
    assert "skipping" not in text and "None" not in text


def test_ctrl_c_leaves_a_clean_screen(terminal: Terminal) -> None:
    port = free_port()
    terminal.type(f"clear; {smlplay()} run tests/display/playbooks/live.yaml -e port={port} -e delay=60; echo EXIT=$?")
    deadline = time.monotonic() + 60
    while "health" not in terminal.screen() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "(5" in terminal.screens[-1], terminal.screens[-1]  # the countdown: (5x.xs left)
    terminal.tmux("send-keys", "-t", terminal.session, "C-c")
    final = ""
    deadline = time.monotonic() + 60
    while not re.search(r"^EXIT=\d+", final, re.M) and time.monotonic() < deadline:
        time.sleep(0.2)
        final = terminal.screen()
    text = "\n".join(output_lines(final))
    assert re.search(r"^EXIT=130$", final, re.M), final
    assert "[SIGINT] stopping; teardown will run" in text and "status: interrupted" in text, text
    assert re.search(r"^teardown: 1 step in \d+\.\ds$", text, re.M), text
    assert not re.search(SPIN, final), final
