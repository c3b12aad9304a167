"""Multi-node rendezvous: the simulated stand-in for ``--dist-init-addr/--nnodes/--node-rank``.

A real multi-node SGLang worker starts one process per node; node 0 listens on
``--dist-init-addr`` and becomes ready only when every other rank has joined, and ranks >= 1
serve nothing but a health endpoint. Wiring mistakes (a wrong leader address, two nodes with the
same rank, a different ``--nnodes``) therefore show up as a worker that never becomes healthy.
The simulator keeps that behaviour with a tiny TCP protocol: a follower connects to the leader's
address and sends one JSON line (``{"node_rank": r, "nnodes": n}``), the leader answers one line
(``{"ok": true}`` or ``{"ok": false, "error": ...}``), and both keep the connection open. When
either side goes away the other exits with an error, as a real distributed job would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable

log = logging.getLogger("engine.sim")

#: Seconds between a follower's attempts to reach the leader.
RETRY_S = 0.5


def split_addr(addr: str) -> tuple[str, int]:
    """``"10.0.0.1:5000"`` or ``"[::1]:5000"`` to ``(host, port)``."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"--dist-init-addr must be HOST:PORT, got {addr!r}")
    return host.strip("[]"), int(port)


class Leader:
    """Node rank 0: accept the other ranks and report when all have joined."""

    def __init__(self, nnodes: int, on_lost: Callable[[str], None]) -> None:
        self.nnodes = nnodes
        self.joined: set[int] = set()
        self.all_joined = asyncio.Event()
        self._on_lost = on_lost
        self._server: asyncio.Server | None = None
        if nnodes <= 1:
            self.all_joined.set()

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._handle, host, port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        rank = -1
        try:
            hello = json.loads(await reader.readline() or b"{}")
            rank = int(hello.get("node_rank", -1))
            error = self._admit(rank, int(hello.get("nnodes", -1)))
            writer.write(json.dumps({"ok": error is None, "error": error}).encode() + b"\n")
            await writer.drain()
            if error is not None:
                log.error("dist: refused a node: %s", error)
                return
            self.joined.add(rank)
            log.info(
                "dist: node rank %d joined (%d of %d)", rank, len(self.joined) + 1, self.nnodes
            )
            if len(self.joined) == self.nnodes - 1:
                self.all_joined.set()
            await reader.read()  # returns at EOF: the follower is gone
            self.joined.discard(rank)
            self._on_lost(f"dist: node rank {rank} left the job (its process died?)")
        except (ValueError, ConnectionError) as exc:
            log.error("dist: bad join attempt: %s", exc)
        finally:
            writer.close()

    def _admit(self, rank: int, nnodes: int) -> str | None:
        if nnodes != self.nnodes:
            return f"node rank {rank} was started with --nnodes {nnodes}, the leader with {self.nnodes}"
        if not 1 <= rank < self.nnodes:
            return f"node rank {rank} is out of range 1..{self.nnodes - 1}"
        if rank in self.joined:
            return f"two nodes were started with --node-rank {rank}"
        return None


async def join(
    host: str,
    port: int,
    rank: int,
    nnodes: int,
    joined: asyncio.Event,
    on_lost: Callable[[str], None],
) -> None:
    """Follower: connect to the leader (retrying until it is up), then watch the connection."""
    warned = False
    while True:
        try:
            reader, writer = await asyncio.open_connection(host, port)
            break
        except OSError as exc:
            if not warned:
                log.info("dist: waiting for the leader at %s:%d (%s)", host, port, exc.strerror)
                warned = True
            await asyncio.sleep(RETRY_S)
    writer.write(json.dumps({"node_rank": rank, "nnodes": nnodes}).encode() + b"\n")
    await writer.drain()
    answer = json.loads(await reader.readline() or b"{}")
    if not answer.get("ok"):
        writer.close()
        on_lost(f"dist: the leader at {host}:{port} refused this node: {answer.get('error')}")
        return
    log.info("dist: joined the leader at %s:%d as node rank %d of %d", host, port, rank, nnodes)
    joined.set()
    await reader.read()
    writer.close()
    on_lost(f"dist: lost the leader at {host}:{port} (node rank 0 died?)")
