"""What preflight checks, read from a dry-run: the allocation request, the launch commands
of the workers (from the rendered launch scripts), the containers and the claimed ports."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.errors import ValidationError
from engine.slurm.srun import ContainerFlags
from engine.template import Unknown

if TYPE_CHECKING:
    from engine.executor.runner import Runner
    from engine.schedulers import AllocationSpec

#: The flags that name the weights in a launch command (sglang, the simulator, vLLM's --model).
MODEL_FLAGS = ("--model-path", "--model")
_SCRIPT_HEADER = re.compile(r"^--- (?P<name>\S+) ---$", re.M)


@dataclass(frozen=True)
class Launch:
    """One worker's launch command: ``launcher`` (``python -m sglang.launch_server``) and
    the flags it is given, on ``host`` in ``container``."""

    host: str
    script: str
    launcher: tuple[str, ...]
    flags: tuple[str, ...]
    model_path: str | None
    container: ContainerFlags

    @classmethod
    def parse(cls, host: str, script: str, body: str, container: ContainerFlags) -> Launch | None:
        line = _command_line(body)
        if line is None:
            return None
        try:
            argv = shlex.split(line)
        except ValueError:
            return None
        if argv and argv[0] == "exec":
            argv = argv[1:]
        launcher: list[str] = []
        rest = list(argv)
        while rest and not rest[0].startswith("--"):
            launcher.append(rest.pop(0))
        flags = tuple(dict.fromkeys(a.split("=", 1)[0] for a in rest if a.startswith("--")))
        return cls(host, script, tuple(launcher), flags, _model_path(argv), container)


@dataclass(frozen=True)
class Allocation:
    """A ``slurm_allocate`` step of the plan: the rendered request and where it runs."""

    gateway: str
    scheduler: str
    spec: AllocationSpec


@dataclass(frozen=True)
class Inputs:
    allocations: tuple[Allocation, ...] = ()
    launches: tuple[Launch, ...] = ()
    #: host -> ports its processes claim (``process`` args.ports), in plan order
    ports: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    #: host -> its index in the allocation (``node_index``), to find the real node
    node_index: Mapping[str, int] = field(default_factory=dict)
    containers: Mapping[str, ContainerFlags] = field(default_factory=dict)

    @classmethod
    def from_runner(cls, runner: Runner) -> Inputs:
        from engine.actions.allocate import allocation_spec

        allocations, launches = [], []
        ports: dict[str, list[int]] = {}
        containers = {h: _container(runner, h) for h in runner.hosts}
        for play in runner.plan:
            for step in play.get("steps", ()):
                host, action, args = step["host"], step["action"], step.get("args") or {}
                if action == "slurm_allocate" and isinstance(args, Mapping):
                    gateway = str(args.get("gateway") or host)
                    spec = allocation_spec(dict(args), gateway=gateway)
                    allocations.append(Allocation(gateway, str(args.get("scheduler", "slurm")), spec))
                elif action == "template" and "--- " in step.get("detail", ""):
                    dest = str(args.get("dest") or "") if isinstance(args, Mapping) else ""
                    launches.extend(_launches(host, str(step["detail"]), containers.get(host, ContainerFlags()), dest))
                elif action == "process" and isinstance(args, Mapping):
                    claimed = [int(p) for p in args.get("ports") or () if not isinstance(p, Unknown) and str(p).isdigit()]
                    ports.setdefault(host, []).extend(p for p in claimed if p not in ports.get(host, []))
        index = {}
        for name, host in runner.inventory.hosts.items():
            value = host.vars.get("node_index")
            if isinstance(value, int):
                index[name] = value
        return cls(tuple(allocations), tuple(launches), {h: tuple(p) for h, p in ports.items()}, index, containers)


def _container(runner: Runner, host: str) -> ContainerFlags:
    try:
        return ContainerFlags.from_vars(runner.hosts[host].facts.get("container"))
    except ValidationError:
        return ContainerFlags()


def _launches(host: str, detail: str, container: ContainerFlags, dest: str) -> list[Launch]:
    """A template step's detail holds each rendered file after a ``--- NAME ---`` line."""
    out = []
    parts = _SCRIPT_HEADER.split(detail)
    for name, body in zip(parts[1::2], parts[2::2], strict=False):
        if name.startswith("launch-"):
            launch = Launch.parse(host, dest.rsplit("/", 1)[-1] or name, body, container)
            if launch is not None and launch.launcher:
                out.append(launch)
    return out


def _command_line(body: str) -> str | None:
    """The script's command: its last line that is not a comment, an export or a set."""
    lines = [ln.strip() for ln in body.replace("\\\n", " ").splitlines()]
    commands = [ln for ln in lines if ln and not ln.startswith(("#", "export ", "set ", "cd "))]
    return commands[-1] if commands else None


def _model_path(argv: Sequence[str]) -> str | None:
    for i, arg in enumerate(argv):
        for flag in MODEL_FLAGS:
            if arg == flag and i + 1 < len(argv):
                return argv[i + 1]
            if arg.startswith(flag + "="):
                return arg.split("=", 1)[1]
    if "serve" in argv:  # vllm serve PATH --flags
        after = argv[argv.index("serve") + 1 :]
        if after and not after[0].startswith("-"):
            return after[0]
    return None


def placeholders(value: Any) -> bool:
    """A value the dry-run could not know (``<address of node 1>``)."""
    return isinstance(value, Unknown) or (isinstance(value, str) and value.startswith("<") and value.endswith(">"))
