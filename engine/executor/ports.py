"""Port claims: no two processes of a run may listen on the same (address, port).

Nodes can share an address (the local scheduler's virtual nodes are all 127.0.0.1, and so
are the test cluster's), so a claim is keyed by the host's ``node_address`` (else its SSH
address, else the host name), not by host. ``process`` tasks declare their ``ports``; the
claim is made while the plan is rendered, so a collision is an input error (exit 2) before
anything starts, naming both tasks.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.errors import Position, ValidationError
from engine.template import Unknown

__all__ = ["PortBook", "address_key"]


@dataclass(frozen=True)
class Claim:
    host: str
    process: str
    where: str  # "task 'x' in role 'y' (file:line:col)"


def address_key(host: str, hostvars: Mapping[str, Any]) -> str:
    """Which address a host's listeners share with other hosts."""
    for name in ("node_address", "ssh_host"):
        value = hostvars.get(name)
        if value is not None and not isinstance(value, Unknown):
            return str(value)
        if isinstance(value, Unknown):
            return f"<address of {host}>"  # unknown until allocated: one per node
    connection = hostvars.get("connection", "local")
    return "127.0.0.1" if connection == "local" else f"<address of {host}>"


class PortBook:
    def __init__(self) -> None:
        self._claims: dict[tuple[str, int], Claim] = {}
        self._lock = threading.Lock()

    def claim(self, address: str, ports: list[int], claim: Claim, pos: Position | None) -> None:
        with self._lock:
            for port in ports:
                held = self._claims.get((address, port))
                if held is not None and (held.host, held.process) != (claim.host, claim.process):
                    raise ValidationError(
                        f"port {port} on {address} is claimed twice: by process '{held.process}' on "
                        f"{held.host} ({held.where}) and by process '{claim.process}' on {claim.host}",
                        pos=pos,
                        context=claim.where,
                        hint="hosts that share an address need distinct ports; offset them by node_slot "
                        "or by worker index",
                    )
            for port in ports:
                self._claims[(address, port)] = claim

    def release(self, host: str, process: str) -> None:
        with self._lock:
            for key in [k for k, c in self._claims.items() if (c.host, c.process) == (host, process)]:
                del self._claims[key]
