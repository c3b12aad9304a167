"""The local transport: commands run as subprocesses of the engine on this machine.

Background processes get their own session (and so their own process group) so that a
stop reaches everything they spawned, and so that a Ctrl-C in the engine's terminal does not
hit them before teardown decides the order.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from engine.runs import private_mkdir, private_opener
from engine.transport.base import BASH_C, BackgroundSpec, CommandResult, Connection, ProcessRecord


class LocalTransport:
    kind = "local"

    def __init__(self, host: str = "localhost") -> None:
        self.host = host
        # Popen objects of the processes we started, so their exit status stays readable
        # (and they are reaped); processes of another run are checked by pid.
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._foreground: set[subprocess.Popen[bytes]] = set()

    def run(
        self,
        cmd: str | Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        timeout: float | None = None,
        stdin: bytes | None = None,
    ) -> CommandResult:
        argv = [*BASH_C, cmd] if isinstance(cmd, str) else list(cmd)
        full_env = {**os.environ, **env} if env else None
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=cwd,
                env=full_env,
                start_new_session=True,  # a timeout kills the whole command, children included
            )
        except FileNotFoundError as exc:
            return CommandResult(127, "", f"{exc.filename}: command not found\n", time.monotonic() - start)
        except OSError as exc:
            return CommandResult(126, "", f"{exc}\n", time.monotonic() - start)
        self._foreground.add(proc)
        try:
            out, err = proc.communicate(stdin, timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            timed_out = True
        except BaseException:
            _kill_group(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        finally:
            self._foreground.discard(proc)
        return CommandResult(
            rc=proc.returncode if not timed_out else 124,
            stdout=out.decode("utf-8", "replace"),
            stderr=err.decode("utf-8", "replace"),
            elapsed=time.monotonic() - start,
            timed_out=timed_out,
        )

    def start(self, spec: BackgroundSpec, *, critical: bool = False, tier: int = 1) -> ProcessRecord:
        log = Path(spec.log)
        private_mkdir(log.parent)  # the log may hold secrets: new directories 0700, the file 0600
        with open(log, "ab", opener=private_opener) as out:  # 0600: it may hold secrets
            proc = subprocess.Popen(
                [*BASH_C, spec.cmd],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=spec.cwd,
                env={**os.environ, **spec.env},
                start_new_session=True,
            )
        self._children[proc.pid] = proc
        return ProcessRecord(
            host=self.host,
            name=spec.name,
            log=str(log),
            transport=self.kind,
            handle={"pid": proc.pid, "pgid": proc.pid, "boot": _boot_id()},
            critical=critical,
            tier=tier,
            started_at=time.time(),
        )

    def alive(self, proc: ProcessRecord) -> bool:
        pid = int(proc.handle["pid"])
        child = self._children.get(pid)
        if child is not None:
            return child.poll() is None
        return _pid_alive(pid)

    def exit_code(self, proc: ProcessRecord) -> int | None:
        child = self._children.get(int(proc.handle["pid"]))
        return child.poll() if child is not None else None

    def stop(self, proc: ProcessRecord, *, grace: float = 10.0) -> bool:
        pid, pgid = int(proc.handle["pid"]), int(proc.handle.get("pgid", proc.handle["pid"]))
        was_running = self.alive(proc) or _group_alive(pgid)
        if not was_running:
            return False
        _kill_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not self.alive(proc) and not _group_alive(pgid):
                return True
            time.sleep(0.05)
        _kill_group(pgid, signal.SIGKILL)
        child = self._children.get(pid)
        if child is not None:
            try:
                child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        return True

    def put(self, data: bytes, dest: str, *, mode: int | None = None) -> None:
        path = Path(dest)
        private_mkdir(path.parent)  # directories the engine creates are 0700 (a run record's are)
        tmp = path.with_name(f".{path.name}.smlplay-tmp")
        tmp.write_bytes(data)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)

    def read(self, path: str) -> bytes:
        return Path(path).read_bytes()

    def tail(self, path: str, lines: int = 50) -> str:
        try:
            with open(path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - 64 * 1024))
                data = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(data.splitlines()[-lines:])

    def connect_tcp(self, address: str, port: int, timeout: float) -> Connection:
        return socket.create_connection((address, port), timeout=timeout)

    def interrupt(self) -> None:
        """Kill foreground commands in flight (their whole process group)."""
        for proc in list(self._foreground):
            _kill_group(proc.pid, signal.SIGKILL)

    def close(self) -> None:
        pass


def _kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return True


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""
