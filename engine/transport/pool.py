"""One transport per host for the whole run, built from the host's connection variables.

``connection: local`` (the default for ``localhost`` and for the local scheduler's virtual
nodes), ``ssh``, or ``srun`` (a compute node of an allocation, through its gateway host). Transports are created on first use
and closed once at the end of the run, so an SSH connection is opened once per host.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from engine.errors import TransportError
from engine.transport.base import Transport
from engine.transport.local import LocalTransport

Factory = Callable[[str, Mapping[str, Any], "TransportPool"], Transport]


def _local(host: str, hostvars: Mapping[str, Any], pool: TransportPool) -> Transport:
    return LocalTransport(host)


def _ssh(host: str, hostvars: Mapping[str, Any], pool: TransportPool) -> Transport:
    from engine.transport.ssh import SshHostSpec, SshTransport  # paramiko only when needed

    return SshTransport(SshHostSpec.from_vars(host, hostvars))


def _srun(host: str, hostvars: Mapping[str, Any], pool: TransportPool) -> Transport:
    from engine.slurm.srun import ContainerFlags
    from engine.transport import srun

    gateway = pool.get(str(hostvars.get("srun_gateway") or "localhost"))
    return srun.from_vars(host, hostvars, gateway, lambda: ContainerFlags.from_vars(pool.vars(host).get("container")))


FACTORIES: dict[str, Factory] = {"local": _local, "ssh": _ssh, "srun": _srun}

#: Host variables that decide how a host is reached; persisted in the run record so that
#: ``smlplay down`` can reach the same hosts from another process.
CONNECTION_VARS = ("connection", "container")
CONNECTION_PREFIXES = ("ssh_", "srun_", "slurm_", "container_")


def is_connection_var(name: str) -> bool:
    return name in CONNECTION_VARS or name.startswith(CONNECTION_PREFIXES)


def connection_vars(hostvars: Mapping[str, Any]) -> dict[str, Any]:
    """Only the connection variables; other values are never read (nor rendered)."""
    return {k: hostvars[k] for k in hostvars if is_connection_var(k)}


class TransportPool:
    def __init__(self, resolve_vars: Callable[[str], Mapping[str, Any]]) -> None:
        self._resolve_vars = resolve_vars
        self._transports: dict[str, Transport] = {}
        self._specs: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._host_locks: dict[str, threading.Lock] = {}

    def get(self, host: str) -> Transport:
        transport = self._transports.get(host)
        if transport is not None:
            return transport
        with self._lock:
            host_lock = self._host_locks.setdefault(host, threading.Lock())
        with host_lock:  # open each host once, hosts in parallel
            transport = self._transports.get(host)
            if transport is None:
                hostvars = self._resolve_vars(host)
                kind = str(hostvars.get("connection", "local"))
                factory = FACTORIES.get(kind)
                if factory is None:
                    raise TransportError(f"host '{host}': unknown connection '{kind}' (known: {', '.join(sorted(FACTORIES))})")
                transport = factory(host, hostvars, self)
                self._specs[host] = connection_vars(hostvars)
                self._transports[host] = transport
        return transport

    def vars(self, host: str) -> Mapping[str, Any]:
        """The host's variables now (``container`` changes after the transport exists)."""
        return self._resolve_vars(host)

    def specs(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {h: dict(v) for h, v in self._specs.items()}

    def interrupt(self) -> None:
        """Kill foreground commands in flight (Ctrl-C): teardown must not wait for them."""
        for transport in list(self._transports.values()):
            interrupt = getattr(transport, "interrupt", None)
            if interrupt is not None:
                try:
                    interrupt()
                except Exception:
                    pass

    def close(self) -> None:
        for transport in list(self._transports.values()):
            try:
                transport.close()
            except Exception:
                pass
        self._transports.clear()
