"""Inventory: hosts, groups, their variables, and ``hosts:`` patterns.

Loaded from YAML in Ansible's shape (``all: {hosts, vars, children}``). Unlike the rest of
the model it can grow during a run: an allocation adds its nodes as hosts in groups
(``prefill``, ``decode``...) the way Ansible's ``add_host`` does, so it is a small
thread-safe object rather than a frozen dataclass.

Without an inventory file, ``localhost`` exists implicitly with the local transport; like in
Ansible it is not a member of ``all`` unless listed.
"""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import Position, ValidationError
from engine.load.schema import require_mapping, suggest, validate
from engine.load.specs import INVENTORY_GROUP
from engine.load.yaml import YMap, load_file, position_of
from engine.vars import Layer


@dataclass
class Host:
    name: str
    vars: Mapping[str, Any] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)
    source: str = "inventory"
    implicit: bool = False


@dataclass
class Group:
    name: str
    vars: Mapping[str, Any] = field(default_factory=dict)
    hosts: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    source: str = "inventory"
    pos: Position | None = None


LOCALHOST_VARS = {"connection": "local"}


class Inventory:
    """Hosts and groups; thread-safe so run-time groups can be added during a play."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.hosts: dict[str, Host] = {}
        self.groups: dict[str, Group] = {"all": Group("all"), "ungrouped": Group("ungrouped")}
        self.groups["all"].children.append("ungrouped")
        self.groups["ungrouped"].parents.append("all")
        self._lock = threading.RLock()
        # groups_dict() is read by every variable scope: built once per inventory change
        self._groups_cache: dict[str, list[str]] | None = None
        self._host_groups_cache: dict[str, list[str]] = {}
        self._layers_cache: dict[str, tuple[Any, ...]] = {}

    # -- loading ---------------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | Path) -> Inventory:
        p = Path(path)
        data = load_file(p)
        inv = cls(p)
        if data is None:
            return inv
        root = require_mapping(data, what="inventory", pos=Position(str(p), 1, 1))
        for key in root:
            if key != "all":
                # Allow top-level groups too (Ansible accepts them as children of all).
                inv._load_group(str(key), root[key], parent="all", source=str(p), pos=root.position_of(key, value=False))
            else:
                inv._load_group("all", root[key], parent=None, source=str(p), pos=root.pos)
        return inv

    @classmethod
    def implicit(cls) -> Inventory:
        return cls(None)

    def _load_group(self, name: str, data: Any, *, parent: str | None, source: str, pos: Position | None) -> None:
        self._groups_cache = None
        data = YMap() if data is None else data
        if not isinstance(data, dict):
            raise ValidationError(
                f"inventory group '{name}' must be a mapping of hosts, vars and children, got {type(data).__name__}",
                pos=position_of(data) or pos,
                hint=f"e.g. {name}: {{hosts: {{HOST: {{}}}}, vars: {{VAR: VALUE}}}}",
            )
        validate(INVENTORY_GROUP, data, what=f"inventory group '{name}'")
        group = self._group(name, source=source, pos=pos)
        if parent and parent not in group.parents:
            group.parents.append(parent)
            self._group(parent).children.append(name)
        if data.get("vars"):
            group.vars = data["vars"]
        for host_name, host_vars in (data.get("hosts") or {}).items():
            self.add_host(str(host_name), [name], host_vars or {}, source=source)
        for child, child_data in (data.get("children") or {}).items():
            cpos = data["children"].position_of(child, value=False) if isinstance(data["children"], YMap) else pos
            if str(child) in self._ancestors(name):  # Ansible refuses the loop too
                why = "itself" if str(child) == name else f"'{name}': '{name}' is already inside '{child}'"
                raise ValidationError(
                    f"inventory group '{child}' cannot be a child of {why}",
                    pos=cpos,
                    hint="a group cannot contain itself, directly or through its children",
                )
            self._load_group(str(child), child_data, parent=name, source=source, pos=cpos)

    def _ancestors(self, name: str) -> set[str]:
        """``name`` and every group it is (transitively) a child of."""
        out, todo = set(), [name]
        while todo:
            group = todo.pop()
            if group not in out:
                out.add(group)
                todo.extend(self.groups[group].parents if group in self.groups else ())
        return out

    def _group(self, name: str, *, source: str = "run", pos: Position | None = None) -> Group:
        group = self.groups.get(name)
        if group is None:
            self._groups_cache = None
            group = self.groups[name] = Group(name, source=source, pos=pos)
            if name != "all" and not group.parents:
                pass
        return group

    # -- mutation (run-time groups) ----------------------------------------------------
    def add_host(
        self, name: str, groups: Iterable[str], host_vars: Mapping[str, Any] | None = None, *, source: str = "run"
    ) -> Host:
        with self._lock:
            self._groups_cache = None
            host = self.hosts.get(name)
            if host is None or host.implicit:
                host = self.hosts[name] = Host(name, dict(host_vars or {}), [], source)
            elif host_vars:
                merged = dict(host.vars)
                merged.update(host_vars)
                host.vars = merged
            for group_name in groups:
                group = self._group(group_name, source=source)
                if not group.parents and group_name != "all":
                    group.parents.append("all")
                    self.groups["all"].children.append(group_name)
                if name not in group.hosts:
                    group.hosts.append(name)
                if group_name not in host.groups:
                    host.groups.append(group_name)
            return host

    # -- queries -------------------------------------------------------------------------
    def host(self, name: str) -> Host:
        with self._lock:
            if name in self.hosts:
                return self.hosts[name]
            if name in ("localhost", "127.0.0.1"):
                return Host(name, dict(LOCALHOST_VARS), [], "implicit localhost", implicit=True)
        raise KeyError(name)

    def group_hosts(self, name: str) -> list[str]:
        """All hosts of a group and its descendants, in definition order."""
        with self._lock:
            if name == "all":
                return list(self.hosts)
            out: list[str] = []
            seen: set[str] = set()
            members_seen: set[str] = set()

            def walk(group_name: str) -> None:
                if group_name in seen:
                    return
                seen.add(group_name)
                group = self.groups[group_name]
                members = self._ungrouped() if group_name == "ungrouped" else group.hosts
                for h in members:
                    if h not in members_seen:
                        members_seen.add(h)
                        out.append(h)
                for child in group.children:
                    walk(child)

            walk(name)
            return out

    def _ungrouped(self) -> list[str]:
        """Like Ansible: the hosts that belong to no group other than ``all``/``ungrouped``,
        computed on demand because run-time ``add_host`` can move a host into a group."""
        return [name for name, host in self.hosts.items() if set(host.groups) <= {"all", "ungrouped"}]

    def groups_dict(self) -> dict[str, list[str]]:
        """Every group's hosts (``groups`` in templates). Cached until the inventory changes
        (add_host, a new group): the same dict is shared by all scopes, so treat it as
        read-only."""
        with self._lock:
            if self._groups_cache is None:
                # a host's groups change with them (host_groups() relied on running first)
                self._host_groups_cache.clear()
                self._groups_cache = {name: self.group_hosts(name) for name in self.groups}
            return self._groups_cache

    def host_groups(self, name: str) -> list[str]:
        """A host's groups ordered for variable precedence: all, then parents before children."""
        with self._lock:
            if self._groups_cache is None:
                self._host_groups_cache.clear()
                self.groups_dict()
            cached = self._host_groups_cache.get(name)
            if cached is None:
                cached = self._host_groups_cache[name] = self._host_groups(name)
            return list(cached)

    def _host_groups(self, name: str) -> list[str]:
        with self._lock:
            direct = self.hosts[name].groups if name in self.hosts else []
            depth: dict[str, int] = {}

            def visit(group_name: str, d: int) -> None:
                if group_name in depth and depth[group_name] >= d:
                    return
                depth[group_name] = d
                for parent in self.groups[group_name].parents:
                    visit(parent, d - 1)

            for g in direct:
                visit(g, 0)
            if name in self.hosts:
                depth.setdefault("all", -(10**6))
            return sorted(depth, key=lambda g: (depth[g], g))

    def layers_for(self, name: str) -> list[Layer]:
        """The group and host variable layers of a host, lowest precedence first (built
        once per host while the inventory and the host's vars are the same objects)."""
        with self._lock:
            groups = self.groups_dict()  # a new dict after any change of hosts or groups
            host = self.host(name)
            hit = self._layers_cache.get(name)
            if hit is not None and hit[0] is groups and hit[1] is host and hit[2] is host.vars:
                return list(hit[3])
            layers = [
                Layer("inventory group vars", f"group '{g}' ({self.groups[g].source})", self.groups[g].vars)
                for g in self.host_groups(name)
                if self.groups[g].vars
            ]
            layers.append(Layer("inventory host vars", f"host '{name}' ({host.source})", host.vars))
            self._layers_cache[name] = (groups, host, host.vars, layers)
            return list(layers)

    def select(self, pattern: str | list[str], *, limit: str | None = None) -> list[str]:
        """Hosts matching an Ansible pattern: ``a:b`` union, ``a:&b`` intersection, ``a:!b``
        exclusion, globs, and the implicit ``localhost``."""
        hosts = self._select(pattern)
        if limit:
            allowed = set(self._select(limit))
            hosts = [h for h in hosts if h in allowed]
        return hosts

    def _select(self, pattern: str | list[str]) -> list[str]:
        parts = pattern if isinstance(pattern, list) else _split_pattern(str(pattern))
        result: list[str] = []
        for part in _order_patterns(parts):
            if part.startswith("!"):
                excluded = set(self._match(part[1:]))
                result = [h for h in result if h not in excluded]
            elif part.startswith("&"):
                kept = set(self._match(part[1:]))
                result = [h for h in result if h in kept]
            else:
                result.extend(h for h in self._match(part) if h not in result)
        return result

    def _match(self, term: str) -> list[str]:
        with self._lock:
            if term in ("all", "*"):
                return list(self.hosts)
            if term in self.groups:
                return self.group_hosts(term)
            if term in self.hosts:
                return [term]
            if term in ("localhost", "127.0.0.1"):
                return [term]
            if any(c in term for c in "*?["):
                return [h for h in self.hosts if fnmatch.fnmatchcase(h, term)] + [
                    h for g in self.groups if fnmatch.fnmatchcase(g, term) for h in self.group_hosts(g)
                ]
            return []

    def known_names(self) -> list[str]:
        with self._lock:
            return sorted({*self.hosts, *self.groups, "localhost"})

    def check_pattern(self, pattern: str | list[str], *, pos: Position | None, runtime_groups: Iterable[str] = ()) -> None:
        """Reject a ``hosts:`` term that names nothing known now or created at run time."""
        parts = pattern if isinstance(pattern, list) else _split_pattern(str(pattern))
        known = set(self.known_names()) | set(runtime_groups)
        for part in parts:
            term = part.lstrip("!&")
            if term in known or term in ("all", "*") or any(c in term for c in "*?["):
                continue
            guess = suggest(term, known)
            raise ValidationError(
                f"hosts pattern '{term}' matches no host or group in the inventory",
                pos=position_of(pattern) or pos,
                hint=f"did you mean '{guess}'?" if guess else "groups created at run time come from an allocation role",
            )


def _order_patterns(parts: list[str]) -> list[str]:
    """Ansible's order, whatever order they were written in: every union, then every ``&``
    intersection, then every ``!`` exclusion; with only ``&``/``!`` terms, start from ``all``."""
    union = [p for p in parts if not p.startswith(("!", "&"))]
    intersect = [p for p in parts if p.startswith("&")]
    exclude = [p for p in parts if p.startswith("!")]
    return (union or ["all"]) + intersect + exclude


def _split_pattern(pattern: str) -> list[str]:
    sep = ":" if ":" in pattern else ","
    return [p.strip() for p in pattern.replace(",", sep).split(sep) if p.strip()]
