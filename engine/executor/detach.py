"""Detached runs: ``smlplay run --detach`` submits the engine itself as a Slurm batch job.

The client renders the plan (bad input stops here, exit 2), takes the allocation request of
the playbook's first ``slurm_allocate`` task (scheduler ``slurm``), and submits through that
task's gateway host::

    sbatch <the request's options> --output RUN/engine.log \\
        --wrap 'cd CWD && SMLPLAY_RUNS_DIR=... exec PYTHON -m engine run PLAYBOOK ... \\
                --run-id RUN --local-host GATEWAY'

Inside the job the same playbook runs with the gateway reached locally (``--local-host``),
and ``slurm_allocate`` adopts the job it runs in (``SLURM_JOB_ID``) instead of submitting
another one, so the deployment survives the client disconnecting. The run record is the
contract between the two: it must live on a filesystem both see (``$HOME`` or a scratch
directory, as ``SMLPLAY_RUNS_DIR``). ``smlplay status/logs/down RUN`` read it; ``down``
sends SIGTERM to the engine in the job (which tears everything down in tiers, then ends the
job) and cancels the job if it does not end by itself.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.errors import ValidationError
from engine.events import EventSink, NullSink
from engine.executor.context import RunOptions
from engine.executor.run import load, render
from engine.executor.runner import Runner
from engine.runs import RunRecord, runs_dir
from engine.schedulers.base import ADOPT_ENV
from engine.slurm.commands import job_info, sbatch, scancel
from engine.slurm.runner import transport_runner
from engine.transport.pool import TransportPool

__all__ = ["detached_job_state", "down_detached", "submit"]


def submit(
    playbook_path: str | Path,
    inventory_path: str | None,
    options: RunOptions,
    *,
    forward: Sequence[str],
    sink: EventSink,
    argv: list[str] | None = None,
) -> RunRecord:
    """Submit the run as a batch job; ``forward`` are the CLI options the job repeats
    (``-e``, ``--tags``, ...). Returns the run record (status ``submitted``)."""
    from engine.actions.allocate import allocation_spec

    playbook, inventory, loader = load(playbook_path, inventory_path)
    rendered = render(playbook, inventory_path, options, loader)
    plan = rendered.plays
    step = next(
        (s for play in plan for s in play["steps"] if s["action"] == "slurm_allocate" and (s.get("args") or {}).get("scheduler", "slurm") == "slurm"),
        None,
    )
    if step is None:
        raise ValidationError(
            "--detach needs a slurm_allocate task with scheduler: slurm",
            hint="the local scheduler has no job to detach into; run without --detach (or use -i with a Slurm inventory)",
        )
    gateway = str(step["host"])
    args = {k: v for k, v in step["args"].items() if k not in ("job_id",)}
    spec = allocation_spec(args, gateway=gateway)
    record = RunRecord.create(Path(playbook_path), argv=argv)
    record.write_plan({"playbook": str(playbook_path), **rendered.to_dict()})
    runner = Runner(playbook, inventory, options, loader=loader, sink=NullSink(), run_dir=record.path, run_id=record.id)
    try:
        transport = runner.transports.get(gateway)
        inner = [
            sys.executable, "-m", "engine", "run", str(Path(playbook_path).resolve()),
            *(["-i", str(Path(inventory_path).resolve())] if inventory_path else []),
            *forward,
            "--run-id", record.id,
            "--local-host", gateway,
        ]
        script = (
            f"cd {shlex.quote(os.getcwd())} && export SMLPLAY_RUNS_DIR={shlex.quote(str(runs_dir().resolve()))} "
            f'&& export {ADOPT_ENV}="$SLURM_JOB_ID" && exec {shlex.join(inner)}'
        )
        sbatch_options = [o for o in spec.request.sbatch_options() if not o.startswith("--output")]
        sbatch_options.append(f"--output={record.path.resolve() / 'engine.log'}")
        job_id = sbatch(transport_runner(transport, timeout=120.0), sbatch_options, wrap=script)
        record.update(
            status="submitted",
            detached=True,
            job_id=job_id,
            gateway=gateway,
            pid=None,
            hosts=runner.transports.specs(),
        )
        sink.emit("detached", run_id=record.id, job_id=job_id, gateway=gateway, message=(
            f"submitted run {record.id} as job {job_id} through {gateway}\n"
            f"  smlplay status {record.id}   smlplay logs {record.id} -f   smlplay down {record.id}"
        ))
    except BaseException:
        if record.state.get("job_id") is None:
            record.update(status="failed")
        raise
    finally:
        runner.transports.close()
    return record


def _gateway_pool(record: RunRecord) -> tuple[TransportPool, str]:
    hosts = record.state.get("hosts", {})
    gateway = str(record.state["gateway"])
    return TransportPool(lambda h: hosts.get(h, {"connection": "local"})), gateway


def detached_job_state(record: RunRecord) -> str:
    """The job's state as Slurm sees it (``PENDING (Priority)``, ``RUNNING``, ``gone``)."""
    pool, gateway = _gateway_pool(record)
    try:
        info = job_info(transport_runner(pool.get(gateway)), str(record.state["job_id"]))
    finally:
        pool.close()
    if info is None:
        return "gone"
    return info.state + (f" ({info.reason})" if info.reason and info.reason != "None" else "")


def down_detached(record: RunRecord, *, sink: EventSink, wait: float = 180.0) -> int:
    """Stop a detached run: SIGTERM to its engine (it tears down, then the job ends);
    cancel the job if it is still pending or does not end within ``wait`` seconds."""
    pool, gateway = _gateway_pool(record)
    job = str(record.state["job_id"])
    run = transport_runner(pool.get(gateway), timeout=60.0)
    try:
        info = job_info(run, job)
        if info is None or info.is_finished:
            sink.emit("down_done", run_id=record.id, status=record.status)
            return 0
        if info.is_running:
            sink.emit("down_signal", run_id=record.id, job_id=job)
            # the batch step is the engine itself (exec): it unwinds the teardown stack
            scancel(run, job, batch=True, signal="TERM", missing_ok=True)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                info = job_info(run, job)
                if info is None or info.is_finished:
                    break
                time.sleep(1.0)
        if info is not None and not info.is_finished:
            scancel(run, job, missing_ok=True)
    finally:
        pool.close()
    record = RunRecord.open(str(record.path))
    if record.status in ("submitted", "running", "tearing-down"):
        record.update(status="down")
    sink.emit("down_done", run_id=record.id, status=record.status)
    return 0


def forwarded_options(kw: dict[str, Any]) -> list[str]:
    """The CLI options a detached job must repeat to run the same thing."""
    out: list[str] = []
    for value in kw.get("extra_vars") or ():
        out += ["-e", value]
    for value in kw.get("tags") or ():
        out += ["--tags", value]
    for value in kw.get("skip_tags") or ():
        out += ["--skip-tags", value]
    if kw.get("limit"):
        out += ["--limit", kw["limit"]]
    if kw.get("health_timeout"):
        out += ["--health-timeout", kw["health_timeout"]]
    if kw.get("forks"):
        out += ["--forks", str(kw["forks"])]
    if kw.get("keep_running"):
        out.append("--hold")  # in the job: serve until `smlplay down`, then tear down
    return out
