"""Typed wrappers around Slurm's client commands: sbatch, squeue, scontrol, scancel.

Each wrapper builds an argv, hands it to the injected ``run`` callable (see
:mod:`engine.slurm.runner`: local or over SSH on a login node), and turns the output into
frozen data or the failure into a :class:`~engine.slurm.errors.SlurmCommandError` that
carries the command line, Slurm's stderr and a hint. Nothing here keeps state between calls.

Behaviours of Slurm 22.05 that shape this module (seen on the test cluster):

* ``squeue --json`` ignores ``--jobs`` and ``--states`` and lists every job, finished ones
  included (for MinJobAge seconds), so jobs are filtered here as well.
* ``scancel J.S`` kills the step with SIGKILL at once (no SIGTERM first); a graceful stop
  needs ``scancel --signal=TERM J.S``. Without ``--ctld`` that form signals the step but
  then exits 225 with a bogus "Kill job error on job step id J" on a host with several
  slurmd; with ``--ctld`` it goes through the controller's step RPC, which can only ever
  touch that step, and exits 0.
* ``scontrol show hostnames`` prints garbage (``n]``) for ``n[1-2`` instead of failing.
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from engine.errors import SchedulerError, ValidationError
from engine.slurm.errors import SlurmErrorKind, command_error
from engine.slurm.hostlist import expand
from engine.slurm.jobs import JobInfo, parse_squeue_json
from engine.slurm.runner import RunFn

__all__ = [
    "HOLD_SCRIPT",
    "StepInfo",
    "job_info",
    "parse_key_values",
    "salloc",
    "sbatch",
    "scancel",
    "scancel_argv",
    "show_hostnames",
    "show_job",
    "squeue",
    "steps",
    "wait_until_running",
]

HOLD_SCRIPT = "exec sleep infinity"
"""Batch script of a job that only holds an allocation; the work runs as ``srun`` steps."""

_JOB_ID = re.compile(r"^\d+(_\d+)?$")
_STEP_ID = re.compile(r"^(\d+|batch|extern)$")
_SIGNAL = re.compile(r"^(SIG)?[A-Z][A-Z0-9+]*$|^\d+$")
# A key starts after whitespace: a letter, then letters, digits and the odd punctuation
# scontrol uses in keys (AllocNode:Sid, Socks/Node, MCS_label, ReqB:S:C:T).
_KEY = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9_:/().]*)=")


# --------------------------------------------------------------------------- sbatch


def sbatch(
    run: RunFn,
    options: Sequence[str] = (),
    *,
    wrap: str | None = None,
    script: str | None = None,
) -> str:
    """Submit a batch job and return its id (``sbatch --parsable``).

    Give exactly one of ``wrap`` (a shell command, ``--wrap``) or ``script`` (a path on the
    host that runs sbatch). ``options`` are sbatch options, e.g. from
    :meth:`engine.slurm.request.AllocationRequest.sbatch_options`.
    """
    if (wrap is None) == (script is None):
        raise ValidationError("sbatch needs exactly one of `wrap` (a command) or `script` (a path)")
    argv = ["sbatch", "--parsable", *options]
    argv += ["--wrap", wrap] if wrap is not None else [str(script)]
    result = run(argv)
    if result.rc != 0:
        raise command_error(argv, result, doing="submit the job")
    lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    job_id = lines[-1].split(";", 1)[0] if lines else ""  # "123" or "123;cluster"
    if not _JOB_ID.match(job_id):
        raise SchedulerError(
            f"sbatch succeeded but printed no job id\n  command: {_join(argv)}\n"
            f"  stdout: {result.stdout.strip()!r}"
        )
    return job_id


_GRANTED = re.compile(r"Granted job allocation (\d+)")
_PENDING = re.compile(r"Pending job allocation (\d+)")


def salloc(run: RunFn, options: Sequence[str] = ()) -> str:
    """Allocate without a shell (``salloc --no-shell``) and return the job id.

    salloc blocks until the allocation is granted (bound it with ``--immediate=SECONDS``
    in ``options``), and reports on stderr only: ``salloc: Granted job allocation 123``.
    The allocation lives until ``scancel`` or its time limit; there is no batch script.
    """
    argv = ["salloc", "--no-shell", *options]
    result = run(argv)
    granted = _GRANTED.search(result.stderr)
    if result.rc != 0 or granted is None:
        pending = _PENDING.search(result.stderr)
        if pending is not None and granted is None:  # gave up while pending: do not leak it
            run(["scancel", pending.group(1)])
        raise command_error(argv, result, doing="allocate nodes")
    return granted.group(1)


# --------------------------------------------------------------------------- squeue


def squeue(
    run: RunFn,
    job_ids: Iterable[str] | None = None,
    *,
    clock: Callable[[], float] = time.time,
) -> tuple[JobInfo, ...]:
    """Jobs known to the controller (finished ones too, until MinJobAge), optionally only
    ``job_ids``. A job id the controller does not know is simply absent from the result."""
    wanted = None if job_ids is None else [_check_job_id(j) for j in job_ids]
    argv = ["squeue", "--json", "--states=all"]
    if wanted:
        argv.append("--jobs=" + ",".join(wanted))
    result = run(argv)
    if result.rc != 0:
        err = command_error(argv, result, doing="list jobs")
        if wanted and err.kind is SlurmErrorKind.JOB_NOT_FOUND:
            return ()  # newer Slurm honours --jobs and fails when none is known
        raise err
    jobs = parse_squeue_json(result.stdout, now=clock())
    if wanted is not None:
        keep = set(wanted)
        jobs = tuple(j for j in jobs if j.job_id in keep)
    return jobs


def job_info(run: RunFn, job_id: str, *, clock: Callable[[], float] = time.time) -> JobInfo | None:
    """One job, or ``None`` if the controller does not know it (never existed, or ended
    more than MinJobAge seconds ago)."""
    found = squeue(run, [job_id], clock=clock)
    return found[0] if found else None


def wait_until_running(
    run: RunFn,
    job_id: str,
    *,
    timeout: float = 300.0,
    poll: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    on_poll: Callable[[JobInfo], None] | None = None,
) -> JobInfo:
    """Poll ``squeue`` until the job runs; return its info (nodes included).

    ``on_poll`` sees every state read (a progress line: state, reason, time pending);
    ``sleep`` may raise to abandon the wait (Ctrl-C).

    Fails fast instead of waiting out ``timeout`` when the job ended, vanished, or is
    pending for a reason that waiting cannot fix (``PartitionConfig``, ``BadConstraints``
    and the other :data:`~engine.slurm.jobs.HOPELESS_REASONS`).
    """
    deadline = clock() + timeout
    while True:
        info = job_info(run, job_id)
        if info is None:
            raise SchedulerError(
                f"job {job_id} is not known to Slurm",
                hint="it ended long ago or was never submitted to this cluster",
            )
        if on_poll is not None:
            on_poll(info)
        if info.is_running:
            return info
        if info.is_finished:
            raise SchedulerError(
                f"job {job_id} ended ({info.state}, reason {info.reason}) before it ran",
                hint=f"`scontrol show job {job_id}` shows details while Slurm still knows it",
            )
        if info.is_hopeless:
            raise SchedulerError(
                f"job {job_id} can never start: pending with reason {info.reason}",
                hint="the request does not fit the partition or the QOS/association limits; "
                f"`scontrol show job {job_id}` shows what was asked for",
            )
        if clock() >= deadline:
            raise SchedulerError(
                f"job {job_id} did not start within {timeout:g}s "
                f"(state {info.state}, reason {info.reason})",
                hint="the cluster may be busy: `squeue --start -j "
                f"{job_id}` shows Slurm's estimate; raise the wait (allocation_timeout) or "
                "ask for fewer or other nodes",
            )
        sleep(poll)


# --------------------------------------------------------------------------- scontrol


def parse_key_values(text: str) -> dict[str, str]:
    """Parse scontrol's ``Key=Value Key=Value`` output (``-o`` or multi-line form).

    Values may contain ``=`` (``TRES=cpu=2,node=1``) and spaces inside a value are kept as
    long as the next word does not look like ``Key=`` (a known limit of the format).
    """
    out: dict[str, str] = {}
    matches = list(_KEY.finditer(text))
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        out[m.group(1)] = text[m.end() : end].strip()
    return out


def show_job(run: RunFn, job_id: str) -> dict[str, str]:
    """``scontrol show job J`` as a dict (``JobState``, ``NodeList``, ``StdOut``, ...)."""
    argv = ["scontrol", "-o", "show", "job", _check_job_id(job_id)]
    result = run(argv)
    if result.rc != 0:
        raise command_error(argv, result, doing=f"show job {job_id}")
    records = [parse_key_values(line) for line in result.stdout.splitlines() if line.strip()]
    for record in records:
        if record.get("JobId") == job_id:
            return record
    if records:
        return records[0]
    raise SchedulerError(f"scontrol printed nothing for job {job_id}\n  command: {_join(argv)}")


@dataclass(frozen=True)
class StepInfo:
    """One step of a job (``scontrol show step``): how a named background step is found."""

    job_id: str
    step_id: str
    name: str
    state: str
    nodes: tuple[str, ...]

    @property
    def id(self) -> str:
        """``J.S`` as scancel and sacct write it."""
        return f"{self.job_id}.{self.step_id}"

    @classmethod
    def from_record(cls, record: Mapping[str, str]) -> StepInfo:
        job, _, step = record.get("StepId", "").partition(".")
        return cls(
            job_id=job,
            step_id=step,
            name=record.get("Name", ""),
            state=record.get("State", ""),
            nodes=tuple(expand(record.get("NodeList", ""))),
        )


def steps(run: RunFn, job_id: str) -> tuple[StepInfo, ...]:
    """The job's current steps (the batch step included); ``()`` when the job has ended."""
    argv = ["scontrol", "-o", "show", "step", _check_job_id(job_id)]
    result = run(argv)
    if result.rc != 0:
        err = command_error(argv, result, doing=f"list the steps of job {job_id}")
        if err.kind is SlurmErrorKind.JOB_NOT_FOUND:
            return ()
        raise err
    return tuple(
        StepInfo.from_record(parse_key_values(line))
        for line in result.stdout.splitlines()
        if line.startswith("StepId=")
    )


