"""Fixtures for tests against the real local Slurm cluster (tests/cluster/local-slurm.sh).

The cluster is started once per session (about 0.3 s when it already runs, 10 s or so
when the packages must be installed first) and left running for the next session, unless
``SMLPLAY_CLUSTER_KEEP`` is ``0``/``false``/``no``, which stops it at session end.

Where it cannot run at all (not root, or Slurm missing and no apt-get) the tests are
skipped with the reason; under CI (``CI=true``) that is a failure instead, so a broken
setup is not mistaken for a green run. A cluster that should start but does not is always
a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.slurm import RunFn, local_run, squeue

SCRIPT = Path(__file__).resolve().parent / "local-slurm.sh"
_KEEP_OFF = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class SlurmCluster:
    """The running local cluster: its state dir, node names and proctrack plugin."""

    dir: Path
    nodes: tuple[str, ...]
    proctrack: str
    run: RunFn

    def active_jobs(self) -> list[str]:
        return [j.job_id for j in squeue(self.run) if j.is_active]

    def wait_no_active_jobs(self, timeout: float = 15.0) -> list[str]:
        """Wait until squeue lists no pending/running/completing job; return what is left."""
        deadline = time.monotonic() + timeout
        left = self.active_jobs()
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = self.active_jobs()
        return left


def _cannot(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"the local Slurm cluster is unavailable under CI: {reason}")
    pytest.skip(f"needs the local Slurm cluster: {reason}")


def _installed() -> bool:
    return all(shutil.which(c) for c in ("slurmctld", "slurmd", "sbatch", "munged"))


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    if os.geteuid() != 0:
        _cannot("local-slurm.sh must run as root (it starts munged, slurmctld and slurmd)")
    if not _installed() and shutil.which("apt-get") is None:
        _cannot("Slurm is not installed and there is no apt-get to install it")
    up = subprocess.run(
        ["bash", str(SCRIPT), "up"], capture_output=True, text=True, timeout=900, check=False
    )
    if up.returncode != 0:
        pytest.fail(
            f"`local-slurm.sh up` failed (rc={up.returncode}):\n"
            f"{up.stdout[-2000:]}\n{up.stderr[-4000:]}"
        )
    state = Path(os.environ.get("SMLPLAY_SLURM_DIR", "/tmp/smlplay-slurm"))
    proctrack = (state / "proctrack").read_text().strip()
    cluster = SlurmCluster(
        dir=state, nodes=("n1", "n2", "n3", "n4"), proctrack=proctrack, run=local_run
    )
    yield cluster
    if os.environ.get("SMLPLAY_CLUSTER_KEEP", "1").strip().lower() in _KEEP_OFF:
        subprocess.run(["bash", str(SCRIPT), "down"], check=False, timeout=120)


@pytest.fixture
def slurm(slurm_cluster: SlurmCluster) -> Iterator[SlurmCluster]:
    """The cluster, checked to be free of jobs before and after the test."""
    left = slurm_cluster.wait_no_active_jobs()
    assert not left, f"jobs left over from an earlier test: {left}"
    yield slurm_cluster
    left = slurm_cluster.wait_no_active_jobs()
    if left:
        subprocess.run(["scancel", *left], check=False)
    assert not left, f"the test left jobs behind: {left}"


# --------------------------------------------------------------------------------------
# Driving the real CLI against the cluster (test_remote_execution.py): a scratch directory,
# the loopback sshd as the login host, and a check that a test left nothing behind.

import json  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import uuid  # noqa: E402
from typing import Any  # noqa: E402

from tests.ports import free_ports as free_ports  # noqa: E402  (re-exported for the cluster and fault tests)
from tests.transport.conftest import Sshd, sshd  # noqa: E402, F401  (the loopback sshd)

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"
LOCAL_SLURM_INVENTORY = REPO / "inventory" / "local-slurm.yaml"


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    state: str
    cmdline: str


def processes() -> list[Proc]:
    """Every live (non-zombie) process on this machine, from /proc."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] in ("Z", "X"):  # PID 1 here does not reap orphans: zombies are dead
            continue
        out.append(Proc(int(entry.name), int(fields[1]), fields[0], raw.replace(b"\0", b" ").decode(errors="replace").strip()))
    return out


