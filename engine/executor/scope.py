"""Variables: the layers a task sees on a host (play, role, block, task, facts, extra)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.executor.inherited import Inherited
from engine.executor.state import RunnerState
from engine.frozen import FrozenList
from engine.load.schema import validate
from engine.load.types import is_template
from engine.load.yaml import load_file, position_of
from engine.model import Play, Task
from engine.transport.pool import connection_vars, is_connection_var
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

    def scope_for(self, host: str, task: Task | None, inherited: Inherited, *, with_task_vars: bool = True) -> VarScope:
        layers: list[Layer] = []
        role_scope = task.role if task is not None else None
        if role_scope is not None:
            layers.extend(_role_default_layers(role_scope.role))
        layers.extend(self.inventory.layers_for(host))
        layers.extend(self._play_layers)
        if role_scope is not None:
            if role_scope.role.vars:
                layers.append(Layer("role vars", f"role '{role_scope.name}' vars", role_scope.role.vars))
            if role_scope.params:
                layers.append(Layer("role vars", f"role '{role_scope.name}' parameters", role_scope.params))
        layers.extend(inherited.layers)
        if task is not None and with_task_vars and task.vars and not task.is_block:
            layers.append(Layer("task vars", f"{task.where()} ({task.pos})", task.vars))
        layers.append(Layer("host facts", f"host '{host}' facts", self._host(host).facts, templated=False))
        layers.extend(self.options.extra_vars)
        return VarScope(layers, self.templar, magic=self._magic(host, role_scope))

    def _shared_play_hosts(self) -> list[str]:
        """The play's hosts as one read-only list for every scope (a copy per scope was
        quadratic in hosts)."""
        hosts = self._play_hosts
        cached = self.__dict__.get("_play_hosts_shared")
        if cached is None or cached[0] is not hosts or len(cached[1]) != len(hosts):
            cached = self.__dict__["_play_hosts_shared"] = (hosts, FrozenList(hosts))
        return cached[1]

    def _magic(self, host: str, role_scope: Any) -> dict[str, Any]:
        magic: dict[str, Any] = {
            "inventory_hostname": host,
            "inventory_hostname_short": host.split(".")[0],
            "groups": self.inventory.groups_dict(),
            "group_names": [g for g in self.inventory.host_groups(host) if g not in ("all",)] if host in self.inventory.hosts else [],
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
        if host in self.options.local_hosts:
            return {"connection": "local"}
        # Every plan step asks how its host is reached: resolving the scope each time was a
        # sixth of a 1024-node dry-run. Reuse the answer while what it reads is the same
        # objects (the play's layers, the host's inventory vars and groups, its facts).
        # Only connection facts count when no connection variable is a template (a register
        # on every task would otherwise miss each time).
        cache: dict[str, tuple[bool, list[Any], dict[str, Any]]] = self.__dict__.setdefault("_connection_cache", {})
        hit = cache.get(host)
        key = self._connection_key(host, all_facts=hit[0] if hit else True)
        if hit is not None and len(hit[1]) == len(key) and all(a is b for a, b in zip(hit[1], key, strict=True)):
            return dict(hit[2])
        scope = self.scope_for(host, None, Inherited())
        found = connection_vars(scope)
        templated = any(is_template(raw) for raw in (scope.raw(k) for k in found))
        cache[host] = (templated, self._connection_key(host, all_facts=templated), found)
        return dict(found)

    def _connection_key(self, host: str, *, all_facts: bool) -> list[Any]:
        inv_host = self.inventory.hosts.get(host)
        key: list[Any] = [self._play_layers, inv_host.vars if inv_host else None, len(inv_host.groups) if inv_host else -1]
        for name, value in self._host(host).facts.items():
            if all_facts or is_connection_var(name):
                key.append(name)
                key.append(value)
        return key

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


