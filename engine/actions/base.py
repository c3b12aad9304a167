"""The action contract and registry.

An action is a function ``run(ctx, args) -> result`` registered under a name with the
voluptuous schema of its arguments. Actions never open connections: they use
``ctx.transport``. The result follows Ansible's module contract (``changed``, ``failed``,
``msg``, ``rc``, ``stdout``...), so ``register`` + ``failed_when`` work the same way.

Schemas are checked twice: at load time (string values containing ``{{`` pass, everything
else must already have the right type) and after rendering, on the final values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import voluptuous as vol

if TYPE_CHECKING:
    from engine.processes import ProcessRegistry
    from engine.template import Templar
    from engine.transport.base import Transport
    from engine.vars import VarScope

Result = dict[str, Any]


class Reporter(Protocol):
    """Where an action reports progress (a health check's elapsed/deadline line)."""

    def progress(self, host: str, message: str) -> None: ...


@dataclass
class ActionContext:
    """Everything an action may use; built per host and per task by the executor."""

    host: str
    transport: Transport
    scope: VarScope
    templar: Templar
    processes: ProcessRegistry
    run_dir: Path
    task_name: str
    log_path: Path
    role_path: Path | None = None
    playbook_dir: Path | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    timeout: float | None = None
    check_mode: bool = False
    reporter: Reporter | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    add_host: Callable[[str, list[str], Mapping[str, Any]], Any] | None = None
    push_teardown: Callable[[dict[str, Any]], None] | None = None
    cancel_event: Any = None

    def find_file(self, kind: str, name: str) -> Path:
        return find_file(kind, name, role_path=self.role_path, playbook_dir=self.playbook_dir)

    def host_transport(self, container: bool = True) -> Transport:
        """The transport, outside the node's container when ``container`` is false (only
        srun steps have one: ``container: false`` on command/shell/process)."""
        bare = getattr(self.transport, "bare", None)
        return bare() if not container and bare is not None else self.transport


def find_file(kind: str, name: str, *, role_path: Path | None, playbook_dir: Path | None) -> Path:
    """Resolve ``src`` like Ansible: the role's ``templates/``/``files/``, the role, then the
    playbook's ``templates/``/``files/`` and directory; an absolute path as given. Used by
    the actions at run time and by the planner, so both find the same file."""
    from engine.errors import ValidationError

    path = Path(name)
    if path.is_absolute():
        if path.exists():
            return path
    else:
        for base in filter(None, [role_path and role_path / kind, role_path, playbook_dir and playbook_dir / kind, playbook_dir]):
            candidate = Path(base) / name
            if candidate.exists():
                return candidate
    looked = [str(p) for p in (role_path and role_path / kind, playbook_dir) if p]
    where = f" (looked in {' and '.join(looked)})" if looked else ""
    raise ValidationError(f"{kind[:-1]} file '{name}' not found{where}")


@dataclass(frozen=True)
class Action:
    name: str
    run: Callable[[ActionContext, dict[str, Any]], Result]
    schema: Mapping[Any, Any]
    doc: str = ""
    free_form: str | None = None
    #: Safe to execute during a dry-run when a task opts in with ``check_mode: false``.
    read_only: bool = False
    #: What a dry-run prints for this action on a host (default: the rendered args).
    describe: Callable[[dict[str, Any]], str] | None = None
    #: Also runs in a dry-run, with ``ctx.check_mode`` set and no transport: for actions
    #: whose effect later tasks depend on at render time (the hosts an allocation adds).
    plans: bool = False
    #: Cross-field rules (:class:`engine.load.types.Rule`), checked after the fields.
    rules: tuple[Any, ...] = ()
    #: What running it registers on the teardown stack, from its rendered args and the
    #: host it runs on (:mod:`engine.undo`): the run pushes it, the dry-run's plan shows it.
    teardown: Callable[[Mapping[str, Any], str], Any] | None = None

    @property
    def full_schema(self) -> Any:
        """The argument schema with its cross-field rules: what the rendered args must pass."""
        return vol.All(dict(self.schema), *self.rules) if self.rules else dict(self.schema)

    def normalise(self, args: Any) -> Any:
        """Turn the short form (``shell: echo hi``) into the argument mapping."""
        if self.free_form and isinstance(args, str):
            return {self.free_form: args}
        return {} if args is None else args


REGISTRY: dict[str, Action] = {}


def action(
    name: str,
    schema: Mapping[Any, Any],
    *,
    free_form: str | None = None,
    read_only: bool = False,
    describe: Callable[[dict[str, Any]], str] | None = None,
    plans: bool = False,
    rules: tuple[Any, ...] = (),
    teardown: Callable[[Mapping[str, Any], str], Any] | None = None,
) -> Callable[[Callable[[ActionContext, dict[str, Any]], Result]], Callable[[ActionContext, dict[str, Any]], Result]]:
    """Register an action; its docstring is what ``smlplay actions`` shows."""

    def register(fn: Callable[[ActionContext, dict[str, Any]], Result]) -> Callable[[ActionContext, dict[str, Any]], Result]:
        REGISTRY[name] = Action(
            name=name,
            run=fn,
            schema=schema,
            doc=(fn.__doc__ or "").strip(),
            free_form=free_form,
            read_only=read_only,
            describe=describe,
            plans=plans,
            rules=rules,
            teardown=teardown,
        )
        return fn

    return register


def get(name: str) -> Action:
    return REGISTRY[name]


def schema_for(act: Action) -> vol.Schema:
    return vol.Schema(act.full_schema)
