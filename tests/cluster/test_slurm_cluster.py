"""engine.slurm against the real local cluster: allocations, steps, signals, refusals.

The pattern under test is the engine's: one holding job (``sbatch``), then one
``srun --overlap`` step per process on a chosen node. Only stdout of a step is parsed:
srun writes its own notices ("Step created ...") to stderr.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import pytest

from engine.slurm import (
    HOLD_SCRIPT,
    AllocationRequest,
    JobInfo,
    SlurmCommandError,
    SlurmErrorKind,
    command_error,
    expand,
    job_info,
    local_run,
    render,
    sbatch,
    scancel,
    show_hostnames,
    show_job,
    squeue,
    srun_argv,
    steps,
    wait_until_running,
)
from engine.slurm.runner import RunFn

pytestmark = pytest.mark.cluster


class SlurmCluster(Protocol):
    """What the tests use of conftest's ``slurm`` fixture (conftest is not importable)."""

    nodes: tuple[str, ...]
    proctrack: str
    run: RunFn

    def active_jobs(self) -> list[str]: ...


@contextmanager
def holding_job(
    cluster: SlurmCluster, tmp_path: Path, request: AllocationRequest
) -> Iterator[JobInfo]:
    """Submit a job that only holds its nodes, wait until it runs, cancel it at the end."""
    options = [*request.sbatch_options(), f"--output={tmp_path}/job-%j.out"]
    job_id = sbatch(cluster.run, options, wrap=HOLD_SCRIPT)
    try:
        yield wait_until_running(cluster.run, job_id, timeout=30)
    finally:
        scancel(cluster.run, job_id, missing_ok=True)
        _wait_for(lambda: not _active(cluster, job_id), f"job {job_id} to end")


def _active(cluster: SlurmCluster, job_id: str) -> bool:
    info = job_info(cluster.run, job_id)
    return info is not None and info.is_active


