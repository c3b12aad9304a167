"""A remote bash that runs framed commands: the fast path of the ssh transport.

Why: every new SSH exec channel makes sshd start the user's login shell, which on clusters
reads ``~/.bashrc`` (modules, conda, site profiles: 0.1-1 s). A bash kept open per host and
fed through stdin pays that once; a command then costs one round trip (see
``reference/ssh-task-cost.md``).

How one command is framed (all on one line written to the shell's stdin)::

    (printf 'TOKEN B %d\\n' "$BASHPID"; exec </dev/null;
     cd -- DIR || exit 1; export K=V; eval 'SCRIPT')
    printf '\\nTOKEN E %d\\n' "$?"; printf '\\nTOKEN E\\n' >&2

- ``TOKEN`` is fresh and random per command, so no output can fake a marker, and junk a
  previous command's orphans print late to stdout is skipped (it precedes the begin marker).
- The command runs in a subshell: ``cd``, ``export``, ``umask``, ``exit`` and traps never
  reach the next command. ``eval`` of a single-quoted string confines syntax errors to it.
- stdout and stderr travel on the channel's two SSH streams; each gets its own end marker,
  so they stay apart. The end marker starts with a newline the shell adds, which is
  stripped again: output without a trailing newline (or with arbitrary bytes) comes back
  unchanged. Only stdout has a begin marker (it carries the process group): every marker
  is one more SSH packet to decrypt and dispatch in Python, ~20% of a trivial command's
  cost, and stderr's would only skip what a previous command's orphans print to stderr
  between two commands (what they print during one lands in it either way).
- The shell runs with ``set -m`` so the subshell is its own process group (pgid = the pid
  in the begin marker); a timeout kills that group from a second channel and the shell
  itself survives.
- The command's stdin is ``/dev/null`` (or the given bytes, base64-decoded on the remote
  side), never the shell's own stdin, which carries the next commands.

The same framing runs as a one-shot ``bash -c`` on an exec channel when no persistent shell
can be kept, so both paths share one parser.
"""

from __future__ import annotations

import base64
import re
import secrets
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import paramiko

# The shell started on the remote side. `exec` replaces the login shell (which has already
# read the user's rc files, so exported settings such as PATH or module environment are
# inherited); --norc/--noprofile keep the inner bash from reading them a second time.
SHELL_COMMAND = "exec bash --noprofile --norc"

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_RECV = 65536
_SLICE = 0.2  # longest blocking read before both streams are looked at again

# rc reported for a command that hit its timeout (as coreutils `timeout` and the local
# transport do), and when the shell died under a running command (as `ssh` does).
TIMEOUT_RC = 124
LOST_RC = 255


class ShellBroken(Exception):
    """The channel closed or failed. ``started`` tells whether the command began running
    (its begin marker was seen), i.e. whether running it again elsewhere is safe."""

    def __init__(
        self,
        message: str,
        *,
        started: bool,
        pgid: int = -1,
        stdout: bytes = b"",
        stderr: bytes = b"",
    ):
        super().__init__(message)
        self.started = started
        self.pgid = pgid
        self.stdout = stdout
        self.stderr = stderr


@dataclass(frozen=True)
class Framed:
    """One command ready to send: the line for the shell and the token its markers carry."""

    token: bytes
    line: bytes


@dataclass(frozen=True)
class Outcome:
    rc: int
    stdout: bytes
    stderr: bytes
    timed_out: bool = False
    shell_ok: bool = True  # False: the shell could not be brought back to a known state


def remote_path(path: str) -> str:
    """``~`` and ``~/x`` as paths relative to the login directory (where SFTP and the shell
    start), since neither quoting nor SFTP expands a tilde."""
    if path == "~":
        return "."
    if path.startswith("~/"):
        return path[2:] or "."
    return path


def shell_path(path: str) -> str:
    """A path quoted for bash, keeping a leading ``~/`` meaningful (as ``"$HOME"/...``)."""
    if path == "~" or path.startswith("~/"):
        rest = path[2:]
        return '"$HOME"' + (("/" + shlex.quote(rest)) if rest else "")
    return shlex.quote(path)


