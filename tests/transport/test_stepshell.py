"""The one-write-per-command shell the srun transport keeps on each node, driven here
through a plain local bash (the same bytes srun would forward)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from engine.transport._stepshell import PipeChannel, ShellGone, StepShell


@pytest.fixture
def shell() -> Iterator[StepShell]:
    sh = StepShell(PipeChannel(["bash", "--noprofile", "--norc"]))
    yield sh
    sh.close()


def test_rc_stdout_and_stderr_come_back_apart(shell: StepShell) -> None:
    assert shell.run("echo out; echo err >&2; exit 3") == (3, b"out\n", b"err\n", False)


def test_commands_do_not_leak_state_into_each_other(shell: StepShell) -> None:
    shell.run("cd /; export LEAK=1; X=2")
    rc, out, _, _ = shell.run('pwd; echo "${LEAK:-none} ${X:-none}"', cwd="/tmp")
    assert (rc, out) == (0, b"/tmp\nnone none\n")


def test_env_stdin_and_bytes_survive_quoting(shell: StepShell) -> None:
    value = "it's $(rm -rf /); `x` \"y\" ;z"
    assert shell.run('printf %s "$V"', env={"V": value})[1] == value.encode()
    assert shell.run("cat", stdin=b"\x00\xffline\n")[1] == b"\x00\xffline\n"
    assert shell.run("printf 'no newline'")[1] == b"no newline"


def test_timeout_kills_the_command_group_and_the_shell_goes_on(shell: StepShell) -> None:
    started = time.monotonic()
    rc, out, _, timed_out = shell.run("sleep 30 & sleep 30; echo never", timeout=1)
    assert (rc, out, timed_out) == (124, b"", True)
    assert time.monotonic() - started < 5
    assert shell.run("echo alive")[1] == b"alive\n"
    assert shell.run("sleep 0.1", timeout=5)[0] == 0  # a command that ends in time is not a timeout


def test_exit_in_a_command_does_not_end_the_shell(shell: StepShell) -> None:
    assert shell.run("exit 7")[0] == 7
    assert shell.run("true")[0] == 0


def test_a_dead_shell_is_reported() -> None:
    sh = StepShell(PipeChannel(["bash", "--noprofile", "--norc"]))
    sh.channel.close()  # what Ctrl-C or teardown does (srun would cancel the step)
    with pytest.raises(ShellGone):
        sh.run("true", timeout=2)
