"""Named value types and cross-field rules for the voluptuous schemas.

Each is a small class, not an ad-hoc check in the loader, so the schemas stay data: a
:class:`Rule` or :class:`Type` says what it accepts in words (``expected``), carries the
JSON Schema fragment it stands for (``json_schema``, read by ``smlplay schema``), and raises
:class:`Invalid` with a hint (``did you mean 'ssh'?``) that the error rendering shows.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import voluptuous as vol

#: What every duration field accepts, in the words of its error message.
DURATION_FORMS = "a number of seconds or a string like 30s, 5m, 1h30m"


class Invalid(vol.Invalid):
    """A voluptuous error that also carries a hint for the user."""

    def __init__(self, message: str, path: list[Any] | None = None, *, hint: str | None = None) -> None:
        super().__init__(message, path)
        self.hint = hint


class RuleInvalid(Invalid):
    """A cross-field rule failed: reported at the mapping (or the field) it names."""


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def nearest(word: str, candidates: Iterable[str]) -> str | None:
    """The nearest valid name for a typo (``notfy`` -> ``notify``), if one is close."""
    matches = difflib.get_close_matches(str(word), sorted(map(str, candidates)), n=1, cutoff=0.6)
    return matches[0] if matches else None


class Type:
    """A named value type: ``expected`` (words) and ``json_schema`` (data)."""

    expected = "a valid value"
    json_schema: Mapping[str, Any] = {}

    def __call__(self, value: Any) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Duration(Type):
    """Seconds as a number (>= 0), or a string ``parse_duration`` reads (``30s``, ``5m``)."""

    expected = f"a duration: {DURATION_FORMS}"
    json_schema = {
        # units in any case, as parse_duration lower-cases (JSON Schema patterns have no flags)
        "anyOf": [{"type": "number", "minimum": 0, "maximum": 1e9}, {"type": "string", "pattern": r"^\s*(\d+(\.\d+)?\s*([mM][sS]|[sSmMhHdD])?)+\s*$"}],
        "description": f"a duration: {DURATION_FORMS}",
    }

    def __call__(self, value: Any) -> Any:
        self.seconds(value)
        return value

    def seconds(self, value: Any) -> float:
        """What ``value`` lasts; :class:`Invalid` (saying what is expected) if no duration."""
        from engine.errors import ValidationError
        from engine.units import parse_duration

        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise Invalid(f"expected {self.expected}")
        try:
            return parse_duration(value)
        except ValidationError:
            raise Invalid(f"expected {self.expected}") from None


class PositiveDuration(Duration):
    """A :class:`Duration` longer than zero (a timeout: zero would never connect)."""

    expected = f"a duration longer than 0: {DURATION_FORMS}"
    json_schema = {
        "anyOf": [{"type": "number", "exclusiveMinimum": 0, "maximum": 1e9}, Duration.json_schema["anyOf"][1]],
        "description": f"a duration longer than 0: {DURATION_FORMS}",
    }

    def __call__(self, value: Any) -> Any:
        if self.seconds(value) <= 0:
            raise Invalid(f"expected {self.expected}")
        return value


class Port(Type):
    """A TCP port, 1-65535; a string of digits is read as the number (YAML ``"8080"``)."""

    expected = "a port number (1-65535)"
    json_schema = {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 65535}, {"type": "string", "pattern": r"^\s*\d{1,5}\s*$"}]}

    def __call__(self, value: Any) -> int:
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            raise Invalid(f"expected {self.expected}")
        return value


class NonEmptyStr(Type):
    """A string with something in it besides white space (a command, a name, a URL)."""

    expected = "a non-empty string"
    json_schema = {"type": "string", "allOf": [{"pattern": r"\S"}, {"pattern": r"^[^\u0000]*$"}]}  # and no NUL

    def __call__(self, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise Invalid(f"expected {self.expected}")
        if "\0" in value:  # no path, argv or URL can hold one: os calls raise ValueError
            raise Invalid(f"expected {self.expected} without NUL characters")
        return value


class VarName(Type):
    """A variable name (``register:``, ``loop_var:``): letters, digits and ``_``."""

    expected = "a variable name (letters, digits and '_', not starting with a digit)"
    json_schema = {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"}

    def __call__(self, value: Any) -> str:
        import re

        if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise Invalid(f"expected {self.expected}")
        return value


class Boolean(Type):
    """``true`` or ``false``; ``yes``/``no`` are strings in YAML 1.2, so say so."""

    expected = "true or false"
    json_schema = {"type": "boolean"}

    def __call__(self, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        word = value.strip().lower() if isinstance(value, str) else None
        hint = None
        if word in ("yes", "no", "on", "off", "y", "n"):
            hint = f"write {'true' if word in ('yes', 'on', 'y') else 'false'}: '{value}' is a string in YAML 1.2"
        raise Invalid(f"expected {self.expected}", hint=hint)


class Condition(Type):
    """What ``when``/``until``/``failed_when`` take: a bare expression, a boolean, or a list."""

    expected = "a condition (a bare expression like result.rc == 0, or true/false) or a list of them"
    json_schema = {
        "anyOf": [{"type": ["string", "boolean"]}, {"type": "array", "items": {"type": ["string", "boolean"]}}],
        "description": expected,
    }

    def __call__(self, value: Any) -> Any:
        for i, item in enumerate(value if isinstance(value, list) else [value]):
            if not isinstance(item, str | bool):
                raise Invalid(f"expected {self.expected}", [i] if isinstance(value, list) else None)
        return value


class StrOrList(Type):
    """A non-empty string or a non-empty list of them (``assert``'s ``that``, ``hosts``)."""

    def __init__(self, what: str, *, empty: bool = False) -> None:
        self.expected, self.empty = what, empty
        item = {"type": "string", "pattern": r"\S"}
        self.json_schema = {"anyOf": [item, {"type": "array", "items": item, "minItems": 0 if empty else 1}], "description": what}

    def __call__(self, value: Any) -> Any:
        items = value if isinstance(value, list) else [value]
        if not items and not self.empty:
            raise Invalid(f"expected {self.expected}, not an empty list")
        for i, item in enumerate(items):
            if not isinstance(item, str) or not item.strip():
                raise Invalid(f"expected {self.expected}", [i] if isinstance(value, list) else None)
        return value

    def __repr__(self) -> str:
        return f"StrOrList({self.expected!r})"


class OneOf(Type):
    """One of a fixed set of names; a near miss gets "did you mean"."""

    def __init__(self, choices: Sequence[str]) -> None:
        self.choices = tuple(choices)
        self.expected = "one of: " + ", ".join(self.choices)
        self.json_schema = {"enum": list(self.choices)}

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str) and value in self.choices:
            return value
        guess = nearest(str(value), self.choices) if isinstance(value, str) else None
        raise Invalid(f"expected {self.expected}", hint=f"did you mean '{guess}'?" if guess else None)

    def __repr__(self) -> str:
        return f"OneOf({list(self.choices)!r})"


