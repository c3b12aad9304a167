"""Free loopback ports for tests, safe to hand to servers started later.

Two races make ``bind(("127.0.0.1", 0))`` a poor choice for a port a server binds seconds
later, and both failed real runs:

- Port 0 draws from the kernel's ephemeral range, the same range every outgoing connection
  (health probes, vmagent scrapes, ssh) takes its source port from, so by the time the
  server starts, a client socket may hold the port (``bind: address already in use``).
  Ports here come from below that range, where no source port is ever taken.
- Roles add a node slot or a worker index to a port *base* (``node_exporter_port`` + slot),
  so the ports after the base must be free too. Every port handed out is the base of a
  block of :data:`BLOCK` consecutive ports, all free when checked, and never handed out
  twice in one process.
"""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path

BLOCK = 16  # ports reserved after every base: node slots and worker indexes stay inside
_LOW = 10000  # below: well-known and registered services of a typical machine
_handed: set[int] = set()  # block bases given out by this process
_rng = random.Random(os.getpid() ^ int.from_bytes(os.urandom(4), "little"))


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _all_free(first: int, count: int) -> bool:
    for port in range(first, first + count):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_ports(count: int = 1, *, consecutive: bool = False) -> list[int]:
    """``count`` distinct ports nothing listens on at 127.0.0.1, outside the ephemeral range.

    Each is the base of a free block of :data:`BLOCK` ports; ``consecutive`` returns
    ``count`` adjacent ports instead (one block at least ``count`` long).
    """
    width = max(count, BLOCK) if consecutive else BLOCK
    blocks = 1 if consecutive else count
    top = _ephemeral_start() - width
    if top <= _LOW:
        raise RuntimeError(f"no room below the ephemeral range ({_ephemeral_start()}) for test ports")
    bases: list[int] = []
    for _ in range(2000):
        base = _LOW + _rng.randrange((top - _LOW) // BLOCK) * BLOCK
        if base in _handed or not _all_free(base, width):
            continue
        _handed.update(range(base, base + width, BLOCK))
        bases.append(base)
        if len(bases) == blocks:
            return list(range(base, base + count)) if consecutive else bases
    raise RuntimeError(f"no {blocks} free blocks of {width} ports found below {_ephemeral_start()}")


def free_port() -> int:
    """One free port (the base of a free block), outside the ephemeral range."""
    return free_ports(1)[0]
