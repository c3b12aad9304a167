"""Layered variables with a short, documented precedence and an origin for every value.

Precedence, lowest first (later layers win; dicts are replaced, not merged -- use
``combine`` to merge):

1. role defaults            (``roles/R/defaults/main.yaml``; visible to R's tasks only)
2. inventory group vars     (``all`` first, then parents before children)
3. inventory host vars
4. play vars and vars_files
5. role vars and role params (``roles/R/vars/main.yaml``, ``- role: R`` parameters)
6. block and task vars      (outer block first, the task's own last)
7. host facts               (``register`` results and ``set_fact``)
8. extra vars               (``-e k=v``, ``-e @file.yaml``, ``-e '{"json": 1}'``)

Eight levels instead of Ansible's 22, and ``smlplay vars --explain NAME`` prints which one
won and where each candidate was written.

Values are rendered lazily, on first use, against the whole scope; a variable that refers
to itself (directly or through others) is reported with its cycle: ``a -> b -> a``.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine import secrets
from engine.errors import Position, TemplateError
from engine.template import Templar

LEVELS = (
    "role defaults",
    "inventory group vars",
    "inventory host vars",
    "play vars",
    "role vars",
    "task vars",
    "host facts",
    "extra vars",
)


@dataclass(frozen=True)
class Layer:
    """One source of variables at one precedence level.

    ``templated`` is false for values that were produced by execution (registered results,
    facts): command output containing ``{{`` must never be rendered again.
    """

    level: str
    source: str
    values: Mapping[str, Any]
    templated: bool = True

    @functools.cached_property
    def patch_roots(self) -> frozenset[str]:
        """The variables this layer patches one field of (``-e layout.decode.workers=2``
        patches ``layout``): extra vars only; worked out once per layer, not per scope."""
        if self.level != "extra vars":
            return frozenset()
        return frozenset(name.split(".", 1)[0] for name in self.values if "." in name)

    def origin(self, key: str) -> str:
        pos = getattr(self.values, "value_pos", {}).get(key)
        where = str(pos) if isinstance(pos, Position) else self.source
        return f"{self.level} ({where})"


@dataclass
class Explanation:
    name: str
    value: Any
    winner: str
    candidates: list[tuple[str, Any]] = field(default_factory=list)


class VarScope(Mapping[str, Any]):
    """A lazy, read-only view over layers for one host and one task.

    Built per (host, task) from references to the layers (cheap: nothing is copied), and
    caches what it renders, so a variable used by many fields renders once.
    """

    def __init__(
        self,
        layers: Sequence[Layer],
        templar: Templar,
        *,
        magic: Mapping[str, Any] | None = None,
        patch_roots: frozenset[str] | None = None,
    ) -> None:
        """``patch_roots``: what :attr:`Layer.patch_roots` of ``layers`` add up to, where the
        caller knows it (worked out on first use otherwise)."""
        self._layers = list(layers)
        self._templar = templar
        self._magic = dict(magic or {})
        self._cache: dict[str, Any] = {}
        self._resolving: list[str] = []
        self._patch_roots: frozenset[str] | set[str] | None = patch_roots

    # -- Mapping protocol ------------------------------------------------------------------
    def __contains__(self, key: object) -> bool:
        # Jinja asks `in` before every lookup: answer from what was already resolved first
        if key in self._cache or key in self._magic:
            return True
        for layer in self._layers:  # noqa: SIM110 (a loop, not any(<generator>): asked ~500,000 times at 1024 nodes)
            if key in layer.values:
                return True
        return False

    def __getitem__(self, key: str) -> Any:
        if key in self._cache:
            return self._cache[key]
        found = self._lookup(key)
        if found is None:
            raise KeyError(key)
        return self._resolve(key, *found)

    def get_or(self, key: str, default: Any) -> Any:
        """``self[key]``, or ``default`` when undefined: one probe (templates ask ``in``
        and then ``[]`` for every variable they read)."""
        cache = self._cache
        if key in cache:
            return cache[key]
        found = self._lookup(key)
        if found is None:
            return default
        return self._resolve(key, *found)

    def _resolve(self, key: str, layer: Layer | None, raw: Any) -> Any:
        if layer is None or not layer.templated:
            value = raw
        else:
            if key in self._resolving:
                cycle = " -> ".join([*self._resolving[self._resolving.index(key):], key])
                raise TemplateError(
                    f"variable '{key}' refers to itself via {cycle}",
                    pos=getattr(layer.values, "value_pos", {}).get(key),
                )
            self._resolving.append(key)
            try:
                value = self._templar.render(raw, self, pos=_pos(layer, key))
            finally:
                self._resolving.pop()
        value = self._apply_patches(key, value)
        if secrets.is_secret_name(key):
            secrets.remember(value)  # masked wherever it, or a string holding it, goes out
        self._cache[key] = value
        return value

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for source in [self._magic, *(layer.values for layer in self._layers)]:
            for key in source:
                if key not in seen and "." not in key:
                    seen.add(key)
                    yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)

    # -- extras --------------------------------------------------------------------------
    def child(self, layers: Sequence[Layer], magic: Mapping[str, Any] | None = None) -> VarScope:
        """A scope with more layers on top (loop variables, task vars)."""
        merged = dict(self._magic)
        merged.update(magic or {})
        roots = None if self._patch_roots is None else self._patch_roots.union(*(layer.patch_roots for layer in layers))
        return VarScope([*self._layers, *layers], self._templar, magic=merged, patch_roots=frozenset(roots) if roots is not None else None)

    def with_magic(self, **magic: Any) -> VarScope:
        return self.child([], magic)

    def raw(self, key: str) -> Any:
        """The winning value of ``key`` as written (not rendered); ``None`` when undefined."""
        found = self._lookup(key)
        return None if found is None else found[1]

    @property
    def layers(self) -> list[Layer]:
        return list(self._layers)

    def explain(self, key: str) -> Explanation:
        """Where ``key``'s value comes from, and every lower-precedence candidate."""
        candidates = [
            (layer.origin(key), layer.values[key])
            for layer in reversed(self._layers)
            if key in layer.values
        ]
        if key in self._magic:
            candidates.insert(0, ("magic variable", self._magic[key]))
        if not candidates:
            raise KeyError(key)
        return Explanation(key, self[key], candidates[0][0], candidates)

    def _lookup(self, key: str) -> tuple[Layer | None, Any] | None:
        if key in self._magic:
            return None, self._magic[key]
        for layer in reversed(self._layers):
            if key in layer.values:
                return layer, layer.values[key]
        return None

    def _apply_patches(self, key: str, value: Any) -> Any:
        """``-e layout.decode.workers=2`` changes one field of ``layout``, not all of it."""
        if self._patch_roots is None:  # once per scope, not once per lookup
            self._patch_roots = {root for layer in self._layers for root in layer.patch_roots}
        if key not in self._patch_roots:
            return value
        prefix = key + "."
        patches = [
            (layer, name) for layer in self._layers if layer.level == "extra vars"
            for name in layer.values if name.startswith(prefix)
        ]
        if not patches:
            return value
        value = copy.deepcopy(value)
        for layer, name in patches:
            target = value
            parts = name[len(prefix):].split(".")
            for part in parts[:-1]:
                if not isinstance(target, dict):
                    raise TemplateError(f"-e {name}: '{key}' has no mapping at '{part}'")
                target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise TemplateError(f"-e {name}: cannot set a field of a non-mapping value")
            target[parts[-1]] = self._templar.render(layer.values[name], self)
        return value


def _pos(layer: Layer, key: str) -> Position | None:
    return getattr(layer.values, "value_pos", {}).get(key)