@dataclass
class EngineRun:
    """One finished `smlplay` command."""

    argv: list[str]
    rc: int
    stdout: str
    stderr: str
    elapsed: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.stdout.splitlines():
            line = line.strip()
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    def results(self, task: str) -> dict[str, dict[str, Any]]:
        """``{host: result}`` of the task's ``task_result`` events (``--output json``)."""
        return {
            e["host"]: {**e["result"], "_status": e["status"]}
            for e in self.events()
            if e["event"] == "task_result" and e["task"] == task
        }

    def recap(self) -> dict[str, dict[str, int]]:
        (recap,) = [e for e in self.events() if e["event"] == "recap"]
        return dict(recap["recap"])

    @property
    def job_ids(self) -> list[str]:
        return re.findall(r"submitted job (\d+)", self.output)

    def __str__(self) -> str:
        return (
            f"$ {' '.join(self.argv)}\n(rc={self.rc}, {self.elapsed:.1f}s)\n"
            f"--- stdout\n{self.stdout[-6000:]}\n--- stderr\n{self.stderr[-4000:]}"
        )


class Cli:
    """Runs `python -m engine` in a scratch directory against the local cluster and sshd.

    Every test gets a unique ``marker``: playbooks put it in job names and in the command
    lines of what they start, so the finalizer can find (and kill) anything left over.
    """

    def __init__(self, root: Path, ssh: Sshd, cluster: SlurmCluster) -> None:
        self.root = root
        self.ssh = ssh
        self.cluster = cluster
        self.marker = f"smlrx{uuid.uuid4().hex[:10]}"
        self.out = root / f"out-{self.marker}"
        self.out.mkdir()
        self.runs_dir = root / "runs"
        self.job_ids: set[str] = set()
        self.env = {
            **os.environ,
            "SMLPLAY_RUNS_DIR": str(self.runs_dir),
            "PYTHONPATH": str(REPO),
            "COLUMNS": "200",
            "SMLPLAY_SSH_PORT": str(ssh.port),
            "SMLPLAY_SSH_KEY": ssh.key,
            "SMLPLAY_SSH_KNOWN_HOSTS": ssh.known_hosts,
        }
        self.env.pop("SLURM_JOB_ID", None)
        self._sessions_before = {p.pid for p in self._ssh_sessions()}

    # ------------------------------------------------------------------ inputs
    def login_vars(self, **overrides: Any) -> dict[str, Any]:
        return {"connection": "ssh", **self.ssh.hostvars(), **overrides}

    def inventory(self, hosts: dict[str, dict[str, Any]] | None = None, name: str = "inventory.yaml") -> Path:
        """An inventory with ``login`` (the loopback sshd) unless ``hosts`` replaces it."""
        data = {"all": {"hosts": hosts if hosts is not None else {"login": self.login_vars()}}}
        path = self.root / name
        path.write_text(json.dumps(data, indent=2))  # JSON is YAML
        return path

    def vars(self, **extra: Any) -> dict[str, Any]:
        return {"marker": self.marker, "out": str(self.out), **extra}

    def argv(self, command: str, playbook: str | Path, args: tuple[str, ...], inventory: Path | None, extra_vars: dict[str, Any] | None, json_output: bool) -> list[str]:
        path = Path(playbook)
        if not path.is_absolute():
            path = PLAYBOOKS / path
        argv = [sys.executable, "-m", "engine", command, str(path)]
        if inventory is not None:
            argv += ["-i", str(inventory)]
        argv += ["-e", json.dumps(self.vars(**(extra_vars or {})))]
        if json_output:
            argv += ["--output", "json"]
        return [*argv, *args]

    # ------------------------------------------------------------------ running
    def run(
        self,
        playbook: str | Path,
        *args: str,
        inventory: Path | None = LOCAL_SLURM_INVENTORY,
        extra_vars: dict[str, Any] | None = None,
        json_output: bool = True,
        timeout: float = 120,
    ) -> EngineRun:
        """``smlplay run PLAYBOOK`` (a name in tests/cluster/playbooks, or a path) with the
        test's marker and output directory as extra vars."""
        return self._run(self.argv("run", playbook, args, inventory, extra_vars, json_output), timeout)

    def smlplay(self, *args: str, timeout: float = 120) -> EngineRun:
        return self._run([sys.executable, "-m", "engine", *args], timeout)

    def _run(self, argv: list[str], timeout: float) -> EngineRun:
        started = time.monotonic()
        proc = subprocess.run(argv, cwd=self.root, env=self.env, capture_output=True, text=True, timeout=timeout, check=False)
        run = EngineRun(argv, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)
        self.job_ids.update(run.job_ids)
        return run

    def popen(self, playbook: str | Path, *args: str, inventory: Path | None = LOCAL_SLURM_INVENTORY, extra_vars: dict[str, Any] | None = None) -> Background:
        argv = self.argv("run", playbook, args, inventory, extra_vars, True)
        stderr = self.root / f"stderr-{uuid.uuid4().hex[:6]}.txt"  # a file: a full pipe would block the run
        with open(stderr, "w") as err:
            proc = subprocess.Popen(argv, cwd=self.root, env=self.env, stdout=subprocess.PIPE, stderr=err, text=True)
        return Background(self, argv, proc, stderr)

    def last_run_dir(self) -> Path:
        runs = sorted(p for p in self.runs_dir.iterdir() if p.name[:1].isdigit())
        assert runs, f"no run recorded in {self.runs_dir}"
        return runs[-1]

    # ------------------------------------------------------------------ leftovers
    def leftovers(self) -> list[str]:
        """What this test left running: its jobs and their steps, processes that carry its
        marker (or are srun clients of its jobs), and SSH sessions opened since it began.

        Only this test's own things count, so that someone else's run on the shared cluster
        is not blamed on it (the ``slurm`` fixture checks that the queue is empty)."""
        left: list[str] = []
        mine = {self.marker, f"{self.marker}-hold"}
        jobs = subprocess.run(["squeue", "-h", "-o", "%A|%j|%T"], capture_output=True, text=True, check=False)
        for line in jobs.stdout.splitlines():  # plain squeue lists only unfinished jobs
            job, name, _state = line.split("|")
            if name in mine or job in self.job_ids:
                left.append(f"job {line}")
        steps = subprocess.run(["squeue", "-h", "-s", "-o", "%i|%j|%N"], capture_output=True, text=True, check=False)
        for line in steps.stdout.splitlines():
            if line.split(".", 1)[0] in self.job_ids:
                left.append(f"step {line}")
        me = {os.getpid(), os.getppid()}
        clients = [f"--jobid {j} " for j in self.job_ids]
        for p in processes():
            if p.pid in me:
                continue
            if self.marker in p.cmdline or (p.cmdline.startswith("srun ") and any(c in p.cmdline for c in clients)):
                left.append(f"process {p.pid} ({p.state}): {p.cmdline[:200]}")
        for p in self._ssh_sessions():
            if p.pid not in self._sessions_before:
                left.append(f"ssh session {p.pid}: {p.cmdline[:120]}")
        return left

    def _ssh_sessions(self) -> list[Proc]:
        sshd_pid = _read_pid(Path(self.ssh.dir) / "sshd.pid")
        return [p for p in processes() if sshd_pid is not None and p.ppid == sshd_pid]

    def wait_for_no_leftovers(self, timeout: float = 15.0) -> list[str]:
        deadline = time.monotonic() + timeout
        left = self.leftovers()
        while left and time.monotonic() < deadline:
            time.sleep(0.2)
            left = self.leftovers()
        return left

    def cleanup(self) -> None:
        """Cancel this test's jobs and kill its processes (by pid), whatever happened."""
        subprocess.run(["scancel", f"--name={self.marker}"], capture_output=True, check=False)
        subprocess.run(["scancel", f"--name={self.marker}-hold"], capture_output=True, check=False)
        if self.job_ids:
            subprocess.run(["scancel", *sorted(self.job_ids)], capture_output=True, check=False)
        me = {os.getpid(), os.getppid()}
        for p in processes():
            if p.pid not in me and self.marker in p.cmdline:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


