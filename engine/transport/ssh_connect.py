"""Connecting over SSH: TCP with ``TCP_NODELAY`` and prompt ACKs, host key checks, authentication, jump
hosts, retries, and every failure as an :class:`~engine.errors.UnreachableError` that names
the host, the address and the cause (part of the SSH transport, :mod:`engine.transport.ssh`)."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from engine.errors import UnreachableError
from engine.transport import _paramiko
from engine.transport.ssh_hosts import (
    SYSTEM_KNOWN_HOSTS,
    USER_KNOWN_HOSTS,
    SshEndpoint,
    SshHostSpec,
)

if TYPE_CHECKING:
    import paramiko

# the SSH transport's one logger, as before the split (users filter on it)
log = logging.getLogger("engine.transport.ssh")


class _Retry(Exception):
    """A connection failure worth another attempt (refused, timeout, reset)."""


class _HostKeyPolicy:
    """Decides about servers missing from known_hosts (mismatches never get here).

    Strict: refuse, keeping the key so the error can show the exact known_hosts line.
    Not strict: accept for this run and log a warning with the fingerprint.
    """

    def __init__(self, name: str, strict: bool) -> None:
        self.name = name
        self.strict = strict
        self.unknown: paramiko.PKey | None = None

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        _paramiko.load()  # without invoke
        import paramiko

        if self.strict:
            self.unknown = key
            raise paramiko.SSHException(f"host key for {hostname} is unknown")
        log.warning(
            "%s: accepting unknown host key %s %s for %s (ssh_strict_host_key_checking is false)",
            self.name,
            key.get_name(),
            key.fingerprint,
            hostname,
        )
        client.get_host_keys().add(hostname, key.get_name(), key)


class _AckingSocket:
    """A TCP socket that acknowledges what it reads at once (Linux's ``TCP_QUICKACK``),
    until :meth:`settle`.

    Why: sshd writes with Nagle's algorithm on until a session starts (OpenSSH's
    ``ssh_packet_set_interactive`` turns it off then), and right after authentication it
    writes two small messages in a row: the auth success, then its host keys notice. The
    notice, and behind it the answer to the first channel open, waits for our ACK of the
    first one, which Linux delays by up to 40 ms: in a connect to 4 hosts at once, 3 of them
    paid it before their shell started (a tenth of a 50-task run). ``TCP_QUICKACK`` sends a
    delayed ACK now but is not sticky (the kernel goes back to delaying), hence after every
    read. A jump host never starts a session, so its sshd keeps Nagle on: through one, the
    socket never settles.
    """

    def __init__(self, sock: socket.socket, quickack: int) -> None:
        self._sock = sock
        self._quickack = quickack

    def recv(self, size: int) -> bytes:
        data = self._sock.recv(size)
        try:
            self._sock.setsockopt(socket.IPPROTO_TCP, self._quickack, 1)
        except OSError:  # the socket is closing; the next read says so
            pass
        return data

    def settle(self) -> None:
        """The server writes without Nagle now: read as a plain socket (a setsockopt per
        read was ~3% of a trivial task's CPU)."""
        self.recv = self._sock.recv  # type: ignore[method-assign,assignment]

    @property
    def settled(self) -> bool:
        return "recv" in self.__dict__

    def __getattr__(self, name: str) -> Any:  # send, settimeout, close, ... as they are
        return getattr(self._sock, name)


def session_started(clients: Sequence[paramiko.SSHClient]) -> None:
    """A session runs on the target of ``clients`` (jump hosts first): with no jump host in
    between, its sshd has turned Nagle off, so prompt ACKs are no longer needed."""
    if len(clients) == 1:
        transport = clients[0].get_transport()
        sock = getattr(transport, "sock", None)
        if isinstance(sock, _AckingSocket):
            sock.settle()


_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only


def _tcp_socket(host: str, port: int, timeout: float) -> Any:
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return _AckingSocket(sock, _QUICKACK) if _QUICKACK is not None else sock


# AES-GCM first. An AEAD cipher has OpenSSL check each packet's tag; with AES-CTR and an
# HMAC (paramiko's default order) paramiko compares every MAC byte by byte in Python, a
# quarter of the transport's CPU on the small packets a task exchanges. OpenSSH servers
# offer both; a server without GCM still gets the rest of paramiko's list, in its order.
_FIRST_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


def _transport_factory(sock: Any, **kwargs: Any) -> paramiko.Transport:
    import paramiko

    transport = paramiko.Transport(sock, **kwargs)
    options = transport.get_security_options()
    available = tuple(options.ciphers)
    options.ciphers = tuple(c for c in _FIRST_CIPHERS if c in available) + tuple(
        c for c in available if c not in _FIRST_CIPHERS
    )
    return transport


def _open_hop(
    spec: SshHostSpec,
    hop: SshEndpoint,
    sock: Any,
    known_hosts: Sequence[str],
) -> paramiko.SSHClient:
    """Log in to one server over ``sock``; raise _Retry or UnreachableError."""
    _paramiko.load()  # without invoke
    import paramiko

    client = paramiko.SSHClient()
    host_keys = client.get_host_keys()
    for path in known_hosts:  # first file wins for a key type (paramiko's rule): extra first
        if os.path.isfile(path):
            try:
                host_keys.load(path)
            except (OSError, UnicodeDecodeError) as exc:
                log.warning("%s: cannot read known_hosts file %s: %s", spec.name, path, exc)
    policy = _HostKeyPolicy(spec.name, spec.strict_host_key_checking)
    client.set_missing_host_key_policy(policy)
    timeout = spec.connect_timeout
    try:
        client.connect(
            hop.host,
            port=hop.port,
            username=hop.user,
            key_filename=list(hop.keys) or None,
            look_for_keys=not hop.keys,
            allow_agent=True,
            sock=sock,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
            channel_timeout=timeout,
            transport_factory=_transport_factory,
        )
    except paramiko.BadHostKeyException as exc:
        client.close()
        files = " or ".join(known_hosts[:2])
        raise _unreachable(
            spec,
            hop,
            f"host key mismatch: the server offered {exc.key.get_name()} {exc.key.fingerprint}, "
            f"known_hosts has {exc.expected_key.fingerprint}",
            hint=f"if the host was reinstalled, remove the old key with "
            f"`ssh-keygen -R '{hop.known_hosts_name}' -f FILE` ({files}) and add the new "
            f"one; otherwise someone may be intercepting the connection",
        ) from None
    except paramiko.AuthenticationException as exc:
        client.close()
        tried = ", ".join(hop.keys) if hop.keys else "~/.ssh/id_* and the ssh agent"
        raise _unreachable(
            spec,
            hop,
            f"authentication failed for user {hop.user!r} ({exc})",
            hint=f"tried keys: {tried}; set ssh_user/ssh_key for this host",
        ) from None
    except paramiko.SSHException as exc:
        client.close()
        if policy.unknown is not None:
            key = policy.unknown
            target = spec.known_hosts[0] if spec.known_hosts else USER_KNOWN_HOSTS
            raise _unreachable(
                spec,
                hop,
                f"host key is unknown ({key.get_name()} {key.fingerprint}) and "
                "strict host key checking is on",
                hint=f"check the fingerprint, then add this line to {target}: "
                f"{hop.known_hosts_name} {key.get_name()} {key.get_base64()}  (or run "
                f"`ssh-keyscan -p {hop.port} {hop.host} >> {target}`); "
                "ssh_strict_host_key_checking: false accepts unknown keys",
            ) from None
        raise _Retry(f"SSH handshake failed: {exc}") from None
    except (OSError, EOFError) as exc:
        client.close()
        raise _Retry(_describe_os_error(exc, timeout)) from None
    return client


def _describe_os_error(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"timed out after {timeout:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host name ({exc.strerror})"
    if isinstance(exc, EOFError):
        return "the server closed the connection"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def _unreachable(
    spec: SshHostSpec, hop: SshEndpoint, reason: str, *, hint: str | None = None
) -> UnreachableError:
    where = f"{hop.user}@{hop.address}"
    if hop != spec.endpoint:
        where = f"jump host {where} (on the way to {spec.endpoint})"
    elif spec.jump:
        where += " via " + ", ".join(str(j) for j in spec.jump)
    return UnreachableError(f"host {spec.name}: cannot connect to {where}: {reason}", hint=hint)


def _connect_chain(spec: SshHostSpec) -> list[paramiko.SSHClient]:
    """Open the jump hosts then the target; return the clients, target last."""
    _paramiko.load()  # without invoke
    import paramiko

    known_hosts = [*spec.known_hosts, os.path.expanduser(USER_KNOWN_HOSTS), SYSTEM_KNOWN_HOSTS]
    clients: list[paramiko.SSHClient] = []
    try:
        for hop in (*spec.jump, spec.endpoint):
            if not clients:
                try:
                    sock: Any = _tcp_socket(hop.host, hop.port, spec.connect_timeout)
                except socket.gaierror as exc:
                    raise _unreachable(spec, hop, _describe_os_error(exc, 0)) from None
                except OSError as exc:
                    reason = _describe_os_error(exc, spec.connect_timeout)
                    raise _Retry(str(_unreachable(spec, hop, reason))) from None
            else:
                outer = clients[-1].get_transport()
                assert outer is not None
                try:
                    sock = outer.open_channel(
                        "direct-tcpip",
                        (hop.host, hop.port),
                        ("127.0.0.1", 0),
                        timeout=spec.connect_timeout,
                    )
                except paramiko.ChannelException as exc:
                    reason = f"the jump host could not open a connection to it: {exc.text}"
                    raise _Retry(str(_unreachable(spec, hop, reason))) from None
                except (paramiko.SSHException, OSError, EOFError) as exc:
                    reason = f"the jump host could not open a connection to it: {exc}"
                    raise _Retry(str(_unreachable(spec, hop, reason))) from None
            try:
                clients.append(_open_hop(spec, hop, sock, known_hosts))
            except _Retry as exc:
                raise _Retry(str(_unreachable(spec, hop, str(exc)))) from None
    except BaseException:
        for client in reversed(clients):
            client.close()
        raise
    return clients
