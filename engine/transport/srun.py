"""The srun transport: a compute node of an allocation, reached as ``srun`` steps.

Every command is one step of the holding job, pinned to the node::

    srun --jobid J --overlap --nodes 1 --ntasks 1 --nodelist NODE [container flags] bash --norc -c S

launched by the node's *gateway* transport (the login host over SSH, or local when the
engine runs on a login node or inside the job). Foreground commands go to one long-lived
shell step per node (``--job-name smlplay-shell``, see :mod:`engine.transport._stepshell`):
~6 ms a command instead of ~45 ms for a step of its own; a command arriving while that
shell is busy, or a node where it cannot start, gets its own step. Only stdout and rc are
parsed; srun's own notices ("Step created ...") go to stderr.

Background processes are *named* steps (``--job-name NAME.NODE``, output to the log with
``--output``, written by slurmstepd on the node). Their handle records the job, step id and
name, plus the srun client on the gateway. A stop is ``scancel --signal=TERM --ctld J.S``
(the server gets SIGTERM and can flush; signalling the srun client instead makes Slurm
SIGKILL the task), then ``scancel J.S`` after the grace period.

Timeouts: killing an srun client with SIGKILL leaves its step running, so a foreground
step runs under ``timeout -s TERM``: on expiry srun gets SIGTERM and cancels the step.

Health probes and ``connect_tcp`` run from the gateway (over its SSH connection when the
gateway is remote): compute nodes are often reachable only from the login host.

Container flags are read from the host's ``container`` variable at every step, because
``container-up`` sets them after the allocation exists.
"""

from __future__ import annotations

import base64
import logging
import math
import posixpath
import shlex
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from engine.errors import TransportError
from engine.slurm.commands import scancel, steps
from engine.slurm.runner import RunFn, transport_runner
from engine.slurm.srun import ContainerFlags, render, srun_argv
from engine.transport._stepshell import LOST_RC, PipeChannel, ShellGone, StepShell
from engine.transport.base import (
    BackgroundSpec,
    CommandResult,
    Connection,
    ProcessRecord,
    Transport,
)

__all__ = ["SrunTransport"]

log = logging.getLogger(__name__)

#: Extra seconds the gateway waits past a step's own timeout before killing srun itself.
_BACKSTOP = 15.0


