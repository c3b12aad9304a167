"""Task results: the helpers that show, censor and classify an action's result dict."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from engine.actions.base import Result
from engine.errors import ValidationError
from engine.frozen import Known
from engine.placeholders import plain as _plain
from engine.template import PartlyUnknown, Unknown

RESULT_KEYS_HIDDEN_BY_NO_LOG = ("stdout", "stderr", "stdout_lines", "stderr_lines", "msg", "cmd", "json", "content")


def has_unknown(value: Any) -> bool:
    """Whether a rendered value holds an :class:`Unknown` anywhere (iterative: no generator
    per node, it runs on every task's arguments)."""
    stack = [value]
    while stack:
        v = stack.pop()
        kind = type(v)
        if kind is str or kind is int or kind is bool or v is None:
            continue  # the leaves, most of the arguments: no isinstance chain
        if kind is dict:  # what renders make
            stack.extend(v.values())
            continue
        if isinstance(v, Unknown | PartlyUnknown):
            return True
        if isinstance(v, Known):  # shared read-only values (a group's placement) hold none
            continue
        if isinstance(v, Mapping):
            stack.extend(v.values())
        elif isinstance(v, list | tuple):
            stack.extend(v)
    return False


def _walk(value: Any) -> Iterable[Any]:
    yield value
    if isinstance(value, Mapping):
        for v in value.values():
            yield from _walk(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _walk(v)


def _arg_pos(args: Any, exc: ValidationError) -> Any:
    """The position, in the task as written, of the argument a rendered value failed on."""
    from engine.load.schema import position_for

    path = getattr(exc, "path", None)
    if path:
        try:
            return position_for(args, list(path)) or getattr(args, "pos", None)
        except (KeyError, IndexError, TypeError):
            pass
    return getattr(args, "pos", None)


def _censor(result: Result) -> Result:
    return {k: ("<hidden by no_log>" if k in RESULT_KEYS_HIDDEN_BY_NO_LOG else v) for k, v in result.items()}


def _summary(result: Result) -> dict[str, Any]:
    keep = ("msg", "rc", "stdout", "stderr", "changed", "failed", "skipped", "health", "attempts", "elapsed", "status", "name", "pid", "log")
    out = {k: _plain(result[k]) for k in keep if k in result}
    if "results" in result:
        out["items"] = len(result["results"])
    return out


def _describe_args(args: Any) -> str:
    if isinstance(args, Mapping):
        return ", ".join(f"{k}={_plain(v)!r}" for k, v in args.items())
    return str(args)
