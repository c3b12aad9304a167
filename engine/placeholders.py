"""Placeholders: values a dry-run cannot know before the run, and how templates treat them.

A registered result, a fact a rescue sets, an allocated node's address: in a dry-run each is
an :class:`Unknown` that prints as ``<registered: x.y>``. Using one where its value matters
(a comparison, ``bool()``, ``len()``) raises :class:`UnknownValue`: the caller decides what
that means for its keyword (``engine.executor.evaluation``). Filters and value tests are
wrapped so that touching a placeholder is unknown too, never an error; text with one
rendered into it is :class:`PartlyUnknown`.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Mapping
from typing import Any

from engine.errors import SmlplayError


class UnknownValue(Exception):
    """Raised when a dry-run placeholder is used where its real value matters."""

    def __init__(self, unknown: Unknown) -> None:
        super().__init__(repr(unknown))  # repr: not counted as rendered text
        self.unknown = unknown


class Unknown:
    """A value that cannot be known before execution (dry-run only)."""

    __slots__ = ("_label",)

    def __init__(self, label: str) -> None:
        self._label = label

    def __getattr__(self, name: str) -> Unknown:
        if name.startswith("__"):
            raise AttributeError(name)
        return Unknown(f"{self._label}.{name}")

    def __getitem__(self, key: Any) -> Unknown:
        return Unknown(f"{self._label}[{key!r}]")

    def __iter__(self) -> Any:
        yield Unknown(f"{self._label}[*]")

    def __str__(self) -> str:
        _seen.count = getattr(_seen, "count", 0) + 1
        return f"<{self._label}>"

    def __repr__(self) -> str:
        return f"<{self._label}>"

    def __bool__(self) -> bool:
        raise UnknownValue(self)

    # A comparison with a value only the run knows has no answer in a dry-run: raising
    # (instead of object's identity ``==``, always False) makes `when: r.rc == 0` show as a
    # condition in the plan instead of silently skipping the task.
    def _unknown(self, other: object) -> bool:
        if other is self:
            return True
        raise UnknownValue(self)

    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _unknown

    def __hash__(self) -> int:
        return hash(self._label)

    def __len__(self) -> int:
        raise UnknownValue(self)

    def _op(self, *_: Any) -> Unknown:
        raise UnknownValue(self)

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _op
    __truediv__ = __floordiv__ = __mod__ = _op
    __int__ = __float__ = _op


class PartlyUnknown(str):
    """Text with a placeholder rendered into it (``"profile-<registered: x.name>-c1"``): the
    plan shows it as text, but it is not the value the run will have, so nothing checks it
    as one (argument schemas, process names) before the run."""

    __slots__ = ()


_seen = threading.local()  # how many placeholders this thread has rendered as text


def rendered() -> int:
    """How many placeholders this thread has turned into text so far (a render that changes
    it produced :class:`PartlyUnknown` text)."""
    return getattr(_seen, "count", 0)


#: Tests whose answer depends on the value (not its type): over a value only the run knows,
#: the answer is decided at run time. Type tests (``is string``) answer for the placeholder.
_TESTS_OF_VALUES = ("failed", "changed", "skipped", "succeeded", "success", "match", "search", "regex", "in")


def _filtered_value(f: Any, args: tuple[Any, ...]) -> Any:
    # Jinja passes a context/environment first to filters marked with @pass_*
    index = 1 if getattr(f, "jinja_pass_arg", None) is not None else 0
    return args[index] if len(args) > index else None


def _unknown_aware(f: Any, name: str) -> Any:
    """A filter that fails on a value only the run knows gives a value only the run knows,
    never an error (``r.stdout | from_json`` in a dry-run). One that succeeds keeps its
    result: ``quote`` or ``join`` over a placeholder is how the plan shows the command. A
    check a filter makes of known input (an engine error) stays an error."""

    @functools.wraps(f)
    def filtered(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except UnknownValue:
            raise
        except Exception as exc:
            value = _filtered_value(f, args)
            if _holds_unknown(value):
                label = f"{value._label} | {name}" if isinstance(value, Unknown) else f"unknown: {name}"
                raise UnknownValue(Unknown(label)) from None
            if isinstance(exc, SmlplayError) or not any(_holds_unknown(a) for a in (*args, *kwargs.values())):
                raise
            raise UnknownValue(Unknown(f"unknown: {name}")) from None

    return filtered


def _unknown_test(t: Any) -> Any:
    @functools.wraps(t)
    def test(*args: Any, **kwargs: Any) -> Any:
        value = _filtered_value(t, args)
        if isinstance(value, Unknown):
            raise UnknownValue(value)
        return t(*args, **kwargs)

    return test


def _holds_unknown(value: Any, depth: int = 3) -> bool:
    """An Unknown in a value, or in plain containers of it (lazy mappings such as
    ``hostvars`` are not walked: that would render every variable)."""
    if isinstance(value, Unknown | PartlyUnknown):
        return True
    if depth and type(value) is dict:
        return any(_holds_unknown(v, depth - 1) for v in value.values())
    if depth and type(value) in (list, tuple):
        return any(_holds_unknown(v, depth - 1) for v in value)
    return False


def install(env: Any) -> None:
    """Make an environment's filters and value tests placeholder-aware."""
    env.filters.update({name: _unknown_aware(f, name) for name, f in env.filters.items()})
    env.tests.update({name: _unknown_test(env.tests[name]) for name in _TESTS_OF_VALUES if name in env.tests})


def plain(value: Any) -> Any:
    """A JSON/YAML-safe copy of a rendered value (placeholders shown as their text); the
    templates' to_json/to_yaml (engine.filters) and the run record share it."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or kind is float or value is None:
        return value  # the leaves, most of a plan: no import, no isinstance chain
    if kind is dict or kind is list:  # what renders make: neither is a placeholder
        return {str(k): plain(v) for k, v in value.items()} if kind is dict else [plain(v) for v in value]
    if isinstance(value, Unknown):
        return str(value)  # a dry-run shows `<registered: x>` where the run has the value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value
