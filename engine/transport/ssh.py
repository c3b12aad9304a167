"""SSH transport: one pooled paramiko connection per host, commands through persistent shells.

What a task costs over SSH decides the design (``reference/ssh-task-cost.md``): a new exec
channel per command makes sshd start the login shell, and cluster rc files make that
0.1-1 s; a bash kept open per host and fed through stdin costs one round trip. So:

- one connection per host, opened once (with ``TCP_NODELAY``: without it paramiko stalls
  ~40 ms per channel on Nagle against delayed ACK), through jump hosts when configured;
- foreground commands run in a small pool of persistent remote shells (grown on demand up
  to ``ssh_max_shells``, so ``run`` from the executor's threads and ``alive`` from the
  monitor thread never wait on each other); framing in :mod:`engine.transport._shell`;
- if a shell breaks before a command began, the command goes over a one-shot exec channel
  and the shell is replaced on next use;
- background processes are ``setsid nohup`` children of the remote host, not of any channel,
  so they outlive the connection and another process (``smlplay down``) can stop them;
- files go over one reused SFTP session; TCP probes over ``direct-tcpip`` channels.

Host keys are checked strictly by default against ``~/.ssh/known_hosts``,
``/etc/ssh/ssh_known_hosts`` and ``ssh_known_hosts``; every connection failure becomes an
:class:`~engine.errors.UnreachableError` that names the inventory host, the address and the
cause. paramiko is imported lazily: ``smlplay --help`` and local-only runs never pay for it.
"""

from __future__ import annotations

import getpass
import io
import logging
import os
import posixpath
import secrets
import shlex
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.errors import TransportError, UnreachableError, ValidationError
from engine.transport._shell import (
    LOST_RC,
    Framed,
    Outcome,
    RemoteShell,
    ShellBroken,
    collect,
    frame,
    oneshot_command,
    remote_path,
    shell_path,
)
from engine.transport.base import BackgroundSpec, CommandResult, Connection, ProcessRecord

if TYPE_CHECKING:
    import paramiko

log = logging.getLogger(__name__)
# paramiko logs every refused direct-tcpip channel ("Secsh channel N open FAILED") at ERROR;
# a health probe polling a port that is not up yet is expected to be refused, and real
# connection failures reach the user as TransportError/UnreachableError with the cause.
logging.getLogger("paramiko.transport").setLevel(logging.CRITICAL)

DEFAULT_SSH_CONFIG = "~/.ssh/config"
USER_KNOWN_HOSTS = "~/.ssh/known_hosts"
SYSTEM_KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"

# Whether a process group has a live (non-zombie) member. Zombies matter: where PID 1 does
# not reap orphans, `kill -0` keeps succeeding for processes long dead.
_GROUP_ALIVE = """_alive() {
  kill -0 -- "-$1" 2>/dev/null || return 1
  command -v ps >/dev/null || return 0
  ps -e -o pgid= -o stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ {f = 1} END {exit !f}'
}
"""


# --------------------------------------------------------------------------------------
# Host data


