"""How Slurm commands are executed: an injected ``run(argv) -> CommandResult`` callable.

The wrappers in :mod:`engine.slurm.commands` never start processes themselves. Slurm's
client commands often exist only on a login node, so the same ``sbatch`` wrapper must work
through the local shell (tests, a laptop that is a login node) and over SSH; the caller
picks by passing :func:`local_run` or :func:`transport_runner`. Tests pass a fake that
returns canned results, which is how every error mapping is tested without a cluster.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence

from engine.transport.base import CommandResult, Transport

__all__ = ["RunFn", "local_run", "transport_runner"]

RunFn = Callable[[Sequence[str]], CommandResult]
"""Runs one argv (no shell) to completion and returns its result; never raises for rc != 0."""


def local_run(
    argv: Sequence[str],
    *,
    timeout: float | None = 60.0,
    env: Mapping[str, str] | None = None,
) -> CommandResult:
    """Run ``argv`` on this machine without a shell.

    A missing executable is reported the way a shell would (rc 127, "command not found")
    so that the error mapping is identical locally and over SSH.
    """
    started = time.monotonic()
    full_env = None if env is None else {**os.environ, **env}
    try:
        proc = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            env=full_env,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except FileNotFoundError:
        return CommandResult(
            rc=127,
            stdout="",
            stderr=f"{argv[0]}: command not found\n",
            elapsed=time.monotonic() - started,
        )
    except subprocess.TimeoutExpired as exc:
        return CommandResult(
            rc=124,
            stdout=_text(exc.stdout),
            stderr=_text(exc.stderr) + f"\ntimed out after {timeout}s\n",
            elapsed=time.monotonic() - started,
            timed_out=True,
        )
    return CommandResult(
        rc=proc.returncode,
        stdout=proc.stdout,
        stderr=proc.stderr,
        elapsed=time.monotonic() - started,
    )


def transport_runner(transport: Transport, *, timeout: float | None = 60.0) -> RunFn:
    """Adapt a host's :class:`~engine.transport.base.Transport` (e.g. the login node's SSH
    connection) into a :data:`RunFn`; the argv is quoted for the remote shell by the
    transport."""

    def run(argv: Sequence[str]) -> CommandResult:
        return transport.run(list(argv), timeout=timeout)

    return run


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return data