def _wait_for(predicate: object, what: str, timeout: float = 15.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def _step(job: JobInfo, node: str, script: str, **kwargs: object) -> str:
    """Run a foreground step; return its stdout (srun's own chatter is on stderr)."""
    argv = srun_argv(job.job_id, node, script, **kwargs)  # type: ignore[arg-type]
    result = local_run(argv, timeout=60)
    assert result.rc == 0, f"{render(argv)} failed: {result.stderr}"
    return result.stdout


def test_steps_run_on_the_chosen_nodes(slurm: SlurmCluster, tmp_path: Path) -> None:
    with holding_job(slurm, tmp_path, AllocationRequest(nodes=3, job_name="hold3")) as job:
        assert job.is_running and job.node_count == 3
        assert len(job.nodes) == 3 and set(job.nodes) <= set(slurm.nodes)
        assert show_job(slurm.run, job.job_id)["JobState"] == "RUNNING"
        assert expand(show_job(slurm.run, job.job_id)["NodeList"]) == list(job.nodes)
        for node in reversed(job.nodes):
            out = _step(job, node, 'echo "node=$SLURMD_NODENAME list=$SLURM_JOB_NODELIST"')
            # Inside a step SLURM_JOB_NODELIST is the step's node list, not the job's.
            assert out.splitlines() == [f"node={node} list={node}"]


def test_step_script_and_env_arrive_intact(slurm: SlurmCluster, tmp_path: Path) -> None:
    script = "printf '%s|' \"$A\" \"$B\" \"$(echo sub)\"; echo ';' 'it'\"'\"'s'"
    env = {"A": "x y,z", "B": "$(not run)"}
    with holding_job(slurm, tmp_path, AllocationRequest(nodes=1)) as job:
        out = _step(job, job.nodes[0], script, env=env)
        assert out == "x y,z|$(not run)|sub|; it's\n"
        # The same step through a shell, as it would go over SSH to a login node.
        argv = srun_argv(job.job_id, job.nodes[0], script, env=env)
        via_shell = local_run(["bash", "-c", render(argv)])
        assert via_shell.rc == 0 and via_shell.stdout == out


def test_gpus_follow_the_allocation(slurm: SlurmCluster, tmp_path: Path) -> None:
    show_gpus = 'echo "${CUDA_VISIBLE_DEVICES-unset}"'
    both = AllocationRequest(nodes=1, gpus_per_node=2, nodelist="n4")
    with holding_job(slurm, tmp_path, both) as job:
        assert _step(job, "n4", show_gpus).strip() == "0,1"
    first = AllocationRequest(nodes=1, gpus_per_node=1, nodelist="n4", job_name="gpu-a")
    second = AllocationRequest(nodes=1, gpus_per_node=1, nodelist="n4", job_name="gpu-b")
    with (
        holding_job(slurm, tmp_path, first) as a,
        holding_job(slurm, tmp_path, second) as b,
    ):
        # CUDA_VISIBLE_DEVICES uses the node's global GPU numbers.
        assert {_step(a, "n4", show_gpus).strip(), _step(b, "n4", show_gpus).strip()} == {
            "0",
            "1",
        }
    with holding_job(slurm, tmp_path, AllocationRequest(nodes=1, nodelist="n4")) as job:
        assert _step(job, "n4", show_gpus).strip() == "unset"


def _start_background(argv: Sequence[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )


def test_background_step_stops_on_sigterm(slurm: SlurmCluster, tmp_path: Path) -> None:
    log = tmp_path / "router.log"
    script = 'trap "echo got TERM; exit 0" TERM; echo started; while :; do sleep 0.1; done'
    with holding_job(slurm, tmp_path, AllocationRequest(nodes=2)) as job:
        node = job.nodes[1]
        argv = srun_argv(job.job_id, node, script, name="router", output=str(log))
        srun = _start_background(argv)
        try:
            _wait_for(lambda: log.exists() and "started" in log.read_text(), "the step to start")
            (step,) = [s for s in steps(slurm.run, job.job_id) if s.name == "router"]
            assert step.nodes == (node,) and step.state == "RUNNING"
            scancel(slurm.run, job.job_id, step=step.step_id, signal="TERM")
            assert srun.wait(timeout=15) == 0
            assert "got TERM" in log.read_text()
            names = [s.name for s in steps(slurm.run, job.job_id)]
            assert "router" not in names and "batch" in names  # the job itself lives on
            assert job_info(slurm.run, job.job_id).is_running  # type: ignore[union-attr]
        finally:
            if srun.poll() is None:
                srun.kill()
                srun.wait()
    assert not [j for j in squeue(slurm.run) if j.is_active]


def test_processes_that_leave_the_step_and_proctrack(slurm: SlurmCluster, tmp_path: Path) -> None:
    """proctrack/cgroup kills a process that setsid-daemonized out of its step when the
    step is cancelled; proctrack/linuxproc loses track of it and it survives: the orphan
    risk that makes cgroup the plugin to have on a real cluster."""
    pidfile = tmp_path / "orphan.pid"
    script = f"setsid sleep 1000 </dev/null >/dev/null 2>&1 & echo $! > {pidfile}; wait"
    pid = 0
    with holding_job(slurm, tmp_path, AllocationRequest(nodes=1)) as job:
        srun = _start_background(srun_argv(job.job_id, job.nodes[0], script, name="orphan"))
        try:
            _wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), "the pid file")
            pid = int(pidfile.read_text())
            assert _alive(pid)
            (step,) = [s for s in steps(slurm.run, job.job_id) if s.name == "orphan"]
            scancel(slurm.run, job.job_id, step=step.step_id)
            if slurm.proctrack == "proctrack/cgroup":
                _wait_for(lambda: not _alive(pid), f"pid {pid} to be killed with its step")
            else:
                srun.wait(timeout=15)
                time.sleep(0.5)
                assert _alive(pid), f"{slurm.proctrack} was expected to miss pid {pid}"
        finally:
            if srun.poll() is None:
                srun.kill()
            srun.wait()
            if pid and _alive(pid):
                os.kill(pid, 9)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize(
    ("request_", "kind", "text"),
    [
        (
            AllocationRequest(partition="nope"),
            SlurmErrorKind.INVALID_PARTITION,
            "Invalid partition name specified",
        ),
        (
            AllocationRequest(nodes=9),
            SlurmErrorKind.TOO_LARGE,
            "More processors requested than permitted",
        ),
        (
            AllocationRequest(nodes=1, gpus_per_node=3),
            SlurmErrorKind.NODE_CONFIG_UNAVAILABLE,
            "Requested node configuration is not available",
        ),
        (
            AllocationRequest(nodes=1, nodelist="n9"),
            SlurmErrorKind.INVALID_NODE,
            "Invalid node name specified",
        ),
    ],
    ids=["bad-partition", "too-many-nodes", "too-many-gpus", "unknown-node"],
)
def test_rejected_allocations_raise_scheduler_errors(
    slurm: SlurmCluster, request_: AllocationRequest, kind: SlurmErrorKind, text: str
) -> None:
    with pytest.raises(SlurmCommandError) as info:
        sbatch(slurm.run, request_.sbatch_options(), wrap="true")
    assert info.value.kind is kind
    assert text in str(info.value)
    assert "sbatch --parsable" in str(info.value)
    assert slurm.active_jobs() == []


def test_unknown_jobs(slurm: SlurmCluster) -> None:
    assert job_info(slurm.run, "999999") is None
    assert steps(slurm.run, "999999") == ()
    with pytest.raises(SlurmCommandError) as info:
        show_job(slurm.run, "999999")
    assert info.value.kind is SlurmErrorKind.JOB_NOT_FOUND
    with pytest.raises(SlurmCommandError) as info:
        scancel(slurm.run, "999999", step=0, signal="TERM")
    assert info.value.kind is SlurmErrorKind.JOB_NOT_FOUND
    scancel(slurm.run, "999999", step=0, signal="TERM", missing_ok=True)


def test_srun_into_a_job_that_ended(slurm: SlurmCluster, tmp_path: Path) -> None:
    with holding_job(slurm, tmp_path, AllocationRequest(nodes=1)) as job:
        pass
    argv = srun_argv(job.job_id, job.nodes[0], "true")
    result = local_run(argv)
    assert result.rc != 0
    assert command_error(argv, result).kind is SlurmErrorKind.JOB_NOT_FOUND


@pytest.mark.parametrize(
    "expr", ["n[1-4]", "n[1,3]", "n1,n[2-3]", "nid[001-004,007]", "a[1-2],b3", "x[08-11]"]
)
def test_local_expand_agrees_with_scontrol(slurm: SlurmCluster, expr: str) -> None:
    assert expand(expr) == show_hostnames(slurm.run, expr)


def test_queue_is_empty_afterwards(slurm: SlurmCluster) -> None:
    assert [j.job_id for j in squeue(slurm.run) if j.is_active] == []
    plain = local_run(["squeue", "-h"])
    assert plain.rc == 0 and plain.stdout.strip() == ""
