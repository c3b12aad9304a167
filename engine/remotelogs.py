"""Process logs that live on another machine, read where they are.

A process started over SSH writes its log on that host; an srun step's log is written by
slurmstepd on its node, which shares the run directory with the login node on a real
cluster but not with the laptop that drives it. ``smlplay logs`` reads such a log through
the host's own transport, rebuilt from the connection variables the run recorded (as
``smlplay status`` and ``down`` do): an SSH host directly, an srun node through its gateway
(the login node sees the same files, and reading there needs no step of an allocation that
may be gone).

One command per host and poll reads every log of that host from its offset, at most
:data:`CHUNK` bytes each, base64-encoded so any byte survives the text channel.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.transport._shell import shell_path

CHUNK = 256 * 1024  # per log and poll: a burst of output arrives over a few polls

# stat -L: a log reached through a symlink is followed, as `tail -F` would
_READ_ONE = (
    'o() { s=$(stat -L -c %s -- "$1" 2>/dev/null) || { echo "-"; return; }; off=$2; '
    '[ "$s" -lt "$off" ] && off=0; printf "%s %s " "$s" "$off"; '
    'tail -c +$((off + 1)) -- "$1" 2>/dev/null | head -c @CHUNK@ | base64 -w0; echo; }\n'
)


@dataclass(frozen=True)
class RemoteLog:
    """A log file on ``reader`` (the host whose shell reads it), as ``source`` names it."""

    reader: str
    path: str
    source: str  # name@host of the process that writes it


@dataclass(frozen=True)
class Chunk:
    size: int  # the file's size when read
    start: int  # where ``data`` starts (0 after a truncation)
    data: bytes


def reader_of(host: str, hosts: Mapping[str, Mapping[str, Any]], _seen: frozenset[str] = frozenset()) -> str | None:
    """The host to read ``host``'s files through, or None where they are on this machine."""
    conn = hosts.get(host, {}).get("connection", "local")
    if conn == "ssh":
        return host
    if conn == "srun" and host not in _seen:
        gateway = str(hosts.get(host, {}).get("srun_gateway") or "localhost")
        return reader_of(gateway, hosts, _seen | {host})
    return None


def remote_logs(state: Mapping[str, Any]) -> list[RemoteLog]:
    """The run's process logs that are not on this machine."""
    hosts = state.get("hosts", {})
    found = []
    for proc in state.get("processes", []):
        reader = reader_of(str(proc.get("host")), hosts)
        if reader is not None and proc.get("log"):
            found.append(RemoteLog(reader, str(proc["log"]), f"{proc['name']}@{proc['host']}"))
    return found


def read_script(wanted: Sequence[tuple[str, int]]) -> str:
    """The script that prints one line per ``(path, offset)``: ``size start base64`` or ``-``."""
    lines = [_READ_ONE.replace("@CHUNK@", str(CHUNK))]
    lines += [f"o {shell_path(path)} {int(offset)}" for path, offset in wanted]
    return "\n".join(lines) + "\n"


def parse_output(stdout: str, count: int) -> list[Chunk | None]:
    """What :func:`read_script` printed: a chunk per log, None for a log not there (yet)."""
    rows = stdout.split("\n")
    out: list[Chunk | None] = []
    for i in range(count):
        row = rows[i] if i < len(rows) else "-"
        parts = row.split(" ", 2)
        if len(parts) < 2 or not parts[0].isdigit() or not parts[1].isdigit():
            out.append(None)
            continue
        data = base64.b64decode(parts[2]) if len(parts) == 3 and parts[2] else b""
        out.append(Chunk(int(parts[0]), int(parts[1]), data))
    return out


class RemoteReader:
    """Transports to the reader hosts of one run, opened on first use, closed together."""

    def __init__(self, hosts: Mapping[str, Mapping[str, Any]]) -> None:
        from engine.transport.pool import TransportPool

        self._pool = TransportPool(lambda h: hosts.get(h, {"connection": "local"}))
        self.errors: dict[str, str] = {}  # reader host -> why its logs could not be read

    def read(self, reader: str, wanted: Sequence[tuple[str, int]]) -> list[Chunk | None]:
        """Each ``(path, offset)``'s new bytes; all None when the host cannot be reached."""
        try:
            result = self._pool.get(reader).run(read_script(wanted), timeout=30)
        except Exception as exc:  # unreachable, auth, a closed gateway: say so, keep going
            self.errors[reader] = str(exc)
            return [None] * len(wanted)
        if result.rc != 0:
            self.errors[reader] = (result.stderr or result.stdout).strip()[-500:] or f"rc={result.rc}"
            return [None] * len(wanted)
        self.errors.pop(reader, None)
        return parse_output(result.stdout, len(wanted))

    def close(self) -> None:
        self._pool.close()
