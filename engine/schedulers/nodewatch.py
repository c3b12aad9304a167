"""Noticing a Slurm node that went down under a run.

When a node crashes, the srun clients on the login node do not exit: they wait for the
controller, which declares the node DOWN only after ``SlurmdTimeout`` (minutes on real
clusters). Until then every process on the node looks alive to the monitor. So the monitor
also asks each node of the run, every few seconds, whether its slurmd still takes a TCP
connection (through the gateway, which reaches the nodes; no step, no load on the node);
one that refuses or does not answer :data:`STRIKES` times in a row is down.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from engine.transport.base import ProcessRecord, Transport

#: Probes that must fail in a row before a node is called down (one lost SYN is not a crash).
STRIKES = 2


@dataclass(frozen=True)
class NodeDown:
    node: str
    address: str
    port: int
    error: str

    def reason(self) -> str:
        return f"node {self.node} is down: its slurmd at {self.address}:{self.port} does not answer ({self.error})"


class NodeWatch:
    """Probe the slurmd of every node that runs a process of the run (srun transport)."""

    def __init__(self, transport_for: Callable[[str], Transport], *, every: float = 1.0, timeout: float = 2.0) -> None:
        self._transport_for = transport_for
        self._every = every
        self._timeout = timeout
        self._slurmd: dict[str, tuple[str, int] | None] = {}  # node -> (NodeAddr, Port)
        self._strikes: dict[str, int] = {}
        self._last = 0.0
        self._lock = threading.Lock()
        self._polling = threading.Lock()  # the monitor and the executor both poll: one at a time
        self.down: dict[str, NodeDown] = {}  # node name -> why

    def node_of(self, record: ProcessRecord) -> str | None:
        return str(record.handle["node"]) if record.transport == "srun" and record.handle.get("node") else None

    def poll(self, records: list[ProcessRecord]) -> None:
        """Probe (at most every ``every`` s) the nodes of ``records``; updates :attr:`down`."""
        if not self._polling.acquire(blocking=False):
            return
        try:
            now = time.monotonic()
            if now - self._last >= self._every:
                self._last = now
                self._poll(records)
        finally:
            self._polling.release()

    def _poll(self, records: list[ProcessRecord]) -> None:
        by_node: dict[str, ProcessRecord] = {}
        for record in records:
            node = self.node_of(record)
            if node is not None and node not in self.down:
                by_node.setdefault(node, record)
        for node, record in by_node.items():
            error = self._probe(node, record)
            with self._lock:
                self._strikes[node] = self._strikes.get(node, 0) + 1 if error else 0
                where = self._slurmd.get(node)
                if error and self._strikes[node] >= STRIKES and where is not None:
                    self.down[node] = NodeDown(node, where[0], where[1], error)

    def stop_if_down(self, record: ProcessRecord) -> str | None:
        """Teardown of a process whose node is down: the process went with its node, and
        asking Slurm to signal the step would wait on a slurmd that is not there; what is
        left is its srun client on the gateway. None when its node is not down."""
        node = self.node_of(record)
        gateway = self.gateway(record)
        if node is None or node not in self.down or gateway is None or "client" not in record.handle:
            return None
        gateway.stop(ProcessRecord.from_dict(record.handle["client"]), grace=1.0)
        return f"node {node} is down: it went with it; its srun client stopped"

    def gateway(self, record: ProcessRecord) -> Transport | None:
        transport = self._transport_for(record.host)
        return getattr(transport, "gateway", None)

    def _probe(self, node: str, record: ProcessRecord) -> str | None:
        gateway = self.gateway(record)
        if gateway is None:
            return None
        if node not in self._slurmd:
            self._slurmd[node] = _slurmd_address(gateway, node)
        where = self._slurmd[node]
        if where is None:
            return None  # not known: no probe, no verdict
        try:
            gateway.connect_tcp(where[0], where[1], self._timeout).close()
        except Exception as exc:  # refused, timed out, no route: the node does not answer
            return str(exc) or type(exc).__name__
        return None


def _slurmd_address(gateway: Transport, node: str) -> tuple[str, int] | None:
    """The node's slurmd address and port from ``scontrol show node`` (None if not known)."""
    result = gateway.run(["scontrol", "-o", "show", "node", node], timeout=30)
    if result.rc != 0:
        return None
    fields = dict(item.split("=", 1) for item in result.stdout.split() if "=" in item)
    address = fields.get("NodeAddr") or fields.get("NodeHostName") or node
    try:
        return address, int(fields.get("Port", "6818"))
    except ValueError:
        return None