class Background:
    """A `smlplay run` still running (``--output json``): read its events as they come."""

    def __init__(self, cli: Cli, argv: list[str], proc: subprocess.Popen[str], stderr: Path) -> None:
        self.cli = cli
        self.argv = argv
        self.proc = proc
        self.stderr = stderr
        self.lines: list[str] = []
        self.started = time.monotonic()

    def wait_for_event(self, predicate: Any, timeout: float = 60.0) -> dict[str, Any]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        for line in self.proc.stdout:
            self.lines.append(line)
            event = json.loads(line) if line.startswith("{") else {}
            if event:
                for job in re.findall(r"submitted job (\d+)", json.dumps(event)):
                    self.cli.job_ids.add(job)
            if event and predicate(event):
                return event
            if time.monotonic() > deadline:
                break
        raise AssertionError(f"no such event within {timeout}s; output so far:\n{''.join(self.lines)[-4000:]}")

    def finish(self, timeout: float = 60.0) -> EngineRun:
        try:
            rest, _ = self.proc.communicate(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        err = self.stderr.read_text()
        run = EngineRun(self.argv, self.proc.returncode, "".join(self.lines) + rest, err, time.monotonic() - self.started)
        self.cli.job_ids.update(run.job_ids)
        return run

    def finish_quietly(self, timeout: float = 60.0) -> None:
        """For a ``finally:``: let a run that is still going end by itself (and tear down
        what it started), kill it only if it will not."""
        if self.proc.poll() is not None:
            return
        try:
            self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()


def squeue_state(job_id: str) -> str:
    """The job's state as plain ``squeue`` shows it ('' once it is no longer listed)."""
    return subprocess.run(
        ["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True, check=False
    ).stdout.strip()


def job_ended(job_id: str, wait: float = 15.0) -> bool:
    """The job is gone or finished (waiting out COMPLETING while its steps wind down)."""
    deadline = time.monotonic() + wait
    while True:
        state = squeue_state(job_id)
        if state in ("", "COMPLETED", "CANCELLED") or time.monotonic() > deadline:
            return state in ("", "COMPLETED", "CANCELLED")
        time.sleep(0.2)


def hold_nodes(cli: Cli, count: int) -> str:
    """Submit a job (named after the test's marker) that holds ``count`` whole nodes, and
    wait until it runs: later requests for more than the rest stay PENDING (Resources)."""
    job = subprocess.run(
        ["sbatch", "--parsable", f"--nodes={count}", "--exclusive", f"--job-name={cli.marker}-hold",
         "--output=/dev/null", "--wrap", "exec sleep 300"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    cli.job_ids.add(job)
    deadline = time.monotonic() + 30
    while squeue_state(job) != "RUNNING":
        assert time.monotonic() < deadline, f"holding job {job} did not start"
        time.sleep(0.1)
    return job


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


@pytest.fixture
def cli(slurm: SlurmCluster, sshd: Sshd, tmp_path: Path) -> Iterator[Cli]:  # noqa: F811
    """The CLI in a scratch directory; afterwards nothing of the test may be left running
    (checked, then cleaned up either way)."""
    runner = Cli(tmp_path, sshd, slurm)
    try:
        yield runner
    finally:
        left = runner.wait_for_no_leftovers()
        runner.cleanup()
    assert not left, "the test left things behind:\n  " + "\n  ".join(left)
