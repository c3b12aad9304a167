"""What to ask Slurm for: an allocation request built once from a play's variables.

The request is validated before anything is submitted, so a typo in ``partition`` or a
time limit like ``"2h"`` is reported against the variable instead of as sbatch's stderr.
User-supplied extra flags may not repeat an option the request already sets: with Slurm
the last flag wins, so a silent duplicate would make the generated value a lie.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from engine.errors import ValidationError

__all__ = ["AllocationRequest"]

_TIME = re.compile(r"^((\d+-)?\d+(:\d{1,2}){0,2}|UNLIMITED|INFINITE)$", re.IGNORECASE)
_NAME = re.compile(r"^[A-Za-z0-9_.@+\-]+$")
_SHORT = {
    "-A": "--account",
    "-C": "--constraint",
    "-J": "--job-name",
    "-N": "--nodes",
    "-o": "--output",
    "-p": "--partition",
    "-q": "--qos",
    "-t": "--time",
    "-w": "--nodelist",
    "-x": "--exclude",
}


@dataclass(frozen=True)
class AllocationRequest:
    """An sbatch allocation for a serving stack: whole nodes, optionally with GPUs."""

    nodes: int = 1
    job_name: str = "smlplay"
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time_limit: str | None = None
    gpus_per_node: int | None = None
    nodelist: str | None = None
    exclude: str | None = None
    constraint: str | None = None
    reservation: str | None = None
    exclusive: bool = False
    output: str | None = None
    extra_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.nodes, bool) or not isinstance(self.nodes, int) or self.nodes < 1:
            raise ValidationError(f"nodes must be a positive integer, not {self.nodes!r}")
        if self.gpus_per_node is not None and (
            isinstance(self.gpus_per_node, bool)
            or not isinstance(self.gpus_per_node, int)
            or self.gpus_per_node < 0
        ):
            raise ValidationError(
                f"gpus_per_node must be a non-negative integer, not {self.gpus_per_node!r}"
            )
        for name in ("job_name", "partition", "account", "qos", "reservation"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, str) and _NAME.match(value)):
                raise ValidationError(
                    f"{name} {value!r} is not a valid Slurm name (letters, digits, _.-@+)"
                )
        if self.time_limit is not None and not _TIME.match(str(self.time_limit)):
            raise ValidationError(
                f"time_limit {self.time_limit!r} is not a Slurm time",
                hint="use minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS (e.g. 04:00:00)",
            )
        generated = {flag for flag, value in self._options_by_flag().items() if _given(value)}
        for arg in self.extra_args:
            flag = arg.split("=", 1)[0] if arg.startswith("--") else _SHORT.get(arg[:2], "")
            if flag in generated:
                raise ValidationError(
                    f"extra_args repeats {flag}, which the request already sets",
                    hint=f"set the request's own field instead of passing {flag} again",
                )

    @classmethod
    def from_vars(cls, data: Mapping[str, Any]) -> AllocationRequest:
        """Build from a mapping (the play's ``slurm:`` variables); unknown keys are errors.

        ``time`` is accepted as an alias of ``time_limit`` (sbatch's own name)."""
        known = {f.name for f in fields(cls)}
        values = dict(data)
        if "time" in values:
            if "time_limit" in values:
                raise ValidationError("give either `time` or `time_limit`, not both")
            values["time_limit"] = values.pop("time")
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValidationError(
                f"unknown Slurm request field(s): {', '.join(unknown)}",
                hint=f"known fields: {', '.join(sorted(known | {'time'}))}",
            )
        if "extra_args" in values:
            extra = values["extra_args"]
            if isinstance(extra, str) or not isinstance(extra, Sequence):
                raise ValidationError("extra_args must be a list of strings")
            values["extra_args"] = tuple(str(a) for a in extra)
        if values.get("time_limit") is not None:
            values["time_limit"] = str(values["time_limit"])
        return cls(**values)

    def sbatch_options(self) -> list[str]:
        """The sbatch options for this request, generated ones first, then ``extra_args``."""
        out: list[str] = []
        for flag, value in self._options_by_flag().items():
            if value is True:
                out.append(flag)
            elif _given(value):
                out.append(f"{flag}={value}")
        return [*out, *self.extra_args]

    def _options_by_flag(self) -> dict[str, Any]:
        return {
            "--job-name": self.job_name,
            "--nodes": self.nodes,
            "--ntasks-per-node": 1,
            "--partition": self.partition,
            "--account": self.account,
            "--qos": self.qos,
            "--time": self.time_limit,
            "--gpus-per-node": self.gpus_per_node,
            "--nodelist": self.nodelist,
            "--exclude": self.exclude,
            "--constraint": self.constraint,
            "--reservation": self.reservation,
            "--exclusive": self.exclusive,
            "--output": self.output,
        }


def _given(value: Any) -> bool:
    return value is not None and value is not False
