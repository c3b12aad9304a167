"""Slurm: allocations, job queries and step command lines, on a host reached by ``run``.

Everything here is plain functions over an injected :data:`RunFn` (local or over SSH on a
login node) and frozen dataclasses; nothing talks to Slurm behind the caller's back.

* :mod:`~engine.slurm.hostlist`: ``nid[001-004]`` <-> names.
* :mod:`~engine.slurm.commands`: sbatch, salloc, squeue, scontrol, scancel wrappers.
* :mod:`~engine.slurm.request`: the allocation a play asks for.
* :mod:`~engine.slurm.srun`: the srun argv of one step, container flags included.
* :mod:`~engine.slurm.errors`: Slurm's stderr mapped to actionable errors.
"""

from engine.slurm.commands import (
    HOLD_SCRIPT,
    StepInfo,
    job_info,
    parse_key_values,
    salloc,
    sbatch,
    scancel,
    show_hostnames,
    show_job,
    squeue,
    steps,
    wait_until_running,
)
from engine.slurm.errors import SlurmCommandError, SlurmErrorKind, classify, command_error
from engine.slurm.hostlist import compress, expand, sort_key
from engine.slurm.jobs import FINISHED_STATES, HOPELESS_REASONS, JobInfo, parse_squeue_json
from engine.slurm.request import AllocationRequest
from engine.slurm.runner import RunFn, local_run, transport_runner
from engine.slurm.srun import ContainerFlags, SrunStep, render, script_with_env, srun_argv

__all__ = [
    "FINISHED_STATES",
    "HOLD_SCRIPT",
    "HOPELESS_REASONS",
    "AllocationRequest",
    "ContainerFlags",
    "JobInfo",
    "RunFn",
    "SlurmCommandError",
    "SlurmErrorKind",
    "SrunStep",
    "StepInfo",
    "classify",
    "command_error",
    "compress",
    "expand",
    "job_info",
    "local_run",
    "parse_key_values",
    "parse_squeue_json",
    "render",
    "salloc",
    "sbatch",
    "scancel",
    "script_with_env",
    "show_hostnames",
    "show_job",
    "sort_key",
    "squeue",
    "srun_argv",
    "steps",
    "transport_runner",
    "wait_until_running",
]
