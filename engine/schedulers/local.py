"""The local scheduler: N virtual nodes on this machine, the embedded default.

Every virtual node is reached with the local transport and has the same address, so two
workers on two "nodes" share 127.0.0.1; ports are therefore claimed per (address, port)
and ``node_slot`` (the node's rank among nodes that share an address) lets roles offset
their ports. Nothing is submitted and nothing needs releasing.
"""

from __future__ import annotations

from engine.schedulers.base import Allocation, AllocationSpec, Hooks, Node
from engine.transport.base import Transport


class LocalScheduler:
    name = "local"

    def allocate(self, spec: AllocationSpec, gateway: Transport, hooks: Hooks) -> Allocation:
        return self.placeholder(spec)

    def release_command(self, job_id: object) -> None:
        return None  # virtual nodes: nothing to release

    def placeholder(self, spec: AllocationSpec) -> Allocation:
        count = max(spec.request.nodes, spec.layout.nodes_needed)
        nodes = tuple(
            Node(f"{spec.node_prefix}{i + 1}", spec.local_address, i, {"connection": "local"})
            for i in range(count)
        )
        return Allocation("local", None, nodes, owned=False, gpus_per_node=spec.request.gpus_per_node)
