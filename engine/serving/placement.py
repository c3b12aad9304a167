"""Placing workers on nodes: one worker per ``tp`` GPUs, across nodes when ``tp`` is larger
than a node.

A worker group is read from the deployment variables::

    prefill: {workers: 2, tp: 4}           # two TP-4 workers: both on one 8-GPU node
    decode:  {workers: 1, tp: 16}          # one worker over two 8-GPU nodes (ranks 0, 1)

* ``tp <= gpus_per_node``: ``gpus_per_node // tp`` workers share a node, each on its own
  GPUs (``CUDA_VISIBLE_DEVICES``);
* ``tp > gpus_per_node``: a worker spans ``ceil(tp / gpus_per_node)`` nodes (override with
  ``nodes_per_worker``), one process per node with ``--nnodes``/``--node-rank`` and the
  leader's ``--dist-init-addr``.

Ports are ``base + slot`` (HTTP, bootstrap, dist-init), where a worker's ``slot`` is its index
among the workers of the role on its node address: at most ``gpus_per_node`` per node, so a
layout of any size stays clear of other services' ports (the node exporter's 9100, ...).
Nodes that share an address (virtual nodes on one machine) count as one, so their workers
still differ; a multi-node worker takes the lowest slot free on every one of its nodes, so
its ranks agree on its ports. Without ``addresses`` every host counts as one address (slot
= worker index). Roles pick distinct bases.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.errors import ValidationError

__all__ = ["WorkerGroup", "nodes_for", "place_workers"]


@dataclass(frozen=True)
class WorkerGroup:
    """How many workers of which size a role runs."""

    workers: int
    tp: int
    gpus_per_node: int
    nodes_per_worker: int

    @classmethod
    def from_vars(cls, spec: Mapping[str, Any], gpus_per_node: int) -> WorkerGroup:
        if not isinstance(spec, Mapping):
            raise ValidationError(f"a worker group must be a mapping like {{workers: 1, tp: 8}}, not {spec!r}")
        unknown = sorted(set(spec) - {"workers", "tp", "nodes_per_worker"})
        if unknown:
            raise ValidationError(
                f"unknown worker group field(s): {', '.join(unknown)}",
                hint="known: workers, tp, nodes_per_worker",
            )
        workers = _count("workers", spec.get("workers", 1), minimum=0)
        tp = _count("tp", spec.get("tp", 1))
        gpus_per_node = _count("gpus_per_node", gpus_per_node)
        default_span = math.ceil(tp / gpus_per_node)
        span = _count("nodes_per_worker", spec.get("nodes_per_worker", default_span))
        if span * gpus_per_node < tp:
            raise ValidationError(
                f"a TP-{tp} worker does not fit on {span} node(s) of {gpus_per_node} GPU(s)",
                hint=f"set nodes_per_worker to at least {default_span}",
            )
        if span > 1 and tp % span:
            raise ValidationError(f"tp {tp} does not split evenly over {span} nodes")
        return cls(workers, tp, gpus_per_node, span)

    @property
    def workers_per_node(self) -> int:
        return max(1, self.gpus_per_node // self.tp) if self.nodes_per_worker == 1 else 1

    @property
    def nodes(self) -> int:
        if self.nodes_per_worker > 1:
            return self.workers * self.nodes_per_worker
        return math.ceil(self.workers / self.workers_per_node)


def _count(name: str, value: Any, *, minimum: int = 1) -> int:
    # `-e layout.decode.tp=2` arrives as the string "2" (k=v extra vars are strings)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValidationError(f"{name} must be a {'non-negative' if minimum == 0 else 'positive'} integer, not {value!r}")
    return value


def nodes_for(spec: Mapping[str, Any], gpus_per_node: int) -> int:
    """Nodes a worker group needs (what the allocate role asks Slurm for)."""
    return WorkerGroup.from_vars(spec, gpus_per_node).nodes


def place_workers(
    hosts: Sequence[str],
    spec: Mapping[str, Any],
    *,
    role: str,
    gpus_per_node: int,
    port: int,
    bootstrap_port: int | None = None,
    dist_port: int | None = None,
    addresses: Sequence[Any] | None = None,
) -> list[dict[str, Any]]:
    """The workers of a role over ``hosts`` (its inventory group, in allocation order).

    Each worker: ``name``, ``index``, ``role``, ``tp``, ``hosts`` (rank order), ``leader``,
    ``nnodes``, ``gpus`` (CUDA_VISIBLE_DEVICES on each of its nodes), ``slot`` (its index
    among the role's workers on its node address), ``port``, ``bootstrap_port`` and
    ``dist_port`` (``base + slot``; ``None`` where not used).

    ``addresses``: the ``node_address`` of each of ``hosts`` (same order); ``None``: all
    hosts share one address.
    """
    if addresses is not None and len(addresses) != len(hosts):
        raise ValidationError(f"{role}: {len(addresses)} address(es) for {len(hosts)} host(s)")
    address_of = dict(zip(hosts, addresses, strict=True)) if addresses is not None else {}
    taken: dict[Any, set[int]] = {}
    group = WorkerGroup.from_vars(spec, gpus_per_node)
    if len(hosts) < group.nodes:
        raise ValidationError(
            f"{role}: {group.workers} TP-{group.tp} worker(s) need {group.nodes} node(s) of "
            f"{gpus_per_node} GPU(s), but the group has {len(hosts)}",
            hint="allocate more nodes for this group (the allocate role sizes it from the same variables)",
        )
    workers = []
    for index in range(group.workers):
        if group.nodes_per_worker > 1:
            first = index * group.nodes_per_worker
            nodes = list(hosts[first : first + group.nodes_per_worker])
            per_node = group.tp // group.nodes_per_worker
            gpus = ",".join(str(g) for g in range(per_node))
        else:
            nodes = [hosts[index // group.workers_per_node]]
            offset = (index % group.workers_per_node) * group.tp
            gpus = ",".join(str(g) for g in range(offset, offset + group.tp))
        node_taken = [taken.setdefault(address_of.get(n), set()) for n in nodes]
        slot = 0
        while any(slot in t for t in node_taken):
            slot += 1
        for t in node_taken:
            t.add(slot)
        workers.append(
            {
                "name": f"{role}-{index}",
                "index": index,
                "role": role,
                "tp": group.tp,
                "hosts": nodes,
                "leader": nodes[0],
                "nnodes": len(nodes),
                "gpus": gpus,
                "slot": slot,
                "port": port + slot,
                "bootstrap_port": None if bootstrap_port is None else bootstrap_port + slot,
                "dist_port": None if dist_port is None or len(nodes) == 1 else dist_port + slot,
            }
        )
    return workers


def allocation_layout(
    layout: Mapping[str, Any],
    gpus_per_node: int,
    router: str = "shared",
    bench: str = "router",
) -> dict[str, Any]:
    """The ``slurm_allocate`` layout for a deployment: nodes per worker group, then the
    router (``shared``: on the first node of the first group; ``own``: a node of its own)
    and the benchmark client (``router``: beside the router; ``own``)."""
    groups = [g for g in ("prefill", "decode", "workers") if g in layout]
    if not groups:
        raise ValidationError(
            "layout has no worker group",
            hint="give prefill and decode (disaggregated) or workers (aggregated)",
        )
    if "workers" in groups and len(groups) > 1:
        raise ValidationError("layout mixes workers (aggregated) with prefill/decode (disaggregated)")
    if ("prefill" in groups) != ("decode" in groups):
        raise ValidationError("a disaggregated layout needs both prefill and decode")
    out: dict[str, Any] = {g: nodes_for(layout[g], gpus_per_node) for g in groups}
    if router not in ("shared", "own"):
        raise ValidationError(f"router placement {router!r} is not shared or own")
    if bench not in ("router", "own"):
        raise ValidationError(f"bench placement {bench!r} is not router or own")
    out["router"] = {"count": 1, "on": groups[0]} if router == "shared" else 1
    out["bench"] = {"count": 1, "on": "router"} if bench == "router" else 1
    return out


def ranks_on(workers: Sequence[Mapping[str, Any]], host: str) -> list[dict[str, Any]]:
    """The (worker, rank) processes ``host`` runs: each worker dict plus its ``rank``."""
    return [{**w, "rank": w["hosts"].index(host)} for w in workers if host in w["hosts"]]


def worker_endpoints(workers: Sequence[Mapping[str, Any]], hostvars: Any) -> list[dict[str, Any]]:
    """Where peers reach each worker: the leader's ``node_address`` and the worker's ports."""
    out = []
    for w in workers:
        address = hostvars[w["leader"]]["node_address"]
        out.append(
            {
                "name": w["name"],
                "role": w["role"],
                "address": address,
                "url": f"http://{address}:{w['port']}",
                "port": w["port"],
                "bootstrap_port": w.get("bootstrap_port"),
            }
        )
    return out
