"""The persistent remote shells of one SSH host: a small pool, grown on demand.

``run`` from the executor's threads and ``alive`` from the monitor thread each take a shell
of their own, so they never wait on each other; the pool grows up to ``ssh_max_shells``.
Two ways it gives up on growing, both learnt from real servers:

- a shell that starts but never answers means no usable bash on the host: the pool stops
  handing out shells and every command takes one exec channel (``acquire`` returns None);
- a refused channel on a live connection with shells already open is ``MaxSessions`` on
  the server (paramiko does not always say ``ChannelException``): the pool keeps the shells
  it has and makes that its limit.

A shell belongs to the connection it was opened on (its *generation*): after a reconnect,
shells of the old connection are closed when released instead of being reused.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from engine.errors import TransportError
from engine.transport import _paramiko
from engine.transport._shell import RemoteShell, ShellBroken

log = logging.getLogger(__name__)


class ShellPool:
    """Idle shells of one host, and how many are open (idle, in use or being opened)."""

    def __init__(
        self,
        host: str,
        max_shells: int,
        open_shell: Callable[[], RemoteShell],
        connected: Callable[[], bool],
    ) -> None:
        self.host = host
        self._open_shell = open_shell  # connects first when needed; may raise TransportError
        self._connected = connected  # whether the connection is up (a refusal, not a loss)
        self._cond = threading.Condition()
        self._idle: list[RemoteShell] = []
        self._open = 0
        self._max = max_shells
        self._persistent = True  # False: every command over its own exec channel

    @property
    def open_count(self) -> int:
        return self._open

    @property
    def idle(self) -> list[RemoteShell]:
        """The idle shells (a copy): for tests that break one on purpose."""
        with self._cond:
            return list(self._idle)

    def acquire(self) -> RemoteShell | None:
        """An idle shell, a new one (up to the limit), or None: use a one-shot channel."""
        while True:
            with self._cond:
                while True:
                    if not self._persistent:
                        return None
                    if self._idle:
                        return self._idle.pop()
                    if self._open < self._max:
                        self._open += 1
                        break
                    self._cond.wait()
            try:
                return self._open_shell()
            except TransportError:  # unreachable, or closed meanwhile
                self._forget_slot()
                raise
            except ShellBroken as exc:
                log.warning(
                    "%s: no persistent shell (%s); using one channel per command", self.host, exc
                )
                with self._cond:
                    self._open -= 1
                    self._persistent = False
                    self._cond.notify_all()
                return None
            except Exception as exc:
                self._settle_for_fewer(exc)

    def _settle_for_fewer(self, exc: Exception) -> None:
        """A shell could not be opened: keep the open ones as the limit if the server
        refused one more, else raise."""
        _paramiko.load()  # without invoke
        import paramiko

        with self._cond:
            self._open -= 1
            self._cond.notify()
            refused = isinstance(exc, paramiko.SSHException) and self._connected()
            if not refused or self._open == 0:
                raise TransportError(
                    f"host {self.host}: cannot open a session channel: {exc}"
                ) from exc
            self._max = self._open
            log.info(
                "%s: server refused shell %d (%s); keeping %d",
                self.host,
                self._open + 1,
                exc,
                self._open,
            )

    def release(self, shell: RemoteShell, generation: int) -> None:
        """Give a shell back: kept if healthy and of the current connection, else closed."""
        if shell.healthy and shell.generation == generation:
            with self._cond:
                self._idle.append(shell)
                self._cond.notify()
            return
        shell.close()
        self._forget_slot()

    def drop_idle(self) -> None:
        """Close the idle shells (their connection is gone)."""
        with self._cond:
            stale, self._idle = self._idle, []
            self._open -= len(stale)
            self._cond.notify_all()
        for shell in stale:
            shell.close()

    def wake_all(self) -> None:
        """Wake threads waiting for a shell (the transport closed: they get an error)."""
        with self._cond:
            self._cond.notify_all()

    def _forget_slot(self) -> None:
        with self._cond:
            self._open -= 1
            self._cond.notify()