def frame(
    script: str,
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    stdin: bytes | None = None,
) -> Framed:
    """Wrap a bash script so its rc, stdout and stderr can be read back apart (see module)."""
    if "\0" in script:
        raise ValueError("a command cannot contain a NUL byte")
    token = "__smlplay_" + secrets.token_hex(12)
    parts = [
        f"printf '{token} B %d\\n' \"$BASHPID\"",
    ]
    if stdin is None:
        parts.append("exec </dev/null")
    else:
        encoded = base64.b64encode(stdin).decode("ascii")
        parts.append(f"exec < <(base64 -d <<<'{encoded}')")
    if cwd:
        parts.append(f"cd -- {shell_path(cwd)} || exit 1")
    for name, value in (env or {}).items():
        if not _ENV_NAME.match(name):
            raise ValueError(f"invalid environment variable name {name!r}")
        if "\0" in str(value):
            raise ValueError(f"environment variable {name} contains a NUL byte")
        parts.append(f"export {name}={shlex.quote(str(value))}")
    parts.append(f"eval {shlex.quote(script)}")
    line = (
        f"({'; '.join(parts)}); printf '\\n{token} E %d\\n' \"$?\"; printf '\\n{token} E\\n' >&2\n"
    )
    return Framed(token=token.encode("ascii"), line=line.encode("utf-8"))


def oneshot_command(framed: Framed) -> str:
    """The exec-channel form of a framed command (the fallback path)."""
    script = "set -m 2>/dev/null\n" + framed.line.decode("utf-8")
    return "exec bash --noprofile --norc -c " + shlex.quote(script)


class _Stream:
    """Bytes of one SSH stream, scanned incrementally for the begin and end markers (no
    ``begin``: the body starts with the first byte)."""

    def __init__(self, begin: bytes | None, end: bytes) -> None:
        self.buf = bytearray()
        self._begin = begin or b""
        self._end = end
        self._scan = 0
        self.body_start = -1 if begin else 0  # index just past the begin marker line
        self.begin_info = b""  # what follows the begin marker on its line (the pid)
        self.end_at = -1  # index of the end marker
        self.end_info = b""  # what follows the end marker on its line (the rc)

    def feed(self, data: bytes) -> None:
        self.buf += data
        if self.body_start < 0:
            i = self.buf.find(self._begin, max(0, self._scan - len(self._begin)))
            if i < 0:
                self._scan = len(self.buf)
                return
            nl = self.buf.find(b"\n", i + len(self._begin))
            if nl < 0:
                self._scan = i
                return
            self.begin_info = bytes(self.buf[i + len(self._begin) : nl])
            self.body_start = nl + 1
            self._scan = self.body_start
        if self.end_at < 0:
            i = self.buf.find(self._end, max(self.body_start, self._scan - len(self._end)))
            if i < 0:
                self._scan = len(self.buf)
                return
            nl = self.buf.find(b"\n", i + len(self._end))
            if nl < 0:
                self._scan = i
                return
            self.end_info = bytes(self.buf[i + len(self._end) : nl])
            self.end_at = i

    @property
    def started(self) -> bool:
        return self.body_start >= 0

    @property
    def done(self) -> bool:
        return self.end_at >= 0

    def body(self) -> bytes:
        if self.body_start < 0:
            return b""
        stop = self.end_at if self.end_at >= 0 else len(self.buf)
        return bytes(self.buf[self.body_start : stop])