class MappingOf(Type):
    """A mapping validated by ``inner``; anything else is refused with ``what`` it should be."""

    def __init__(self, inner: Any, what: str) -> None:
        self.inner = vol.Schema(inner)
        self.expected = what
        self.json_schema = {"type": "object", "description": what}

    def __call__(self, value: Any) -> Any:
        if not isinstance(value, dict):
            raise Invalid(f"expected {self.expected}")
        return self.inner(value)

    def __repr__(self) -> str:
        return f"MappingOf({self.expected!r})"


class ListOf(Type):
    """A list of ``inner``; anything else is refused with ``what`` it should be."""

    def __init__(self, inner: Any, what: str) -> None:
        self.inner = vol.Schema([inner])
        self.expected = what
        self.json_schema = {"type": "array", "description": what}

    def __call__(self, value: Any) -> Any:
        if not isinstance(value, list):
            raise Invalid(f"expected {self.expected}")
        return self.inner(value)

    def __repr__(self) -> str:
        return f"ListOf({self.expected!r})"


# --- cross-field rules -------------------------------------------------------------------


class Rule:
    """A check across the fields of one mapping, applied after its keys validated."""

    description = ""

    def __call__(self, data: Any) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description!r})"


class AtLeastOne(Rule):
    """At least one of ``keys`` is present (``copy`` needs ``src`` or ``content``)."""

    def __init__(self, *keys: str, hint: str | None = None) -> None:
        self.keys = keys
        self.hint = hint
        self.description = ("one of " + _or(keys) + " is required") if len(keys) > 1 else f"'{keys[0]}' is required"
        self.json_schema = {"anyOf": [{"required": [k]} for k in keys]}

    def __call__(self, data: Any) -> Any:
        if isinstance(data, dict) and not any(k in data for k in self.keys):
            raise RuleInvalid(self.description, hint=self.hint)
        return data


