"""Three-valued evaluation of task keywords: known, decided at run time, or an error.

A dry-run evaluates the same keywords as the run, but some values exist only once
something has run (a registered result, a fact a rescue sets, an allocated node): they are
:class:`~engine.template.Unknown`, and any expression touching one is unknown too. What a
keyword does with an unknown value is one policy per keyword (:data:`ON_UNKNOWN`), not a
decision of each call site. An error is never swallowed here: the executor turns it into
a failure of the task on that host (Ansible 2.19), in a dry-run as in the run.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from engine.errors import SmlplayError, TemplateError
from engine.template import Unknown, UnknownValue

T = TypeVar("T")


@dataclass(frozen=True)
class Known(Generic[T]):
    value: T


@dataclass(frozen=True)
class Undecided:
    """Decided at run time: the value depends on ``unknown``."""

    unknown: Unknown


@dataclass(frozen=True)
class Failed:
    error: SmlplayError


Evaluation = Known[Any] | Undecided | Failed


def evaluate(compute: Callable[[], Any]) -> Evaluation:
    """Run ``compute`` (a render, a condition) and classify what came out."""
    try:
        value = compute()
    except UnknownValue as exc:
        return Undecided(exc.unknown)
    except SmlplayError as exc:
        return Failed(exc)
    return Undecided(value) if isinstance(value, Unknown) else Known(value)


class OnUnknown(enum.Enum):
    """What a keyword means, in a dry-run, when its value is decided at run time."""

    #: ``when``: the task is planned under its condition, the run decides
    RUN_IT = "planned under its condition"
    #: ``ignore_errors``, ``run_once``: the plan takes the keyword's default
    DEFAULT_FALSE = "taken as false"
    #: ``loop``: one placeholder item stands for the items
    ONE_ITEM = "one placeholder item"
    #: ``args``, ``name``, ``delegate_to``, ``loop_control.label``: shown as a placeholder
    PLACEHOLDER = "shown as a placeholder"


ON_UNKNOWN: dict[str, OnUnknown] = {
    "when": OnUnknown.RUN_IT,
    "ignore_errors": OnUnknown.DEFAULT_FALSE,
    "run_once": OnUnknown.DEFAULT_FALSE,
    "loop": OnUnknown.ONE_ITEM,
    "args": OnUnknown.PLACEHOLDER,
    "name": OnUnknown.PLACEHOLDER,
    "label": OnUnknown.PLACEHOLDER,
    "delegate_to": OnUnknown.PLACEHOLDER,
}


def decide(keyword: str, evaluation: Evaluation, *, dry_run: bool) -> Any:
    """The value ``keyword`` takes: the known value, the keyword's policy for an unknown one
    (a dry-run), or the error raised (the executor makes it a task failure)."""
    if isinstance(evaluation, Known):
        return evaluation.value
    if isinstance(evaluation, Failed):
        raise evaluation.error
    if not dry_run:  # a placeholder that reached the run is an engine bug, shown as such
        raise TemplateError(f"'{keyword}' depends on {evaluation.unknown}, which has no value at run time")
    policy = ON_UNKNOWN[keyword]
    if policy is OnUnknown.RUN_IT:
        return True
    if policy is OnUnknown.DEFAULT_FALSE:
        return False
    if policy is OnUnknown.ONE_ITEM:
        return [evaluation.unknown]
    return evaluation.unknown
