"""Variables: the layers a task sees on a host (play, role, block, task, facts, extra)."""

from __future__ import annotations

import operator
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.executor.inherited import Inherited
from engine.executor.state import RunnerState
from engine.frozen import FrozenDict, FrozenList
from engine.load.schema import validate
from engine.load.types import is_template
from engine.load.yaml import load_file, position_of
from engine.model import Play, Task
from engine.transport.pool import CONNECTION_PREFIXES, CONNECTION_VARS, connection_vars
from engine.vars import Layer, VarScope


class ScopeMixin(RunnerState):
    def _build_play_layers(self, play: Play) -> list[Layer]:
        layers = [Layer("play vars", f"play '{play.name}' ({play.pos})", play.vars)] if play.vars else []
        for name in play.vars_files:
            # vars_files may use extra vars and inventory vars; render the file name only
            scope = VarScope([*layers, *self.options.extra_vars], self.templar)
            rendered = self.templar.render(name, scope)
            path = Path(str(rendered))
            if not path.is_absolute():
                path = self.playbook.basedir / path
            data = load_file(path, pos=position_of(name))
            if data is None:
                continue
            validate(dict, data, what=f"vars file {path.name}")
            layers.append(Layer("play vars", f"vars_files {path}", data))
        return layers

    def _build_public_role_layers(self, play: Play) -> tuple[list[Layer], list[Layer]]:
        """(defaults, vars) of the play's static roles (``roles:``, ``import_role`` and their
        dependencies): visible to every task of the play, as in Ansible (role vars above
        play vars); a task's own role's layers still come last in each group."""
        defaults: list[Layer] = []
        role_vars: list[Layer] = []
        seen: set[str] = set()
        stack = list(reversed(play.tasks))
        while stack:
            task = stack.pop()
            if task.action == "role" and task.role is not None and task.role.name not in seen:
                role = task.role.role
                seen.add(role.name)
                spec_defaults = {n: s.default for n, s in role.argument_specs.items() if s.has_default}
                if spec_defaults:
                    defaults.append(Layer("role defaults", f"role '{role.name}' argument_specs", spec_defaults))
                if role.defaults:
                    defaults.append(Layer("role defaults", f"role '{role.name}' defaults", role.defaults))
                if role.vars:
                    role_vars.append(Layer("role vars", f"role '{role.name}' vars", role.vars))
            stack.extend(reversed((*task.block, *task.rescue, *task.always)))
        return defaults, role_vars

    def scope_for(self, host: str, task: Task | None, inherited: Inherited, *, with_task_vars: bool = True) -> VarScope:
        # a task sees the play's static roles' variables; hostvars and connection settings
        # (task None) do not, as in Ansible
        public = task is not None
        layers: list[Layer] = list(self._public_defaults) if public else []
        role_scope = task.role if task is not None else None
        if role_scope is not None:
            layers.extend(_role_default_layers(role_scope.role))
        layers.extend(self.inventory.layers_for(host))
        layers.extend(self._play_layers)
        if public:
            layers.extend(self._public_vars)
        if role_scope is not None:
            layers.extend(self._role_scope_layers(role_scope))
        layers.extend(inherited.layers)
        if task is not None and with_task_vars and task.vars and not task.is_block:
            layers.append(self._task_vars_layer(task))
        layers.append(self._facts_layer(host))
        layers.extend(self.options.extra_vars)
        # only -e layers patch (Layer.patch_roots): theirs, once per run, and the block's
        roots = self._extra_patch_roots().union(*(layer.patch_roots for layer in inherited.layers)) if inherited.layers else self._extra_patch_roots()
        return VarScope(layers, self.templar, magic=self._magic(host, role_scope), patch_roots=roots)

    def _extra_patch_roots(self) -> frozenset[str]:
        extra = self.options.extra_vars
        hit = self.__dict__.get("_extra_roots")
        if hit is None or hit[0] is not extra or hit[1] != len(extra):
            roots = frozenset().union(*(layer.patch_roots for layer in extra))
            hit = self.__dict__["_extra_roots"] = (extra, len(extra), roots)
        return hit[2]

    def _facts_layer(self, host: str) -> Layer:
        """The host's facts layer: one per host while its facts are the same dict (the layer
        holds the dict itself, so new facts show through it)."""
        facts = self._host(host).facts
        cache: dict[str, Layer] = self.__dict__.setdefault("_facts_layers", {})
        layer = cache.get(host)
        if layer is None or layer.values is not facts:
            layer = cache[host] = Layer("host facts", f"host '{host}' facts", facts, templated=False)
        return layer

    def _shared_play_hosts(self) -> list[str]:
        """The play's hosts as one read-only list for every scope (a copy per scope was
        quadratic in hosts)."""
        hosts = self._play_hosts
        cached = self.__dict__.get("_play_hosts_shared")
        if cached is None or cached[0] is not hosts or len(cached[1]) != len(hosts):
            cached = self.__dict__["_play_hosts_shared"] = (hosts, FrozenList(hosts))
        return cached[1]

    def _role_scope_layers(self, role_scope: Any) -> list[Layer]:
        """A role's vars and parameters layers, built once per role scope (they are the same
        mappings on every host)."""
        cache: dict[int, tuple[Any, ...]] = self.__dict__.setdefault("_role_scope_layers_cache", {})
        hit = cache.get(id(role_scope))
        if hit is not None and hit[0] is role_scope and hit[1] is role_scope.role.vars and hit[2] is role_scope.params:
            return list(hit[3])
        layers = []
        if role_scope.role.vars:
            layers.append(Layer("role vars", f"role '{role_scope.name}' vars", role_scope.role.vars))
        if role_scope.params:
            layers.append(Layer("role vars", f"role '{role_scope.name}' parameters", role_scope.params))
        cache[id(role_scope)] = (role_scope, role_scope.role.vars, role_scope.params, layers)
        return list(layers)

    def _task_vars_layer(self, task: Task) -> Layer:
        """A task's own vars layer, built once per task rather than once per host."""
        cache: dict[int, tuple[Task, Layer]] = self.__dict__.setdefault("_task_layers_cache", {})
        hit = cache.get(id(task))
        if hit is not None and hit[0] is task and hit[1].values is task.vars:
            return hit[1]
        layer = Layer("task vars", f"{task.where()} ({task.pos})", task.vars)
        cache[id(task)] = (task, layer)
        return layer

    def _magic(self, host: str, role_scope: Any) -> dict[str, Any]:
        """The magic variables of a host (and role): built once and reused while everything
        they are made of is the same objects (VarScope copies the dict, so sharing is safe)."""
        groups = self.inventory.groups_dict()  # a new dict after any inventory change
        play_hosts = self._shared_play_hosts()
        cache: dict[tuple[str, int], tuple[Any, ...]] = self.__dict__.setdefault("_magic_cache", {})
        key = (host, id(role_scope))
        hit = cache.get(key)
        if (
            hit is not None and hit[0] is role_scope and hit[1] is groups and hit[2] is play_hosts
            and hit[3] is self.run_dir and hit[4] == self.run_id and hit[5] is self.playbook
        ):
            return hit[6]
        magic = self._build_magic(host, role_scope)
        cache[key] = (role_scope, groups, play_hosts, self.run_dir, self.run_id, self.playbook, magic)
        return magic

    def _build_magic(self, host: str, role_scope: Any) -> dict[str, Any]:
        magic: dict[str, Any] = {
            "inventory_hostname": host,
            "inventory_hostname_short": host.split(".")[0],
            "groups": self.inventory.groups_dict(),
            # read-only: one list is shared by the host's scopes
            "group_names": FrozenList([g for g in self.inventory.host_groups(host) if g not in ("all",)] if host in self.inventory.hosts else []),
            "hostvars": HostVars(self),
            "play_hosts": self._shared_play_hosts(),
            "ansible_play_hosts": self._shared_play_hosts(),
            "run_dir": str(self.run_dir),
            "run_id": self.run_id,
            "check_mode": self.options.dry_run,
            "playbook_dir": str(self.playbook.basedir),
            # the engine's own Python: roles default their python to it (simulated engine,
            # stand-ins), so a venv install works without PATH changes
            "smlplay_python": sys.executable,
        }
        if role_scope is not None:
            magic["role_name"] = role_scope.name
            magic["role_path"] = str(role_scope.role.path)
        return magic

    def _connection_vars(self, host: str) -> Mapping[str, Any]:
        return dict(self._shared_connection_vars(host))

    def _shared_connection_vars(self, host: str) -> Mapping[str, Any]:
        """The host's connection variables; the same (read-only) dict while they cannot have
        changed, so a caller may compare it by identity."""
        if host in self.options.local_hosts:
            return _LOCAL
        # Every plan step asks how its host is reached: resolving the scope each time was a
        # sixth of a 1024-node dry-run. Reuse the answer while what it reads is the same
        # objects (the play's layers, the host's inventory vars and groups, its facts).
        # Only connection facts count when no connection variable is a template (a register
        # on every task would otherwise miss each time).
        cache: dict[str, tuple[bool, list[Any], dict[str, Any]]] = self.__dict__.setdefault("_connection_cache", {})
        hit = cache.get(host)
        key = self._connection_key(host, all_facts=hit[0] if hit else True)
        if hit is not None and len(hit[1]) == len(key) and all(map(operator.is_, hit[1], key)):
            return hit[2]
        scope = self.scope_for(host, None, Inherited())
        found = connection_vars(scope)
        templated = any(is_template(raw) for raw in (scope.raw(k) for k in found))
        cache[host] = (templated, self._connection_key(host, all_facts=templated), found)
        return found

    def _connection_key(self, host: str, *, all_facts: bool) -> list[Any]:
        inv_host = self.inventory.hosts.get(host)
        key: list[Any] = [self._play_layers, inv_host.vars if inv_host else None, len(inv_host.groups) if inv_host else -1]
        facts = self._host(host).facts
        if all_facts:  # names and values, compared by identity
            key += facts
            key += facts.values()
        else:
            for name, value in facts.items():
                if name in CONNECTION_VARS or name.startswith(CONNECTION_PREFIXES):  # is_connection_var, inlined
                    key.append(name)
                    key.append(value)
        return key