def show_hostnames(run: RunFn, nodelist: str) -> list[str]:
    """Expand a node list with the cluster's own ``scontrol show hostnames``.

    :func:`engine.slurm.hostlist.expand` gives the same answer without a round trip; this
    is for node names whose syntax only the site's Slurm understands.
    """
    if not nodelist.strip():
        return []  # scontrol would fall back to $SLURM_JOB_NODELIST
    argv = ["scontrol", "show", "hostnames", nodelist]
    result = run(argv)
    if result.rc != 0:
        raise command_error(argv, result, doing=f"expand the node list {nodelist!r}")
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


# --------------------------------------------------------------------------- scancel


def scancel(
    run: RunFn,
    job_id: str,
    *,
    step: str | int | None = None,
    signal: str | int | None = None,
    batch: bool = False,
    missing_ok: bool = False,
) -> None:
    """Cancel a job, or one step of it, or send it a signal.

    * ``scancel(run, J)``: cancel the job (SIGTERM, then SIGKILL after KillWait).
    * ``scancel(run, J, step=S)``: kill step S at once (Slurm sends SIGKILL to a step).
    * ``scancel(run, J, step=S, signal="TERM")``: signal only step S, through the
      controller (``--ctld``): a graceful stop that cannot hit the rest of the job.

    * ``scancel(run, J, batch=True, signal="TERM")``: signal only the batch script
      (``--batch``; the ``J.batch`` step id is refused by scancel).

    ``missing_ok`` turns "job not found" into a no-op (teardown of something that ended).
    """
    target = _check_job_id(job_id)
    if signal is not None and not _SIGNAL.match(str(signal).upper()):
        raise ValidationError(f"invalid signal {signal!r}: use a name like TERM or a number")
    if step is not None and not _STEP_ID.match(str(step)):
        raise ValidationError(f"invalid step id {step!r}: expected a number")
    argv = scancel_argv(target, step=step, signal=signal, batch=batch)
    target = argv[-1]
    result = run(argv)
    if result.rc != 0:
        err = command_error(argv, result, doing=f"cancel {target}")
        if missing_ok and err.kind is SlurmErrorKind.JOB_NOT_FOUND:
            return
        raise err


def scancel_argv(job_id: str, *, step: str | int | None = None, signal: str | int | None = None, batch: bool = False) -> list[str]:
    """The ``scancel`` argv of :func:`scancel`, unchecked: a dry-run's plan shows it with
    placeholders (``<job id>``) for what only the run knows."""
    argv = ["scancel", "--batch"] if batch else ["scancel"]
    target = str(job_id)
    if signal is not None:
        argv.append(f"--signal={str(signal).upper()}")
    if step is not None:
        target = f"{target}.{step}"
        if signal is not None:
            argv.append("--ctld")
    return [*argv, target]


# --------------------------------------------------------------------------- helpers


def _check_job_id(job_id: str | int) -> str:
    text = str(job_id).strip()
    if not _JOB_ID.match(text):
        raise ValidationError(f"invalid Slurm job id {job_id!r}: expected digits like 12345")
    return text


def _join(argv: Sequence[str]) -> str:
    return shlex.join(argv)