class NotLonger(Rule):
    """Duration ``shorter`` is at most duration ``longer`` (health ``interval`` <= ``timeout``).

    Skipped while either is a template: checked again on the rendered values."""

    def __init__(self, shorter: str, longer: str, *, default_longer: float | None = None) -> None:
        self.shorter, self.longer, self.default_longer = shorter, longer, default_longer
        self.description = f"'{shorter}' must not be longer than '{longer}'"

    def __call__(self, data: Any) -> Any:
        from engine.errors import ValidationError
        from engine.units import format_duration, parse_duration

        if not isinstance(data, dict) or self.shorter not in data:
            return data
        raw_short, raw_long = data[self.shorter], data.get(self.longer, self.default_longer)
        if raw_long is None or is_template(raw_short) or is_template(raw_long):
            return data
        try:
            short, long = parse_duration(raw_short), parse_duration(raw_long)
        except ValidationError:
            return data  # the field's own type reports it
        if short > long:
            given = f"'{self.longer}' ({format_duration(long)}{'' if self.longer in data else ', the default'})"
            raise RuleInvalid(
                f"'{self.shorter}' ({format_duration(short)}) is longer than {given}",
                [self.shorter],
                hint=f"make '{self.shorter}' at most '{self.longer}'",
            )
        return data


def _or(keys: Sequence[str]) -> str:
    quoted = [f"'{k}'" for k in keys]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


class Templatable(Type):
    """``inner``, or a Jinja2 string now (the rendered value is checked against ``inner``)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._compiled = vol.Schema(inner)
        self.expected = getattr(inner, "expected", "a valid value") + " or a {{ expression }}"
        self.json_schema = {"anyOf": [getattr(inner, "json_schema", {}), {"type": "string", "pattern": r"\{[{%]"}]}

    def __call__(self, value: Any) -> Any:
        if is_template(value):
            return value
        return self._compiled(value)

    def __repr__(self) -> str:
        return f"Templatable({self.inner!r})"


class Nullable(Type):
    """``inner`` or nothing (``hosts:`` left empty); errors are ``inner``'s, not "not None"."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._compiled = vol.Schema(inner)
        self.expected = getattr(inner, "expected", "a valid value")
        self.json_schema = {"anyOf": [getattr(inner, "json_schema", {}), {"type": "null"}]}

    def __call__(self, value: Any) -> Any:
        return None if value is None else self._compiled(value)

    def __repr__(self) -> str:
        return f"Nullable({self.inner!r})"


class Regex(Type):
    """A regular expression that compiles (a log probe's or ``wait_for``'s pattern)."""

    expected = "a regular expression"
    json_schema = {"type": "string", "format": "regex"}

    def __call__(self, value: Any) -> str:
        import re

        if not isinstance(value, str):
            raise Invalid(f"expected {self.expected}")
        if is_template(value):
            return value
        try:
            re.compile(value)
        except re.error as exc:
            raise Invalid(f"expected {self.expected}: {exc}") from None
        return value


class IntRange(Type):
    """An integer in ``[low, high]`` (``high`` None: no upper bound); never a boolean."""

    def __init__(self, low: int | None = None, high: int | None = None, what: str = "an integer") -> None:
        self.low, self.high = low, high
        bounds = f"{low}-{high}" if low is not None and high is not None else (f">= {low}" if low is not None else f"<= {high}")
        self.expected = f"{what} ({bounds})" if (low is not None or high is not None) else what
        self.json_schema = {"type": "integer", **({"minimum": low} if low is not None else {}), **({"maximum": high} if high is not None else {})}

    def __call__(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(f"expected {self.expected}")
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise Invalid(f"expected {self.expected}")
        return value

    def __repr__(self) -> str:
        return f"IntRange({self.low}, {self.high})"