_LOCAL: Mapping[str, Any] = FrozenDict({"connection": "local"})

_ROLE_DEFAULTS: dict[int, tuple[Any, list[Layer]]] = {}


def _role_default_layers(role: Any) -> list[Layer]:
    """A role's default layers (argument_specs defaults, defaults/main), built once per
    loaded role rather than once per host and task."""
    hit = _ROLE_DEFAULTS.get(id(role))
    if hit is not None and hit[0] is role:
        return hit[1]
    layers = []
    spec_defaults = {n: s.default for n, s in role.argument_specs.items() if s.has_default}
    if spec_defaults:
        layers.append(Layer("role defaults", f"role '{role.name}' argument_specs", spec_defaults))
    if role.defaults:
        layers.append(Layer("role defaults", f"role '{role.name}' defaults", role.defaults))
    _ROLE_DEFAULTS[id(role)] = (role, layers)
    return layers


class HostVars(Mapping[str, Any]):
    """``hostvars[h].x``: another host's variables at play level, rendered lazily."""

    def __init__(self, runner: ScopeMixin) -> None:
        self._runner = runner

    def __getitem__(self, host: str) -> Any:
        if host not in self._runner.inventory.hosts and host not in ("localhost",):
            raise KeyError(host)
        return self._runner.scope_for(host, None, Inherited())

    def __iter__(self) -> Any:
        return iter(list(self._runner.inventory.hosts))

    def __len__(self) -> int:
        return len(self._runner.inventory.hosts)