class SrunTransport:
    kind = "srun"

    def __init__(
        self,
        host: str,
        *,
        node: str,
        job_id: str,
        gateway: Transport,
        container: Callable[[], ContainerFlags] = ContainerFlags,
        extra_args: Sequence[str] = (),
        persistent: bool = True,
    ) -> None:
        self.host = host
        self.node = node
        self.job_id = job_id
        self.gateway = gateway
        self._container = container
        self._extra_args = tuple(extra_args)
        self._run_slurm: RunFn = transport_runner(gateway, timeout=60.0)
        self._made_dirs: set[str] = set()
        self._lock = threading.Lock()
        self._shell: StepShell | None = None
        self._shell_key: tuple[str, ...] | None = None
        self._shell_lock = threading.Lock()
        self._persistent = persistent

    def bare(self) -> SrunTransport:
        """The same node without the container: for sidecars (exporters, vmagent) that run
        on the node itself, where a serving image would not have them."""
        return SrunTransport(self.host, node=self.node, job_id=self.job_id, gateway=self.gateway, extra_args=self._extra_args, persistent=False)

    # ---------------------------------------------------------------- foreground
    def argv(
        self,
        script: str,
        *,
        env: Mapping[str, str] | None = None,
        name: str | None = None,
        output: str | None = None,
        srun_options: Sequence[str] = (),
    ) -> list[str]:
        """The srun argv of one step on this node (what a dry-run shows); ``srun_options``
        (``--input=none``, ``--unbuffered``) go right after ``srun``."""
        argv = srun_argv(
            self.job_id,
            self.node,
            script,
            name=name,
            output=output,
            container=self._container(),
            env=env or {},
            extra_args=self._extra_args,
        )
        return [argv[0], *srun_options, *argv[1:]]

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
        # The node's shell step when it is free; a concurrent command (a log probe during a
        # task) takes a step of its own.
        if self._persistent and self._shell_lock.acquire(blocking=False):
            try:
                shell = self._shell_now()
                if shell is not None:
                    started = time.monotonic()
                    try:
                        rc, out, err, timed_out = shell.run(script, env=env, cwd=cwd, timeout=timeout, stdin=stdin)
                    except ShellGone as exc:
                        self._close_shell()
                        return CommandResult(LOST_RC, "", f"the shell step on node {self.node} ended: {exc}\n", time.monotonic() - started)
                    text = err.decode("utf-8", "replace") + (f"\ntimed out after {timeout:g}s\n" if timed_out else "")
                    return CommandResult(rc, out.decode("utf-8", "replace"), text, time.monotonic() - started, timed_out)
            finally:
                self._shell_lock.release()
        return self._step(script, env=env, cwd=cwd, timeout=timeout, stdin=stdin)

    # -- one shell step per node (see engine.transport._stepshell) -------------------------
    def _shell_now(self) -> StepShell | None:
        """The node's shell for the current container setting: opened on first use, and
        again when ``container`` changed (container-up runs after the allocation)."""
        if self.gateway.kind != "local" and not hasattr(self.gateway, "open_channel"):
            self._persistent = False  # a gateway that cannot hold a channel open
            return None
        argv = self.argv("exec bash --noprofile --norc", name="smlplay-shell", srun_options=["--unbuffered"])
        key = tuple(argv)
        if self._shell is not None and (self._shell_key != key or not self._shell.healthy):
            self._close_shell()
        if self._shell is None:
            channel: Any
            if self.gateway.kind == "local":
                channel = PipeChannel(argv)
            else:
                channel = self.gateway.open_channel(render(argv))  # type: ignore[attr-defined]
            try:
                self._shell = StepShell(channel)
            except (ShellGone, OSError) as exc:
                log.warning("node %s: no shell step (%s); one step per command", self.node, exc)
                self._persistent = False
                return None
            self._shell_key = key
        return self._shell

    def _close_shell(self) -> None:
        shell, self._shell = self._shell, None
        if shell is not None:
            shell.close()

    def interrupt(self) -> None:
        """Ctrl-C: end the shell step, and with it the command running in it."""
        self._close_shell()

    def _step(
        self,
        script: str,
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        timeout: float | None = None,
        stdin: bytes | None = None,
    ) -> CommandResult:
        """One command as a step of its own."""
        argv = self.argv(_in_dir(script, cwd), env=env, srun_options=["--input=none"] if stdin is None else [])
        if timeout is not None:
            argv = ["timeout", "-s", "TERM", "-k", "10", f"{max(1, math.ceil(timeout))}", *argv]
        result = self.gateway.run(argv, timeout=None if timeout is None else timeout + _BACKSTOP, stdin=stdin)
        if timeout is not None and result.rc == 124:
            return CommandResult(124, result.stdout, result.stderr + f"\ntimed out after {timeout:g}s\n", result.elapsed, True)
        return result

    # ---------------------------------------------------------------- background
    def start(self, spec: BackgroundSpec, *, critical: bool = False, tier: int = 1) -> ProcessRecord:
        self._ensure_dir(posixpath.dirname(spec.log))
        step_name = f"{spec.name}.{self.node}"
        argv = self.argv(_in_dir(spec.cmd, spec.cwd), env=spec.env, name=step_name, output=spec.log, srun_options=["--input=none"])
        client = self.gateway.start(
            BackgroundSpec(name=f"srun-{step_name}", cmd=render(argv), log=f"{spec.log}.srun"),
            critical=critical,
            tier=tier,
        )
        step_id = self._find_step(step_name, client, spec.log)
        return ProcessRecord(
            host=self.host,
            name=spec.name,
            log=spec.log,
            transport=self.kind,
            handle={
                "job_id": self.job_id,
                "step_id": step_id,
                "step": f"{self.job_id}.{step_id}",
                "step_name": step_name,
                "node": self.node,
                "client": client.to_dict(),
            },
            critical=critical,
            tier=tier,
            started_at=time.time(),
        )

    def _find_step(self, step_name: str, client: ProcessRecord, log: str, wait: float = 30.0) -> str:
        """The id Slurm gave the named step (srun returns before telling us)."""
        deadline = time.monotonic() + wait
        delay = 0.05
        while True:
            for step in steps(self._run_slurm, self.job_id):
                if step.name == step_name:
                    return step.step_id
            if not self.gateway.alive(client):
                detail = self.gateway.tail(client.log, 20) or self.gateway.tail(log, 20)
                raise TransportError(
                    f"srun step '{step_name}' on node {self.node} (job {self.job_id}) exited at once:\n{detail}"
                )
            if time.monotonic() > deadline:
                self.gateway.stop(client, grace=5)
                raise TransportError(f"srun step '{step_name}' did not appear in job {self.job_id} within {wait:g}s")
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def alive(self, proc: ProcessRecord) -> bool:
        # The srun client lives exactly as long as its step: cheap to check on the gateway.
        return self.gateway.alive(ProcessRecord.from_dict(proc.handle["client"]))

    def stop(self, proc: ProcessRecord, *, grace: float = 10.0) -> bool:
        client = ProcessRecord.from_dict(proc.handle["client"])
        job, step = str(proc.handle["job_id"]), str(proc.handle["step_id"])
        if not self.gateway.alive(client):
            return False
        scancel(self._run_slurm, job, step=step, signal="TERM", missing_ok=True)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and self.gateway.alive(client):
            time.sleep(0.1)
        if self.gateway.alive(client):
            scancel(self._run_slurm, job, step=step, missing_ok=True)  # SIGKILL
            self.gateway.stop(client, grace=10)
        return True

    # ---------------------------------------------------------------- files
    def _ensure_dir(self, directory: str) -> None:
        if not directory:
            return
        with self._lock:
            if directory in self._made_dirs:
                return
        # 0700: the process logs in it may hold secrets (Slurm creates the log file itself)
        result = self.run(f"umask 077 && mkdir -p {shlex.quote(directory)}", timeout=60)
        if result.rc != 0:
            raise TransportError(f"cannot create {directory} on node {self.node}: {result.stderr.strip()[-300:]}")
        with self._lock:
            self._made_dirs.add(directory)

    def put(self, data: bytes, dest: str, *, mode: int | None = None) -> None:
        tmp = f"{dest}.smlplay-tmp"
        chmod = f" && chmod {mode:o} {shlex.quote(tmp)}" if mode is not None else ""
        script = (
            f"(umask 077 && mkdir -p -- {shlex.quote(posixpath.dirname(dest) or '.')}) && cat > {shlex.quote(tmp)}"
            f"{chmod} && mv -f {shlex.quote(tmp)} {shlex.quote(dest)}"
        )
        result = self.run(script, stdin=data, timeout=300)
        if result.rc != 0:
            raise TransportError(f"cannot write {dest} on node {self.node}: {result.stderr.strip()[-300:]}")

    def read(self, path: str) -> bytes:
        result = self.run(f"base64 -w0 < {shlex.quote(path)}", timeout=300)
        if result.rc != 0:
            raise TransportError(f"cannot read {path} on node {self.node}: {result.stderr.strip()[-300:]}")
        return base64.b64decode(result.stdout.strip())

    def tail(self, path: str, lines: int = 50) -> str:
        result = self.run(f"tail -n {int(lines)} {shlex.quote(path)} 2>/dev/null", timeout=60)
        return result.stdout.rstrip("\n") if result.rc == 0 else ""

    def connect_tcp(self, address: str, port: int, timeout: float) -> Connection:
        return self.gateway.connect_tcp(address, port, timeout)

    def close(self) -> None:
        self._close_shell()  # the gateway itself belongs to the pool


def _in_dir(script: str, cwd: str | None) -> str:
    return f"cd {shlex.quote(cwd)} || exit 1\n{script}" if cwd else script


def from_vars(host: str, hostvars: Mapping[str, Any], gateway: Transport, container: Callable[[], ContainerFlags]) -> SrunTransport:
    """Build from a node's connection variables (set by ``slurm_allocate``)."""
    missing = [k for k in ("slurm_job_id", "slurm_node") if not hostvars.get(k)]
    if missing:
        raise TransportError(
            f"host '{host}' uses connection srun but has no {' or '.join(missing)}",
            hint="srun hosts come from slurm_allocate; a static one needs slurm_job_id and slurm_node",
        )
    extra = hostvars.get("srun_extra_args") or ()
    if isinstance(extra, str):
        extra = shlex.split(extra)
    return SrunTransport(
        host,
        node=str(hostvars["slurm_node"]),
        job_id=str(hostvars["slurm_job_id"]),
        gateway=gateway,
        container=container,
        extra_args=[str(a) for a in extra],
        persistent=bool(hostvars.get("srun_persistent_shell", True)),
    )