@dataclass(frozen=True)
class SshEndpoint:
    """One SSH server to log in to: the target itself or a jump host on the way."""

    host: str
    port: int = 22
    user: str = ""
    keys: tuple[str, ...] = ()

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def known_hosts_name(self) -> str:
        """How OpenSSH (and paramiko) name this server in known_hosts."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    def __str__(self) -> str:
        return f"{self.user}@{self.address}"


@dataclass(frozen=True)
class SshHostSpec:
    """How to reach one inventory host over SSH, from its ``ssh_*`` variables.

    Values not set in the inventory come from ``~/.ssh/config`` (HostName, Port, User,
    IdentityFile, ProxyJump) and then from ssh's own defaults, so hosts users already reach
    with ``ssh NAME`` need no variables at all.
    """

    name: str  # inventory hostname (what errors and records call it)
    host: str
    port: int = 22
    user: str = ""
    keys: tuple[str, ...] = ()  # private key files; empty: ~/.ssh/id_* and the agent
    jump: tuple[SshEndpoint, ...] = ()  # ProxyJump chain, outermost first
    known_hosts: tuple[str, ...] = ()  # extra known_hosts files, checked first
    strict_host_key_checking: bool = True
    connect_timeout: float = 10.0
    retries: int = 2
    max_shells: int = 8

    @property
    def endpoint(self) -> SshEndpoint:
        return SshEndpoint(self.host, self.port, self.user, self.keys)

    @classmethod
    def from_vars(
        cls,
        inventory_hostname: str,
        hostvars: Mapping[str, Any],
        *,
        ssh_config: str | None = DEFAULT_SSH_CONFIG,
    ) -> SshHostSpec:
        """Build from host variables:

        - ``ssh_host`` (default: the inventory name, looked up in ``~/.ssh/config``)
        - ``ssh_port`` (22), ``ssh_user`` (the current user), ``ssh_key`` (a private key file)
        - ``ssh_jump``: jump host(s) ``user@host:port[,user@host:port]``, like ProxyJump,
          outermost first; each is looked up in ``~/.ssh/config``; without a user there, the
          local user (as ssh does); without a key there, ``ssh_key`` is tried too
        - ``ssh_known_hosts``: an extra known_hosts file (or a list of them)
        - ``ssh_strict_host_key_checking`` (true): false accepts unknown host keys with a
          warning (changed keys are still refused), like ``StrictHostKeyChecking=accept-new``
        - ``ssh_connect_timeout`` (10 s), ``ssh_retries`` (2), ``ssh_max_shells`` (8)
        """
        name = inventory_hostname
        config = _load_ssh_config(ssh_config)
        alias = str(hostvars.get("ssh_host") or name)
        found = _config_lookup(config, alias)
        host = str(found.get("hostname") or alias)
        if hostvars.get("ssh_port") is not None:
            port = _int_var(name, "ssh_port", hostvars["ssh_port"], minimum=1)
        else:
            port = _int_var(name, "Port in ssh config", found.get("port", 22), minimum=1)
        user = str(hostvars.get("ssh_user") or found.get("user") or getpass.getuser())
        if hostvars.get("ssh_key"):
            keys: tuple[str, ...] = (os.path.expanduser(str(hostvars["ssh_key"])),)
        else:
            keys = tuple(os.path.expanduser(k) for k in found.get("identityfile", []))
        jump_text = hostvars.get("ssh_jump") or found.get("proxyjump") or ""
        jump: tuple[SshEndpoint, ...] = ()
        if str(jump_text).strip().lower() not in ("", "none"):
            jump = tuple(
                _parse_endpoint(name, part, config=config, fallback_keys=keys)
                for part in str(jump_text).split(",")
                if part.strip()
            )
        extra = hostvars.get("ssh_known_hosts") or ()
        if isinstance(extra, str):
            extra = (extra,)
        return cls(
            name=name,
            host=host,
            port=port,
            user=user,
            keys=keys,
            jump=jump,
            known_hosts=tuple(os.path.expanduser(str(p)) for p in extra),
            strict_host_key_checking=_bool_var(
                name,
                "ssh_strict_host_key_checking",
                hostvars.get("ssh_strict_host_key_checking", True),
            ),
            connect_timeout=_float_var(
                name, "ssh_connect_timeout", hostvars.get("ssh_connect_timeout", 10)
            ),
            retries=_int_var(name, "ssh_retries", hostvars.get("ssh_retries", 2), minimum=0),
            max_shells=_int_var(
                name, "ssh_max_shells", hostvars.get("ssh_max_shells", 8), minimum=1
            ),
        )


def _load_ssh_config(path: str | None) -> paramiko.SSHConfig | None:
    if not path:
        return None
    full = os.path.expanduser(path)
    if not os.path.isfile(full):
        return None
    import paramiko

    return paramiko.SSHConfig.from_path(full)


def _config_lookup(config: paramiko.SSHConfig | None, alias: str) -> dict[str, Any]:
    return dict(config.lookup(alias)) if config is not None else {}


def _parse_endpoint(
    name: str, text: str, *, config: paramiko.SSHConfig | None, fallback_keys: tuple[str, ...]
) -> SshEndpoint:
    """``[ssh://][user@]host[:port]`` (``[v6addr]:port`` too), resolved through ssh config."""
    rest = text.strip().removeprefix("ssh://")
    user = ""
    if "@" in rest:
        user, rest = rest.rsplit("@", 1)
    port: Any = None
    if rest.startswith("["):
        alias, _, tail = rest[1:].partition("]")
        if tail.startswith(":"):
            port = tail[1:]
    elif rest.count(":") == 1:
        alias, port = rest.split(":")
    else:
        alias = rest
    if not alias:
        raise ValidationError(f"host {name}: ssh_jump entry {text!r} has no host name")
    found = _config_lookup(config, alias)
    keys = tuple(os.path.expanduser(k) for k in found.get("identityfile", [])) or fallback_keys
    return SshEndpoint(
        host=str(found.get("hostname") or alias),
        port=_int_var(name, "ssh_jump port", port if port else found.get("port", 22), minimum=1),
        user=user or str(found.get("user") or getpass.getuser()),
        keys=keys,
    )


def _int_var(name: str, var: str, value: Any, *, minimum: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValidationError(f"host {name}: {var} must be an integer, got {value!r}") from None
    if isinstance(value, bool) or number < minimum:
        raise ValidationError(f"host {name}: {var} must be an integer >= {minimum}, got {value!r}")
    return number


def _float_var(name: str, var: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"host {name}: {var} must be a number, got {value!r}") from None
    if isinstance(value, bool) or number <= 0:
        raise ValidationError(f"host {name}: {var} must be a positive number, got {value!r}")
    return number


def _bool_var(name: str, var: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1"):
        return True
    if text in ("false", "no", "0"):
        return False
    raise ValidationError(f"host {name}: {var} must be true or false, got {value!r}")


# --------------------------------------------------------------------------------------
# Connecting


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


def _tcp_socket(host: str, port: int, timeout: float) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _open_hop(
    spec: SshHostSpec,
    hop: SshEndpoint,
    sock: Any,
    known_hosts: Sequence[str],
) -> paramiko.SSHClient:
    """Log in to one server over ``sock``; raise _Retry or UnreachableError."""
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


# --------------------------------------------------------------------------------------
# The transport


class SshTransport:
    """Runs commands, background processes and file transfers on one host over SSH.

    Thread-safe: ``run`` may be called from many threads at once (each gets its own remote
    shell from the pool), ``alive`` from a monitor thread, ``put``/``read`` share one SFTP
    session under a lock. Connects on first use (or :meth:`connect`), reconnects once when
    the connection was lost between commands.
    """

    kind = "ssh"

    def __init__(self, spec: SshHostSpec) -> None:
        self.spec = spec
        self.host = spec.name
        self._connect_lock = threading.Lock()
        self._clients: list[paramiko.SSHClient] = []  # jump hosts..., target last
        self._generation = 0
        self._pool = threading.Condition()
        self._idle: list[RemoteShell] = []
        self._open_shells = 0  # idle + in use + being opened
        self._max_shells = spec.max_shells
        self._persistent = True  # False: every command over its own exec channel
        self._sftp: paramiko.SFTPClient | None = None
        self._sftp_lock = threading.Lock()
        self._closed = False
        self._inflight: dict[bytes, int] = {}  # command token -> its process group
        self._inflight_lock = threading.Lock()

    # -- connection -----------------------------------------------------------------

    def open_channel(self, command: str) -> paramiko.Channel:
        """An exec channel running ``command`` on the pooled connection: how the srun
        transport keeps a shell step on a compute node through this login host."""
        channel = self._transport().open_session(timeout=self.spec.connect_timeout)
        channel.exec_command(command)
        return channel

    def connect(self) -> SshTransport:
        """Open the connection now (with retries and backoff) instead of on first use."""
        self._transport()
        return self

    def _transport(self) -> paramiko.Transport:
        with self._connect_lock:
            if self._closed:
                raise TransportError(f"host {self.host}: the ssh transport was closed")
            if self._clients:
                t = self._clients[-1].get_transport()
                if t is not None and t.is_active():
                    return t
                self._drop_connection()
            self._clients = self._connect_with_retries()
            self._generation += 1
            t = self._clients[-1].get_transport()
            assert t is not None
            t.set_keepalive(30)
            return t

    def _connect_with_retries(self) -> list[paramiko.SSHClient]:
        spec = self.spec
        delay = 0.5
        for attempt in range(spec.retries + 1):
            try:
                return _connect_chain(spec)
            except _Retry as exc:
                if attempt == spec.retries:
                    tries = spec.retries + 1
                    raise UnreachableError(
                        f"{exc} ({tries} attempt{'s' if tries > 1 else ''})"
                    ) from None
                log.debug("%s: connect attempt %d failed: %s", self.host, attempt + 1, exc)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")  # pragma: no cover

    def _drop_connection(self) -> None:
        """Forget a dead connection: idle shells and SFTP go with it (caller holds the lock)."""
        with self._pool:
            stale, self._idle = self._idle, []
            self._open_shells -= len(stale)
        for shell in stale:
            shell.close()
        # Not under _sftp_lock: put() holds it while it (re)connects through here.
        sftp, self._sftp = self._sftp, None
        if sftp is not None:
            try:
                sftp.close()
            except Exception:
                pass
        for client in reversed(self._clients):
            client.close()
        self._clients = []

    def close(self) -> None:
        with self._connect_lock:
            self._closed = True
            self._drop_connection()
        with self._pool:
            self._pool.notify_all()

    def __enter__(self) -> SshTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the shell pool ---------------------------------------------------------------

    def _acquire(self) -> RemoteShell | None:
        """An idle shell, a new one (up to the limit), or None: use a one-shot channel."""
        while True:
            with self._pool:
                while True:
                    if not self._persistent:
                        return None
                    if self._idle:
                        return self._idle.pop()
                    if self._open_shells < self._max_shells:
                        self._open_shells += 1
                        break
                    self._pool.wait()
            t: paramiko.Transport | None = None
            try:
                t = self._transport()
                return RemoteShell.open(
                    t, timeout=self.spec.connect_timeout, generation=self._generation
                )
            except TransportError:  # unreachable, or closed meanwhile
                self._forget_slot()
                raise
            except ShellBroken as exc:
                # The shell started but never answered: no usable bash there. Give up on
                # persistent shells for this host; commands take one exec channel each.
                log.warning(
                    "%s: no persistent shell (%s); using one channel per command", self.host, exc
                )
                with self._pool:
                    self._open_shells -= 1
                    self._persistent = False
                    self._pool.notify_all()
                return None
            except Exception as exc:
                import paramiko

                with self._pool:
                    self._open_shells -= 1
                    self._pool.notify()
                    # A refused channel (MaxSessions on the server; paramiko does not always
                    # say ChannelException) on a live connection with shells already open
                    # means "no more": settle for those. Anything else is an error.
                    refused = (
                        isinstance(exc, paramiko.SSHException) and t is not None and t.is_active()
                    )
                    if not refused or self._open_shells == 0:
                        raise TransportError(
                            f"host {self.host}: cannot open a session channel: {exc}"
                        ) from exc
                    self._max_shells = self._open_shells
                    log.info(
                        "%s: server refused shell %d (%s); keeping %d",
                        self.host,
                        self._open_shells + 1,
                        exc,
                        self._open_shells,
                    )

    def _forget_slot(self) -> None:
        with self._pool:
            self._open_shells -= 1
            self._pool.notify()

    def _release(self, shell: RemoteShell) -> None:
        if shell.healthy and shell.generation == self._generation and not self._closed:
            with self._pool:
                self._idle.append(shell)
                self._pool.notify()
            return
        shell.close()
        self._forget_slot()

    # -- commands ---------------------------------------------------------------------

    def run(
        self,
        cmd: str | Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        timeout: float | None = None,
        stdin: bytes | None = None,
    ) -> CommandResult:
        script = cmd if isinstance(cmd, str) else shlex.join(cmd)
        try:
            framed = frame(script, env=env, cwd=cwd, stdin=stdin)
        except ValueError as exc:
            raise ValidationError(f"host {self.host}: {exc}") from None
        start = time.monotonic()
        deadline = start + timeout if timeout is not None else None

        def on_start(pgid: int) -> None:
            with self._inflight_lock:
                self._inflight[framed.token] = pgid

        outcome: Outcome | None = None
        try:
            shell = self._acquire()
            if shell is not None:
                try:
                    outcome = shell.execute(
                        framed, deadline=deadline, kill_group=self._kill_group, on_start=on_start
                    )
                except ShellBroken as exc:
                    if exc.started:
                        note = b"\nsmlplay: the remote shell died while the command ran\n"
                        outcome = Outcome(LOST_RC, exc.stdout, exc.stderr + note)
                        if exc.pgid > 0:  # what is left of the command has no one to wait
                            self._kill_group(exc.pgid)
                    else:
                        log.info(
                            "%s: persistent shell broke (%s); retrying on an exec channel",
                            self.host,
                            exc,
                        )
                finally:
                    self._release(shell)
            if outcome is None:
                outcome = self._run_oneshot(framed, deadline, on_start)
        finally:
            with self._inflight_lock:
                self._inflight.pop(framed.token, None)
        return CommandResult(
            rc=outcome.rc,
            stdout=outcome.stdout.decode("utf-8", errors="replace"),
            stderr=outcome.stderr.decode("utf-8", errors="replace"),
            elapsed=time.monotonic() - start,
            timed_out=outcome.timed_out,
        )

    def _run_oneshot(
        self, framed: Framed, deadline: float | None, on_start: Callable[[int], None]
    ) -> Outcome:
        """The fallback: one exec channel for this command (pays the login shell's start)."""
        t = self._transport()
        try:
            channel = t.open_session(timeout=self.spec.connect_timeout)
        except Exception as exc:
            raise TransportError(f"host {self.host}: cannot open an exec channel: {exc}") from exc
        try:
            channel.exec_command(oneshot_command(framed))
            return collect(
                channel, framed, deadline=deadline, kill_group=self._kill_group, on_start=on_start
            )
        except ShellBroken as exc:
            rc = channel.recv_exit_status() if channel.exit_status_ready() else LOST_RC
            return Outcome(rc if rc >= 0 else LOST_RC, exc.stdout, exc.stderr)
        finally:
            channel.close()

    def _kill_group(self, pgid: int, grace: float = 2.0) -> None:
        """Kill a timed-out command's process group: TERM, then KILL after ``grace`` s if
        any member lives on. Runs on its own exec channel (the command's shell is blocked
        waiting for it) in a thread, so the caller sees the command end as soon as it does."""
        steps = max(1, int(grace * 10))
        script = (
            f"{_GROUP_ALIVE}g={pgid}\n"
            'kill -TERM -- "-$g" 2>/dev/null || exit 0\n'
            f"i=0; while [ $i -lt {steps} ] && _alive $g; do sleep 0.1; i=$((i + 1)); done\n"
            '_alive $g && kill -KILL -- "-$g" 2>/dev/null\n'
            "exit 0\n"
        )
        threading.Thread(
            target=self._exec_quietly, args=(script, f"kill process group {pgid}"), daemon=True
        ).start()

    def _exec_quietly(self, script: str, what: str) -> None:
        """Run a housekeeping script on an exec channel; failures are only logged."""
        try:
            channel = self._transport().open_session(timeout=self.spec.connect_timeout)
            try:
                channel.exec_command(script)
                channel.recv_exit_status()
            finally:
                channel.close()
        except Exception as exc:
            log.warning("%s: could not %s: %s", self.host, what, exc)

    def interrupt(self) -> None:
        """Kill every foreground command in flight (Ctrl-C: teardown must not wait for them).
        Their shells survive and report the commands as killed."""
        with self._inflight_lock:
            groups = sorted(set(self._inflight.values()))
        if not groups:
            return
        targets = " ".join(f"-{g}" for g in groups if g > 0)
        self._exec_quietly(f"kill -KILL -- {targets} 2>/dev/null; exit 0", "interrupt commands")

    def _check(self, result: CommandResult, what: str) -> CommandResult:
        if result.rc != 0:
            detail = (result.stderr or result.stdout).strip()
            raise TransportError(f"host {self.host}: {what} failed (rc={result.rc}): {detail}")
        return result

    # -- background processes -------------------------------------------------------------

    def start(
        self, spec: BackgroundSpec, *, critical: bool = False, tier: int = 1
    ) -> ProcessRecord:
        """``setsid nohup bash -c CMD > LOG 2>&1 < /dev/null &``: a new session, so the process
        outlives the channel and its group (pgid = pid) can be signalled as a whole."""
        log_path = spec.log
        if spec.cwd and not posixpath.isabs(log_path) and not log_path.startswith("~"):
            log_path = posixpath.join(spec.cwd, log_path)
        quoted_log = shell_path(log_path)
        script = (
            f'(umask 077 && mkdir -p -- "$(dirname -- {quoted_log})" && : >>{quoted_log}) || exit 1\n'  # private log
            f"setsid nohup bash -c {shlex.quote(spec.cmd)} >{quoted_log} 2>&1 </dev/null &\n"
            "echo $!"
        )
        result = self._check(
            self.run(script, env=spec.env, cwd=spec.cwd, timeout=60), f"starting {spec.name}"
        )
        try:
            pid = int(result.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise TransportError(
                f"host {self.host}: starting {spec.name}: no pid in {result.stdout!r}"
            ) from None
        return ProcessRecord(
            host=self.host,
            name=spec.name,
            log=log_path,
            transport=self.kind,
            handle={"pid": pid, "pgid": pid},
            critical=critical,
            tier=tier,
            started_at=time.time(),
        )

    def alive(self, proc: ProcessRecord) -> bool:
        """The main process exists and is not a zombie (a parent that never reaps would keep
        ``kill -0`` succeeding after death)."""
        pid = int(proc.handle["pid"])
        script = (
            f"kill -0 {pid} 2>/dev/null || exit 1\n"
            f"[ -r /proc/{pid}/status ] || exit 0\n"
            "while read -r k v _; do\n"
            '  [ "$k" = State: ] || continue\n'
            '  [ "$v" = Z ] && exit 1\n'
            "  exit 0\n"
            f"done </proc/{pid}/status\n"
        )
        return self.run(script, timeout=30).rc == 0

    def stop(self, proc: ProcessRecord, *, grace: float = 10.0) -> bool:
        """SIGTERM to the process group, wait up to ``grace`` s, then SIGKILL. One remote
        script, so it costs one round trip however long the wait."""
        pgid = int(proc.handle.get("pgid", proc.handle["pid"]))
        steps = max(1, int(grace * 10))
        script = (
            f"{_GROUP_ALIVE}g={pgid}\n"
            "_alive $g || { echo 0; exit 0; }\n"
            'kill -TERM -- "-$g" 2>/dev/null\n'
            f"i=0; while [ $i -lt {steps} ] && _alive $g; do sleep 0.1; i=$((i + 1)); done\n"
            "if _alive $g; then\n"
            '  kill -KILL -- "-$g" 2>/dev/null\n'
            "  i=0; while [ $i -lt 50 ] && _alive $g; do sleep 0.1; i=$((i + 1)); done\n"
            "fi\n"
            "echo 1\n"
        )
        result = self._check(self.run(script, timeout=grace + 30), f"stopping {proc.label}")
        return result.stdout.strip().endswith("1")

    # -- files ------------------------------------------------------------------------

    def _sftp_client(self) -> paramiko.SFTPClient:
        """The host's SFTP session (caller holds ``_sftp_lock``)."""
        t = self._transport()
        channel = self._sftp.get_channel() if self._sftp is not None else None
        if channel is None or channel.closed:
            import paramiko

            try:
                self._sftp = paramiko.SFTPClient.from_transport(t)
            except Exception as exc:
                raise TransportError(f"host {self.host}: cannot start SFTP: {exc}") from exc
            if self._sftp is None:
                raise TransportError(f"host {self.host}: cannot start SFTP")
        return self._sftp

    def put(self, data: bytes, dest: str, *, mode: int | None = None) -> None:
        """Write ``data`` to ``dest`` atomically (a temporary name, then rename), creating
        the parent directory first."""
        path = remote_path(dest)
        parent = posixpath.dirname(path)
        if parent:
            self._check(self.run(f"umask 077 && mkdir -p -- {shlex.quote(parent)}", timeout=60), f"mkdir {parent}")
        tmp = f"{path}.smlplay-{secrets.token_hex(4)}"
        with self._sftp_lock:
            sftp = self._sftp_client()
            try:
                sftp.putfo(io.BytesIO(data), tmp, file_size=len(data))
                if mode is not None:
                    sftp.chmod(tmp, mode)
                sftp.posix_rename(tmp, path)
            except OSError as exc:
                try:
                    sftp.remove(tmp)
                except OSError:
                    pass
                raise TransportError(f"host {self.host}: cannot write {dest}: {exc}") from exc

    def read(self, path: str) -> bytes:
        """The file's bytes. A missing file raises ``FileNotFoundError``, as locally."""
        with self._sftp_lock:
            sftp = self._sftp_client()
            with sftp.open(remote_path(path), "rb") as f:
                f.prefetch()
                return f.read()

    def tail(self, path: str, lines: int = 50) -> str:
        """The last lines of a (log) file; empty if it cannot be read."""
        result = self.run(["tail", "-n", str(int(lines)), "--", remote_path(path)], timeout=60)
        return result.stdout if result.rc == 0 else ""

    # -- TCP --------------------------------------------------------------------------

    def connect_tcp(self, address: str, port: int, timeout: float) -> Connection:
        """A TCP stream opened *by the SSH server* (a ``direct-tcpip`` channel, as
        ``ssh -W``/``-L`` do): health probes use it to reach ports that only this host can
        see, such as a server on a compute node's private network or on its loopback.

        A refused or unreachable port raises ``ConnectionRefusedError`` (an ``OSError``, as a
        local socket would); a server that forbids forwarding (``AllowTcpForwarding no``)
        raises :class:`TransportError`.
        """
        import paramiko

        t = self._transport()
        try:
            channel = t.open_channel(
                "direct-tcpip", (address, port), ("127.0.0.1", 0), timeout=timeout
            )
        except paramiko.ChannelException as exc:
            if exc.code == 1:  # SSH_OPEN_ADMINISTRATIVELY_PROHIBITED
                raise TransportError(
                    f"host {self.host}: the SSH server refuses TCP forwarding to "
                    f"{address}:{port} ({exc.text})",
                    hint="enable AllowTcpForwarding on that sshd, or probe with a command "
                    "(curl) instead of a TCP/HTTP check",
                ) from None
            raise ConnectionRefusedError(f"{address}:{port} from {self.host}: {exc.text}") from None
        except paramiko.SSHException as exc:
            if "timeout" in str(exc).lower() or "timed out" in str(exc).lower():
                raise TimeoutError(f"{address}:{port} from {self.host}: {exc}") from None
            raise ConnectionError(f"{address}:{port} from {self.host}: {exc}") from None
        channel.settimeout(timeout)
        return channel


def connect_all(
    specs: Iterable[SshHostSpec], *, max_workers: int = 16
) -> dict[str, SshTransport | TransportError]:
    """Open connections to many hosts in parallel (their handshakes overlap).

    Returns each host's connected transport, or the error it failed with, so one
    unreachable host neither hides the others nor stops them from running.
    """
    spec_list = list(specs)
    if not spec_list:
        return {}

    def one(spec: SshHostSpec) -> SshTransport | TransportError:
        transport = SshTransport(spec)
        try:
            transport.connect()
            # Open the first shell too, so the first task pays no login-shell start.
            shell = transport._acquire()
            if shell is not None:
                transport._release(shell)
        except TransportError as exc:
            transport.close()
            return exc
        return transport

    with ThreadPoolExecutor(max_workers=min(max_workers, len(spec_list))) as pool:
        results = list(pool.map(one, spec_list))
    return {spec.name: result for spec, result in zip(spec_list, results, strict=True)}
