"""The validated, frozen model of what a user wrote: playbooks, plays, tasks, roles.

Built once by :mod:`engine.load` and never mutated; the executor and the planner only read
it. Raw values (``args``, ``vars``, ``when``...) are kept unrendered: templating happens per
host and per task, in :mod:`engine.template`, because the same task renders differently on
every host.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import Position

#: Task keywords that are not actions (Ansible's names; ``health`` is ours).
TASK_KEYWORDS = frozenset(
    {
        "name", "when", "loop", "loop_control", "register", "until", "retries", "delay",
        "changed_when", "failed_when", "ignore_errors", "notify", "tags", "vars",
        "environment", "timeout", "run_once", "delegate_to", "no_log", "health", "args",
        "check_mode",
    }
)
BLOCK_KEYWORDS = frozenset(
    {
        "name", "block", "rescue", "always", "when", "tags", "vars", "environment",
        "ignore_errors", "no_log", "run_once", "delegate_to", "timeout",
    }
)
HANDLER_KEYWORDS = TASK_KEYWORDS | {"listen"}
#: Actions the executor handles itself because they change what runs, not a host.
CONTROL_ACTIONS = frozenset(
    {"include_role", "import_role", "include_tasks", "import_tasks", "meta"}
)


@dataclass(frozen=True)
class LoopControl:
    loop_var: str = "item"
    index_var: str | None = None
    label: Any = None
    pause: float | str = 0.0  # a duration (30, 30s); a template is rendered at run time


@dataclass(frozen=True)
class RoleScope:
    """The role a task was loaded from, with the parameters of that use of the role.

    Role defaults, role vars and params are visible only to the role's own tasks (Ansible's
    ``private_role_vars``): a role cannot silently change another role's inputs.
    """

    role: Role
    params: Mapping[str, Any]
    pos: Position | None = None

    @property
    def name(self) -> str:
        return self.role.name


@dataclass(frozen=True)
class Task:
    """One task (or a block when ``block`` is not empty)."""

    pos: Position
    name: str | None = None
    action: str | None = None
    args: Any = None
    when: tuple[Any, ...] = ()
    loop: Any = None
    loop_control: LoopControl = field(default_factory=LoopControl)
    register: str | None = None
    until: Any = None
    retries: int | None = None
    delay: float | str = 5.0  # a duration (5, 5s, 1m); a template is rendered at run time
    changed_when: tuple[Any, ...] | None = None
    failed_when: tuple[Any, ...] | None = None
    ignore_errors: bool = False
    notify: tuple[str, ...] = ()
    tags: frozenset[str] = frozenset()
    vars: Mapping[str, Any] = field(default_factory=dict)
    environment: Mapping[str, Any] = field(default_factory=dict)
    timeout: float | None = None
    run_once: bool = False
    delegate_to: Any = None
    no_log: bool = False
    check_mode: bool | None = None
    health: Mapping[str, Any] | None = None
    listen: tuple[str, ...] = ()
    block: tuple[Task, ...] = ()
    rescue: tuple[Task, ...] = ()
    always: tuple[Task, ...] = ()
    is_block: bool = False
    role: RoleScope | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def display_name(self) -> str:
        """The name users see: ``role : name``, like Ansible's ``TASK [role : name]``."""
        label = self.name or (self.action or "block")
        return f"{self.role.name} : {label}" if self.role else str(label)

    def where(self) -> str:
        """A human description for error messages: task 'x' in role 'y' (file:line)."""
        text = f"task '{self.name or self.action or 'block'}'"
        if self.role:
            text += f" of role '{self.role.name}'"
        return text


@dataclass(frozen=True)
class ArgumentSpec:
    """One documented role argument (from ``meta/main.yaml`` ``argument_specs``)."""

    name: str
    type: str = "str"
    required: bool = False
    default: Any = None
    has_default: bool = False
    choices: tuple[Any, ...] = ()
    description: str = ""
    elements: str | None = None
    pos: Position | None = None
    secret: bool = False  # masked in every output, as names like *_token are


@dataclass(frozen=True)
class Role:
    """A role directory, loaded: its tasks, handlers, defaults, vars and metadata."""

    name: str
    path: Path
    tasks: tuple[Task, ...]
    handlers: tuple[Task, ...]
    defaults: Mapping[str, Any]
    vars: Mapping[str, Any]
    dependencies: tuple[RoleRef, ...]
    argument_specs: Mapping[str, ArgumentSpec]
    description: str = ""
    entry_points: Mapping[str, tuple[Task, ...]] = field(default_factory=dict)

    def find_file(self, kind: str, name: str) -> Path | None:
        """Resolve a relative ``src`` in the role first (``templates/``, ``files/``)."""
        candidate = self.path / kind / name
        return candidate if candidate.exists() else None


@dataclass(frozen=True)
class RoleRef:
    """A use of a role in a play (``roles:``) or in meta ``dependencies``."""

    name: str
    params: Mapping[str, Any]
    when: tuple[Any, ...] = ()
    tags: frozenset[str] = frozenset()
    pos: Position | None = None


@dataclass(frozen=True)
class Play:
    name: str
    hosts: str
    pos: Position
    vars: Mapping[str, Any] = field(default_factory=dict)
    vars_files: tuple[str, ...] = ()
    tasks: tuple[Task, ...] = ()
    handlers: tuple[Task, ...] = ()
    gather_facts: bool = False
    force_handlers: bool = True
    environment: Mapping[str, Any] = field(default_factory=dict)
    tags: frozenset[str] = frozenset()
    roles: tuple[RoleRef, ...] = ()


@dataclass(frozen=True)
class Playbook:
    path: Path
    plays: tuple[Play, ...]
    source: str = ""

    @property
    def basedir(self) -> Path:
        return self.path.parent
