"""Turning a failed Slurm command into an actionable :class:`~engine.errors.SchedulerError`.

Slurm explains a refusal only in free text on stderr ("invalid partition specified",
"Job violates accounting/QOS policy", ...). Users hit the same handful of refusals again
and again, so each one is classified into a :class:`SlurmErrorKind` with a hint that says
what to check. The message always carries the command line and Slurm's own stderr, so
nothing is lost when a pattern is not (yet) known.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from engine.errors import SchedulerError
from engine.transport.base import CommandResult

__all__ = ["SlurmCommandError", "SlurmErrorKind", "classify", "command_error"]


class SlurmErrorKind(StrEnum):
    """Why a Slurm command failed, as far as its stderr tells."""

    NOT_INSTALLED = "not_installed"
    INVALID_PARTITION = "invalid_partition"
    INVALID_ACCOUNT = "invalid_account"
    INVALID_QOS = "invalid_qos"
    QOS_LIMIT = "qos_limit"
    NODE_CONFIG_UNAVAILABLE = "node_config_unavailable"
    TOO_LARGE = "too_large"
    INVALID_NODE = "invalid_node"
    INVALID_TIME = "invalid_time"
    JOB_NOT_FOUND = "job_not_found"
    CONTROLLER_UNREACHABLE = "controller_unreachable"
    AUTH = "auth"
    PERMISSION = "permission"
    UNSUPPORTED = "unsupported"
    TIMEOUT = "timeout"
    OTHER = "other"


@dataclass(frozen=True)
class _Rule:
    kind: SlurmErrorKind
    pattern: re.Pattern[str]
    summary: str
    hint: str


def _rule(kind: SlurmErrorKind, pattern: str, summary: str, hint: str) -> _Rule:
    return _Rule(kind, re.compile(pattern, re.IGNORECASE | re.MULTILINE), summary, hint)


# First match wins: the specific refusals come before the generic ones.
_RULES: tuple[_Rule, ...] = (
    _rule(
        SlurmErrorKind.NOT_INSTALLED,
        r"command not found|: not found$",
        "Slurm is not installed on this host",
        "run Slurm commands on a login node (the inventory's Slurm login host), or load the "
        "Slurm module in that host's login environment",
    ),
    _rule(
        SlurmErrorKind.AUTH,
        r"authentication|munge",
        "Slurm rejected this host's credentials",
        "check that munged runs on this host with the cluster's key (`munge -n | unmunge`)",
    ),
    _rule(
        SlurmErrorKind.PERMISSION,
        r"Access/permission denied|Invalid user id",
        "Slurm refused: this user may not do that",
        "a job can only be changed or cancelled by its owner (or an operator)",
    ),
    _rule(
        SlurmErrorKind.CONTROLLER_UNREACHABLE,
        r"Unable to contact slurm controller|Socket timed out|Zero Bytes were transmitted"
        r"|Connection refused|Communication connection failure",
        "the Slurm controller did not answer",
        "check `scontrol ping` from that host; the controller may be down or overloaded",
    ),
    _rule(
        SlurmErrorKind.INVALID_PARTITION,
        r"invalid partition",
        "the partition does not exist",
        "list the partitions with `sinfo -s`; leave the partition unset to use the default",
    ),
    _rule(
        SlurmErrorKind.INVALID_ACCOUNT,
        r"invalid account",
        "the account is not valid for this user (or not for this partition)",
        "list your accounts with `sacctmgr -n show assoc user=$USER format=account,partition`",
    ),
    _rule(
        SlurmErrorKind.INVALID_QOS,
        r"invalid qos",
        "the QOS does not exist or this user may not use it",
        "list the QOS you may use with `sacctmgr -n show assoc user=$USER format=qos`",
    ),
    _rule(
        SlurmErrorKind.QOS_LIMIT,
        r"accounting/QOS policy|QOSMax|QOSGrp|AssocMax|AssocGrp|MaxSubmit|QOS.*limit"
        r"|job exceeds",
        "the request exceeds a QOS or association limit",
        "ask for fewer nodes/GPUs or less time, or use another QOS; the limits are shown by "
        "`sacctmgr show qos format=name,maxtres,maxtrespu,maxwall,maxsubmitpu`",
    ),
    _rule(
        SlurmErrorKind.NODE_CONFIG_UNAVAILABLE,
        r"Requested node configuration is not available",
        "no node in the partition can satisfy the request",
        "the per-node request (GPUs, memory, CPUs, constraint) or the node list does not fit "
        "any node; compare with `sinfo -N -o '%N %c %m %G %f'`",
    ),
    _rule(
        SlurmErrorKind.TOO_LARGE,
        r"Node count specification invalid|More processors requested than permitted"
        r"|Requested partition configuration not available",
        "the partition is smaller than the request",
        "ask for fewer nodes or CPUs; `sinfo -o '%P %D %c'` shows each partition's size",
    ),
    _rule(
        SlurmErrorKind.INVALID_NODE,
        r"Invalid node name specified",
        "the node list names a node that is not in the cluster",
        "list the nodes with `sinfo -N`",
    ),
    _rule(
        SlurmErrorKind.INVALID_TIME,
        r"time limit",
        "the time limit is invalid or above the partition's maximum",
        "`sinfo -o '%P %l'` shows each partition's maximum time",
    ),
    _rule(
        SlurmErrorKind.JOB_NOT_FOUND,
        r"Invalid job id|job step .* not found|Expired or invalid job",
        "the job (or step) does not exist",
        "it has ended or never existed; finished jobs leave squeue and scontrol after the "
        "cluster's MinJobAge",
    ),
    _rule(
        SlurmErrorKind.UNSUPPORTED,
        r"unrecognized option|invalid option|unknown option",
        "this Slurm version does not know an option the engine used",
        "check the cluster's Slurm version with `sinfo -V` (the engine needs 22.05 or newer)",
    ),
)


class SlurmCommandError(SchedulerError):
    """A Slurm command failed; ``kind`` says why, ``argv``/``rc``/``stderr`` say what ran."""

    def __init__(
        self,
        message: str,
        *,
        kind: SlurmErrorKind,
        argv: Sequence[str],
        rc: int,
        stderr: str,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.kind = kind
        self.argv = tuple(argv)
        self.rc = rc
        self.stderr = stderr


def classify(stderr: str, rc: int = 1) -> tuple[SlurmErrorKind, str, str | None]:
    """Map Slurm's stderr (and exit status) to ``(kind, summary, hint)``."""
    if rc == 127:
        rule = _RULES[0]
        return rule.kind, rule.summary, rule.hint
    for rule in _RULES:
        if rule.pattern.search(stderr):
            return rule.kind, rule.summary, rule.hint
    return SlurmErrorKind.OTHER, "the Slurm command failed", None


def command_error(
    argv: Sequence[str], result: CommandResult, *, doing: str | None = None
) -> SlurmCommandError:
    """Build the error for a failed ``argv``. ``doing`` names the intent ("submit the job")."""
    hint: str | None
    if result.timed_out:
        kind, summary, hint = (
            SlurmErrorKind.TIMEOUT,
            "the Slurm command timed out",
            "the controller may be overloaded; `scontrol ping` shows whether it answers",
        )
    else:
        kind, summary, hint = classify(result.stderr, result.rc)
    head = f"could not {doing}: {summary}" if doing else summary
    stderr = _tail(result.stderr) or "(no stderr)"
    message = (
        f"{head}\n  command: {shlex.join(argv)}\n  exit status: {result.rc}\n  stderr: {stderr}"
    )
    return SlurmCommandError(
        message, kind=kind, argv=argv, rc=result.rc, stderr=result.stderr, hint=hint
    )


def _tail(text: str, lines: int = 15) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return "\n          ".join(kept)
