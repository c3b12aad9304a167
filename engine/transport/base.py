"""The transport contract: how the engine runs things on a host.

An action never opens a connection itself; it asks the host's :class:`Transport`. Each
transport lives in its own module (``local``, ``ssh``, ``srun``) and is built from a host's
connection variables by :func:`engine.transport.connect`.

Everything a transport returns is plain data (frozen dataclasses that serialise to JSON) so
the run record can persist it and ``smlplay down`` can act on it from another process.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class CommandResult:
    """Outcome of one foreground command (the module result contract of Ansible)."""

    rc: int
    stdout: str
    stderr: str
    elapsed: float = 0.0
    timed_out: bool = False

    def to_dict(self) -> dict[str, Any]:
        # Ansible's command module strips trailing newlines; `stdout_lines` follows suit
        stdout, stderr = self.stdout.rstrip("\r\n"), self.stderr.rstrip("\r\n")
        return {
            "rc": self.rc,
            "stdout": stdout,
            "stderr": stderr,
            "stdout_lines": stdout.splitlines(),
            "stderr_lines": stderr.splitlines(),
            "elapsed": round(self.elapsed, 3),
            "timed_out": self.timed_out,
        }


#: How every command and process starts: ``bash --norc -c SCRIPT``. Without ``--norc``,
#: bash sources ``~/.bashrc`` even for ``-c`` when ``SSH_CLIENT`` is set (sshd sets it,
#: srun and the engine pass it on): a noisy or slow rc file (``pyenv init``) would land in
#: every process log and delay every start. The environment is the one inherited, as in an
#: sbatch script.
BASH_C = ("bash", "--norc", "-c")


@dataclass(frozen=True)
class BackgroundSpec:
    """What to start: a long-running process with its output going to ``log``."""

    name: str
    cmd: str  # a bash script; run with BASH_C
    log: str
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None


@dataclass(frozen=True)
class ProcessRecord:
    """A started background process, as persisted in the run record.

    ``handle`` holds what the owning transport needs to find the process again (a pid and
    process group for local/ssh, a job and step id for srun). ``host`` is the inventory name.
    """

    host: str
    name: str
    log: str
    transport: str
    handle: Mapping[str, Any]
    critical: bool = False
    tier: int = 1
    started_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["handle"] = dict(self.handle)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProcessRecord:
        return cls(**{**data, "handle": dict(data.get("handle", {}))})

    @property
    def label(self) -> str:
        return f"{self.name}@{self.host}"


class Connection(Protocol):
    """A byte stream to a TCP endpoint as seen from the host (for probes and tunnels)."""

    def sendall(self, data: bytes) -> None: ...
    def recv(self, n: int) -> bytes: ...
    def close(self) -> None: ...
    def settimeout(self, t: float | None) -> None: ...


@runtime_checkable
class Transport(Protocol):
    """Runs commands, background processes and file transfers on one host."""

    kind: str  # "local", "ssh", "srun"
    host: str  # inventory hostname

    def run(
        self,
        cmd: str | Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        timeout: float | None = None,
        stdin: bytes | None = None,
    ) -> CommandResult:
        """Run a command to completion. ``str`` is a bash script; a sequence is an argv
        executed without a shell (quoted for the remote shell where there is one)."""
        ...

    def start(self, spec: BackgroundSpec, *, critical: bool = False, tier: int = 1) -> ProcessRecord:
        """Start a background process detached from the engine; return its record."""
        ...

    def alive(self, proc: ProcessRecord) -> bool: ...

    def stop(self, proc: ProcessRecord, *, grace: float = 10.0) -> bool:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL. True if it was running."""
        ...

    def put(self, data: bytes, dest: str, *, mode: int | None = None) -> None: ...

    def read(self, path: str) -> bytes: ...

    def tail(self, path: str, lines: int = 50) -> str: ...

    def connect_tcp(self, address: str, port: int, timeout: float) -> Connection:
        """Open a TCP connection to ``address:port`` from the host's point of view."""
        ...

    def close(self) -> None: ...
