"""Read-only values that many hosts share by reference.

A value computed once per run and set as a fact on every host of a group (a group's worker
placement) would otherwise be copied and walked once per host: quadratic in nodes. These
types are a plain ``list`` / ``dict`` to templates, JSON and ``isinstance`` checks, but raise
on mutation, so sharing one object is safe, and they are known to hold no placeholder
(:func:`engine.executor.results.has_unknown` skips them).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, NoReturn

__all__ = ["FrozenDict", "FrozenList", "Known", "freeze"]


class Known:
    """Marker: a value with no :class:`engine.template.Unknown` anywhere inside."""

    __slots__ = ()


def _read_only(self: Any, *args: Any, **kwargs: Any) -> NoReturn:
    raise TypeError(f"{type(self).__name__} is shared between hosts and read-only: copy it first (e.g. `| list`, `combine`)")


class FrozenList(list[Any], Known):
    """A list that refuses changes; its copies (``copy``, ``deepcopy``, pickle) are plain
    lists that belong to whoever made them."""

    __slots__ = ()
    append = extend = insert = pop = remove = clear = sort = reverse = _read_only
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _read_only

    def __copy__(self) -> list[Any]:
        return list(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> list[Any]:
        return [copy.deepcopy(v, memo) for v in self]

    def __reduce__(self) -> tuple[Any, ...]:
        return (list, (list(self),))


class FrozenDict(dict[str, Any], Known):
    """A dict that refuses changes; its copies are plain dicts (see :class:`FrozenList`)."""

    __slots__ = ()
    __setitem__ = __delitem__ = __ior__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only

    def __copy__(self) -> dict[str, Any]:
        return dict(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        return {k: copy.deepcopy(v, memo) for k, v in self.items()}

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, (dict(self),))


def freeze(value: Any) -> Any:
    """A read-only deep copy of lists and mappings (other values as they are); ``value``
    itself when it holds a placeholder (it is not :class:`Known` then)."""
    from engine.template import Unknown

    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, Unknown):
            return value
        if isinstance(v, Mapping):
            stack.extend(v.values())
        elif isinstance(v, list | tuple):
            stack.extend(v)
    return _freeze(value)


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return FrozenDict({str(k): _freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return FrozenList(_freeze(v) for v in value)
    return value
