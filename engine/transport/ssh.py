"""SSH transport: one pooled paramiko connection per host, commands through persistent shells.

What a task costs over SSH decides the design (``reference/ssh-task-cost.md``): a new exec
channel per command makes sshd start the login shell, and cluster rc files make that
0.1-1 s; a bash kept open per host and fed through stdin costs one round trip. So:

- one connection per host, opened once (with ``TCP_NODELAY``, and prompt ACKs until the
  first session starts: without them a channel stalls ~40 ms on Nagle against delayed ACK,
  see :mod:`.ssh_connect`), through jump hosts when configured;
- foreground commands run in a small pool of persistent remote shells (grown on demand up
  to ``ssh_max_shells``, so ``run`` from the executor's threads and ``alive`` from the
  monitor thread never wait on each other); framing in :mod:`engine.transport._shell`;
- if a shell breaks before a command began, the command goes over a one-shot exec channel
  and the shell is replaced on next use;
- background processes are ``setsid nohup`` children of the remote host, not of any channel,
  so they outlive the connection and another process (``smlplay down``) can stop them;
- files go over one reused SFTP session (:mod:`.ssh_files`); TCP probes over
  ``direct-tcpip`` channels.

Host keys are checked strictly by default against ``~/.ssh/known_hosts``,
``/etc/ssh/ssh_known_hosts`` and ``ssh_known_hosts``; every connection failure becomes an
:class:`~engine.errors.UnreachableError` that names the inventory host, the address and the
cause. paramiko is imported lazily: ``smlplay --help`` and local-only runs never pay for it.

A host's settings (``ssh_*`` variables, ``~/.ssh/config``) are :mod:`.ssh_hosts`; logging in
(host keys, jump hosts, retries, errors) is :mod:`.ssh_connect`; files are :mod:`.ssh_files`,
TCP streams :mod:`.ssh_tcp`, the pool of persistent shells :mod:`.ssh_pool`; this module is
the transport: connection, commands, processes.
"""

from __future__ import annotations

import logging
import posixpath
import secrets
import shlex
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

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
from engine.transport.base import BASH_C, BackgroundSpec, CommandResult, Connection, ProcessRecord
from engine.transport.ssh_connect import _connect_chain, _Retry, session_started
from engine.transport.ssh_files import SftpFiles
from engine.transport.ssh_hosts import SshHostSpec
from engine.transport.ssh_pool import ShellPool
from engine.transport.ssh_tcp import open_tcp

if TYPE_CHECKING:
    import paramiko

log = logging.getLogger(__name__)
# paramiko logs every refused direct-tcpip channel ("Secsh channel N open FAILED") at ERROR;
# a health probe polling a port that is not up yet is expected to be refused, and real
# connection failures reach the user as TransportError/UnreachableError with the cause.
logging.getLogger("paramiko.transport").setLevel(logging.CRITICAL)


# Whether a process group has a live (non-zombie) member. Zombies matter: where PID 1 does
# not reap orphans, `kill -0` keeps succeeding for processes long dead.
_GROUP_ALIVE = """_alive() {
  kill -0 -- "-$1" 2>/dev/null || return 1
  command -v ps >/dev/null || return 0
  ps -e -o pgid= -o stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ {f = 1} END {exit !f}'
}
"""


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
        self._shells = ShellPool(
            spec.name,
            spec.max_shells,
            self._open_shell,
            self._connected,
        )
        self._files = SftpFiles(spec.name, self._transport)
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

    def _open_shell(self) -> RemoteShell:
        shell = RemoteShell.open(self._transport(), timeout=self.spec.connect_timeout, generation=self._generation)
        session_started(self._clients)  # sshd writes without Nagle from now on (ssh_connect)
        return shell

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

    def _connected(self) -> bool:
        t = self._clients[-1].get_transport() if self._clients else None
        return t is not None and t.is_active()

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
        self._shells.drop_idle()
        self._files.drop()
        for client in reversed(self._clients):
            client.close()
        self._clients = []

    def close(self) -> None:
        with self._connect_lock:
            self._closed = True
            self._drop_connection()
        self._shells.wake_all()

    def __enter__(self) -> SshTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
            shell = self._shells.acquire()
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
                    self._shells.release(shell, self._generation if not self._closed else -1)
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
        """``setsid nohup bash --norc -c CMD > LOG 2>&1 < /dev/null &``: a new session, so the
        process outlives the channel and its group (pgid = pid) can be signalled as a whole.
        ``--norc``: see :data:`~engine.transport.base.BASH_C` (sshd sets ``SSH_CLIENT``)."""
        log_path = spec.log
        if spec.cwd and not posixpath.isabs(log_path) and not log_path.startswith("~"):
            log_path = posixpath.join(spec.cwd, log_path)
        quoted_log = shell_path(log_path)
        script = (
            f'(umask 077 && mkdir -p -- "$(dirname -- {quoted_log})" && : >>{quoted_log}) || exit 1\n'  # private log
            f"setsid nohup {shlex.join(BASH_C)} {shlex.quote(spec.cmd)} >{quoted_log} 2>&1 </dev/null &\n"
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

    def put(self, data: bytes, dest: str, *, mode: int | None = None) -> None:
        """Write ``data`` to ``dest`` atomically (a temporary name, then rename), creating
        the parent directory first."""
        path = remote_path(dest)
        parent = posixpath.dirname(path)
        if parent:
            self._check(self.run(f"umask 077 && mkdir -p -- {shlex.quote(parent)}", timeout=60), f"mkdir {parent}")
        tmp = f"{path}.smlplay-{secrets.token_hex(4)}"
        self._files.write(data, path, tmp, mode=mode, shown_as=dest)

    def read(self, path: str) -> bytes:
        """The file's bytes. A missing file raises ``FileNotFoundError``, as locally."""
        return self._files.read(path)

    def tail(self, path: str, lines: int = 50) -> str:
        """The last lines of a (log) file; empty if it cannot be read."""
        result = self.run(["tail", "-n", str(int(lines)), "--", remote_path(path)], timeout=60)
        return result.stdout if result.rc == 0 else ""

    # -- TCP --------------------------------------------------------------------------

    def connect_tcp(self, address: str, port: int, timeout: float) -> Connection:
        """A TCP stream opened *by the SSH server* (``direct-tcpip``, as ``ssh -W`` does):
        health probes reach ports only this host can see (:func:`.ssh_tcp.open_tcp`)."""
        return open_tcp(self._transport(), self.host, address, port, timeout)


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
            shell = transport._shells.acquire()
            if shell is not None:
                transport._shells.release(shell, transport._generation)
        except TransportError as exc:
            transport.close()
            return exc
        return transport

    with ThreadPoolExecutor(max_workers=min(max_workers, len(spec_list))) as pool:
        results = list(pool.map(one, spec_list))
    return {spec.name: result for spec, result in zip(spec_list, results, strict=True)}
