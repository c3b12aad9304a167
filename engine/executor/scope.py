"""Variables: the layers a task sees on a host (play, role, block, task, facts, extra)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.executor.inherited import Inherited
from engine.executor.state import RunnerState
from engine.load.schema import validate
from engine.load.yaml import load_file, position_of
from engine.model import Play, Task
from engine.transport.pool import connection_vars
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
            role = role_scope.role
            spec_defaults = {n: s.default for n, s in role.argument_specs.items() if s.has_default}
            if spec_defaults:
                layers.append(Layer("role defaults", f"role '{role.name}' argument_specs", spec_defaults))
            if role.defaults:
                layers.append(Layer("role defaults", f"role '{role.name}' defaults", role.defaults))
        layers.extend(self.inventory.layers_for(host))
        layers.extend(self._play_layers)
        if public:
            layers.extend(self._public_vars)
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

    def _magic(self, host: str, role_scope: Any) -> dict[str, Any]:
        magic: dict[str, Any] = {
            "inventory_hostname": host,
            "inventory_hostname_short": host.split(".")[0],
            "groups": self.inventory.groups_dict(),
            "group_names": [g for g in self.inventory.host_groups(host) if g not in ("all",)] if host in self.inventory.hosts else [],
            "hostvars": HostVars(self),
            "play_hosts": list(self._play_hosts),
            "ansible_play_hosts": list(self._play_hosts),
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
        return connection_vars(self.scope_for(host, None, Inherited()))

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


