"""Durations as users write them: ``90``, ``90s``, ``5m``, ``1h30m``, ``1.5h``."""

from __future__ import annotations

import math
import re

from engine.errors import Position, TemplateError, ValidationError

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?")
_FACTORS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object, *, what: str = "duration") -> float:
    """Seconds as a float; raises :class:`ValidationError` for anything else."""
    if isinstance(value, bool):
        raise ValidationError(f"{what}: expected a duration, got a boolean")
    if isinstance(value, int | float):
        if value < 0:
            raise ValidationError(f"{what}: a duration cannot be negative ({value})")
        return _bounded(float(value), what)
    text = str(value).strip().lower()
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos or (match.group(2) is None and match.end() != len(text)):
            break
        total += float(match.group(1)) * _FACTORS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValidationError(f"{what}: cannot read {value!r} as a duration (examples: 30, 30s, 5m, 1h30m)")
    return _bounded(total, what)


#: Longer than any run (~31 years); beyond it time.sleep/Event.wait raise OverflowError.
MAX_DURATION = 1e9


def _bounded(seconds: float, what: str) -> float:
    if not math.isfinite(seconds) or seconds > MAX_DURATION:  # YAML .inf/.nan, 1e30h
        raise ValidationError(f"{what}: a duration must be a finite number of seconds, at most {MAX_DURATION:.0e}")
    return seconds


def rendered_duration(value: object, *, what: str, pos: Position | None, context: str | None) -> float:
    """A duration rendered at run time (``delay: "{{ wait }}"``): seconds, or a
    :class:`TemplateError` at the field that names the task, never a ValueError."""
    try:
        return parse_duration(value, what=what)
    except ValidationError as exc:
        raise TemplateError(exc.message, pos=pos, context=context) from None


def format_duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
