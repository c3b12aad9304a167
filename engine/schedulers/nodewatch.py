"""Noticing a Slurm node that went down under a run.

When a node crashes, the srun clients on the login node do not exit: they wait for the
controller, which declares the node DOWN only after ``SlurmdTimeout`` (minutes on real
clusters). Until then every process on the node looks alive to the monitor. So the monitor
also asks each node of the run, every few seconds, whether its slurmd still takes a TCP
connection (through the gateway, which reaches the nodes; no step, no load on the node);
one that refuses or does not answer :data:`STRIKES` times in a row is down.

The cost, and the switch: slurmd logs ``error: service_connection: slurm_receive_msg: Zero
Bytes were transmitted or received`` for each probe (a connection that sends no message),
so the interval is the node's ``slurm_node_probe`` variable (a duration, default
:data:`DEFAULT_EVERY`; ``0`` turns the probes off, and a node crash is then noticed when
Slurm declares the node DOWN, after ``SlurmdTimeout``). Probes of many nodes overlap (a
small thread pool), and the slurmd addresses come from one ``scontrol show node`` call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from engine.errors import ValidationError
from engine.transport.base import ProcessRecord, Transport
from engine.units import parse_duration

#: Probes that must fail in a row before a node is called down (one lost SYN is not a crash).
STRIKES = 2
#: Seconds between two probes of a node unless its ``slurm_node_probe`` says otherwise.
DEFAULT_EVERY = 5.0
#: Probes in flight at once (each is a TCP connect through the gateway's SSH connection).
PARALLEL = 16


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

    def __init__(
        self,
        transport_for: Callable[[str], Transport],
        *,
        vars_for: Callable[[str], Mapping[str, Any]] | None = None,
        every: float = DEFAULT_EVERY,
        timeout: float = 2.0,
    ) -> None:
        self._transport_for = transport_for
        self._vars_for = vars_for
        self._every = every
        self._interval: float | None = None  # from slurm_node_probe, once known
        self._timeout = timeout
        self._slurmd: dict[str, tuple[str, int] | None] = {}  # node -> (NodeAddr, Port)
        self._strikes: dict[str, int] = {}
        self._last = 0.0
        self._lock = threading.Lock()
        self._polling = threading.Lock()  # the monitor and the executor both poll: one at a time
        self.down: dict[str, NodeDown] = {}  # node name -> why

    def node_of(self, record: ProcessRecord) -> str | None:
        return (
            str(record.handle["node"])
            if record.transport == "srun" and record.handle.get("node")
            else None
        )

    def interval(self, records: list[ProcessRecord]) -> float:
        """Seconds between probes: the first srun process's host's ``slurm_node_probe``,
        resolved once (a host's variables are not resolved again every monitor tick)."""
        if self._interval is not None:
            return self._interval
        host = next((r.host for r in records if self.node_of(r) is not None), None)
        if host is None or self._vars_for is None:
            return self._every  # no srun process yet: decided when the first one exists
        value = self._vars_for(host).get("slurm_node_probe", self._every)
        try:
            self._interval = 0.0 if value is False else parse_duration(value, what="slurm_node_probe")
        except ValidationError:
            self._interval = self._every  # the loader refuses a bad value before the run starts
        return self._interval

    def poll(self, records: list[ProcessRecord]) -> None:
        """Probe (at most every ``interval`` s) the nodes of ``records``; updates :attr:`down`."""
        if not self._polling.acquire(blocking=False):
            return
        try:
            now = time.monotonic()
            every = self.interval(records)
            if every > 0 and now - self._last >= every:
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
        self._resolve([(n, r) for n, r in by_node.items() if n not in self._slurmd])
        with ThreadPoolExecutor(max_workers=min(PARALLEL, len(by_node) or 1)) as pool:
            errors = dict(
                zip(
                    by_node, pool.map(lambda item: self._probe(*item), by_node.items()), strict=True
                )
            )
        for node, error in errors.items():
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
        if (
            node is None
            or node not in self.down
            or gateway is None
            or "client" not in record.handle
        ):
            return None
        gateway.stop(ProcessRecord.from_dict(record.handle["client"]), grace=1.0)
        return f"node {node} is down: it went with it; its srun client stopped"

    def gateway(self, record: ProcessRecord) -> Transport | None:
        transport = self._transport_for(record.host)
        return getattr(transport, "gateway", None)

    def _resolve(self, todo: list[tuple[str, ProcessRecord]]) -> None:
        """Look up the slurmd of nodes seen for the first time, one call per gateway."""
        by_gateway: dict[int, tuple[Transport, list[str]]] = {}
        for node, record in todo:
            gateway = self.gateway(record)
            if gateway is not None:
                by_gateway.setdefault(id(gateway), (gateway, []))[1].append(node)
        for gateway, nodes in by_gateway.values():
            self._slurmd.update(_slurmd_addresses(gateway, nodes))

    def _probe(self, node: str, record: ProcessRecord) -> str | None:
        gateway = self.gateway(record)
        if gateway is None:
            return None
        where = self._slurmd.get(node)
        if where is None:
            return None  # not known: no probe, no verdict
        try:
            gateway.connect_tcp(where[0], where[1], self._timeout).close()
        except Exception as exc:  # refused, timed out, no route: the node does not answer
            return str(exc) or type(exc).__name__
        return None


def _slurmd_addresses(gateway: Transport, nodes: list[str]) -> dict[str, tuple[str, int] | None]:
    """Each node's slurmd address and port, from one ``scontrol -o show node A,B,...``."""
    result = gateway.run(["scontrol", "-o", "show", "node", ",".join(nodes)], timeout=30)
    found: dict[str, tuple[str, int] | None] = dict.fromkeys(nodes)
    if result.rc != 0:
        return found
    for line in result.stdout.splitlines():
        fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
        name = fields.get("NodeName")
        if name not in found:
            continue
        try:
            found[name] = (
                fields.get("NodeAddr") or fields.get("NodeHostName") or name,
                int(fields.get("Port", "6818")),
            )
        except ValueError:
            pass
    return found
