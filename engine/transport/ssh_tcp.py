"""TCP streams through an SSH server (``direct-tcpip`` channels), for health probes.

Split from :mod:`.ssh`: mapping paramiko's channel errors onto the ``OSError`` family a
local socket raises is its own job, and the probes in :mod:`engine.health` rely on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.errors import TransportError
from engine.transport import _paramiko
from engine.transport.base import Connection

if TYPE_CHECKING:
    import paramiko


def open_tcp(
    t: paramiko.Transport, host: str, address: str, port: int, timeout: float
) -> Connection:
    """A TCP stream opened *by the SSH server* (a ``direct-tcpip`` channel, as
    ``ssh -W``/``-L`` do): health probes use it to reach ports that only ``host`` can
    see, such as a server on a compute node's private network or on its loopback.

    A refused or unreachable port raises ``ConnectionRefusedError`` (an ``OSError``, as a
    local socket would); a server that forbids forwarding (``AllowTcpForwarding no``)
    raises :class:`TransportError`.
    """
    _paramiko.load()  # without invoke
    import paramiko

    try:
        channel = t.open_channel("direct-tcpip", (address, port), ("127.0.0.1", 0), timeout=timeout)
    except paramiko.ChannelException as exc:
        if exc.code == 1:  # SSH_OPEN_ADMINISTRATIVELY_PROHIBITED
            raise TransportError(
                f"host {host}: the SSH server refuses TCP forwarding to "
                f"{address}:{port} ({exc.text})",
                hint="enable AllowTcpForwarding on that sshd, or probe with a command "
                "(curl) instead of a TCP/HTTP check",
            ) from None
        raise ConnectionRefusedError(f"{address}:{port} from {host}: {exc.text}") from None
    except paramiko.SSHException as exc:
        if "timeout" in str(exc).lower() or "timed out" in str(exc).lower():
            raise TimeoutError(f"{address}:{port} from {host}: {exc}") from None
        raise ConnectionError(f"{address}:{port} from {host}: {exc}") from None
    channel.settimeout(timeout)
    return channel