def collect(
    channel: paramiko.Channel,
    framed: Framed,
    *,
    deadline: float | None,
    kill_group: Callable[[int], None],
    kill_wait: float = 5.0,
    on_start: Callable[[int], None] | None = None,
) -> Outcome:
    """Read one framed command's output from ``channel`` until both end markers arrive.

    On ``deadline`` the command's process group is handed to ``kill_group``, which must act
    through another channel (this one's shell is busy waiting for the command) and must not
    block; the markers are then awaited ``kill_wait`` seconds more. ``on_start`` gets the
    process group as soon as it is known (so the command can be interrupted). Raises
    :class:`ShellBroken` when the channel ends before the markers. (A shell killed under a
    command is noticed when the channel's pipes close, i.e. when whatever the command left
    running exits too: paramiko ignores the ``exit-signal`` that would tell earlier.)
    """
    tok = framed.token
    out = _Stream(tok + b" B", b"\n" + tok + b" E")
    err = _Stream(None, b"\n" + tok + b" E")
    timed_out = False
    hard_deadline: float | None = None

    def broken(why: str) -> ShellBroken:
        return ShellBroken(
            why,
            started=out.started,
            pgid=_int(out.begin_info),
            stdout=out.body(),
            stderr=err.body(),
        )

    def feed_out(chunk: bytes) -> None:
        started = out.started
        out.feed(chunk)
        if on_start is not None and not started and out.started:
            on_start(_int(out.begin_info))

    while True:
        while channel.recv_ready():
            feed_out(channel.recv(_RECV))
        while channel.recv_stderr_ready():
            err.feed(channel.recv_stderr(_RECV))
        if out.done and err.done:
            break
        if channel.eof_received or channel.closed:
            if channel.recv_ready() or channel.recv_stderr_ready():
                continue  # data raced in with the EOF: read it first
            raise broken("the remote shell exited")
        now = time.monotonic()
        if deadline is not None and now >= deadline and not timed_out:
            timed_out = True
            hard_deadline = now + kill_wait
            pid = _int(out.begin_info)
            if pid > 0:
                kill_group(pid)
        if hard_deadline is not None and now >= hard_deadline:
            return Outcome(TIMEOUT_RC, out.body(), err.body(), timed_out=True, shell_ok=False)
        limit = hard_deadline if hard_deadline is not None else deadline
        wait = _SLICE if limit is None else min(_SLICE, max(0.001, limit - now))
        # Block on the stream whose end marker is still due (stdout's comes first). A
        # paramiko read waits on a condition variable; its fileno()/select emulation can
        # lose a wakeup when both streams get data at once, so it is not used. The slice
        # bounds how long unread stderr can hold up the shared SSH window.
        channel.settimeout(wait)
        try:
            if not out.done:
                feed_out(channel.recv(_RECV))
            else:
                err.feed(channel.recv_stderr(_RECV))
        except TimeoutError:
            pass
    rc = TIMEOUT_RC if timed_out else _int(out.end_info, default=LOST_RC)
    return Outcome(rc, out.body(), err.body(), timed_out=timed_out)


def _int(text: bytes, default: int = -1) -> int:
    try:
        return int(text.strip())
    except ValueError:
        return default


class RemoteShell:
    """One persistent ``bash`` on one channel; used by one thread at a time."""

    def __init__(self, channel: paramiko.Channel, generation: int) -> None:
        self.channel = channel
        self.generation = generation  # the connection it belongs to (reconnects bump it)
        self.healthy = True

    @classmethod
    def open(cls, transport: paramiko.Transport, *, timeout: float, generation: int) -> RemoteShell:
        """Start the shell and wait until it answers (discarding whatever rc files print)."""
        channel = transport.open_session(timeout=timeout)
        try:
            channel.exec_command(SHELL_COMMAND)
            ready = "__smlplay_ready_" + secrets.token_hex(8)
            channel.sendall(
                f"set -m 2>/dev/null; printf '{ready} B 0\\n\\n{ready} E 0\\n'; "
                f"printf '\\n{ready} E\\n' >&2\n".encode()
            )
            outcome = collect(
                channel,
                Framed(ready.encode(), b""),
                deadline=time.monotonic() + timeout,
                kill_group=lambda _pid: None,
                kill_wait=0.0,
            )
            if outcome.timed_out or outcome.rc != 0:
                raise ShellBroken("the remote shell did not answer", started=False)
        except BaseException:
            channel.close()
            raise
        return cls(channel, generation)

    def execute(
        self,
        framed: Framed,
        *,
        deadline: float | None,
        kill_group: Callable[[int], None],
        on_start: Callable[[int], None] | None = None,
    ) -> Outcome:
        try:
            self.channel.sendall(framed.line)
        except Exception as exc:  # socket.error, EOFError, SSHException: the channel is gone
            self.healthy = False
            raise ShellBroken(f"cannot write to the remote shell: {exc}", started=False) from exc
        try:
            outcome = collect(
                self.channel, framed, deadline=deadline, kill_group=kill_group, on_start=on_start
            )
        except ShellBroken:
            self.healthy = False
            raise
        if not outcome.shell_ok:
            self.healthy = False
        return outcome

    def close(self) -> None:
        self.healthy = False
        try:
            self.channel.close()
        except Exception:
            pass
