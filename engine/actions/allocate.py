"""``slurm_allocate``: get nodes from a scheduler and put them into the inventory.

The task runs on the *gateway* host (the login node, or ``localhost``): Slurm commands and
the ``srun`` clients of every later step run there. After it, the allocated nodes are
inventory hosts (named as Slurm names them; ``node1..N`` for the local scheduler) in the
layout's groups plus ``nodes`` (all of them), each with the variables later roles use:

* ``node_address``: what servers on that node bind to and what peers connect to;
* ``node_index``: position in the allocation (0-based);
* ``node_slot``: rank among the nodes that share ``node_address`` (0 on a real cluster;
  0..N-1 for the local scheduler's virtual nodes), so roles can offset ports;
* ``gpus_per_node``, ``slurm_job_id``, ``slurm_node``, and the connection (``srun`` through
  the gateway, or ``local``).

The release (``scancel``) is pushed on the run's teardown stack (tier 3, after every step)
the moment the job exists, so Ctrl-C while the job is still pending cancels it too. A job
given with ``job_id`` (e.g. ``{{ lookup('env', 'SLURM_JOB_ID') }}`` inside an allocation)
is used, not released.
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from dataclasses import fields
from typing import TYPE_CHECKING, Any

import voluptuous as vol

from engine.actions.base import ActionContext, Result, action
from engine.errors import ValidationError
from engine.load.types import Duration, IntRange, Nullable, OneOf
from engine.undo import release_allocation
from engine.units import parse_duration

if TYPE_CHECKING:  # the schedulers and Slurm code load when a run allocates, not at start-up
    from engine.schedulers import Allocation, AllocationSpec

#: ``engine.schedulers.SCHEDULERS``' names (a test keeps them the same).
SCHEDULER_NAMES = ("local", "slurm")


@functools.cache
def _request_fields() -> frozenset[str]:
    """The arguments that make up the Slurm request (``time`` is sbatch's name for time_limit)."""
    from engine.slurm.request import AllocationRequest

    return frozenset({f.name for f in fields(AllocationRequest)} - {"time_limit"} | {"time"})

_DURATION = Duration()


def _describe(args: dict[str, Any]) -> str:
    spec = allocation_spec(args, gateway=str(args.get("gateway", "")))
    scheduler = args.get("scheduler", "slurm")
    layout = ", ".join(
        f"{s.group}={s.count}" + (f" on {s.on}" if s.on else "") for s in spec.layout.slots
    )
    if scheduler == "local":
        return f"local scheduler: {max(spec.request.nodes, spec.layout.nodes_needed)} virtual node(s) on this machine; layout {layout or '-'}"
    if spec.job_id:
        return f"use running Slurm job {spec.job_id}; layout {layout or '-'}"
    return f"sbatch {' '.join(spec.request.sbatch_options())} --wrap 'exec sleep infinity'; layout {layout or '-'}; address {spec.address}"


@action(
    "slurm_allocate",
    {
        vol.Optional("scheduler"): OneOf(sorted(SCHEDULER_NAMES)),
        vol.Optional("nodes"): Nullable(IntRange(1, 65536, "a number of nodes")),  # the largest machines have ~10k
        vol.Optional("gpus_per_node"): Nullable(IntRange(0, 256, "a number of GPUs per node")),
        vol.Optional("partition"): vol.Any(None, str),
        vol.Optional("account"): vol.Any(None, str),
        vol.Optional("qos"): vol.Any(None, str),
        vol.Optional("time"): vol.Any(None, str, int),
        vol.Optional("reservation"): vol.Any(None, str),
        vol.Optional("constraint"): vol.Any(None, str),
        vol.Optional("nodelist"): vol.Any(None, str),
        vol.Optional("exclude"): vol.Any(None, str),
        vol.Optional("exclusive"): bool,
        vol.Optional("job_name"): str,
        vol.Optional("output"): vol.Any(None, str),
        vol.Optional("extra_args"): [str],
        vol.Optional("job_id"): vol.Any(None, str, int),
        vol.Optional("layout"): vol.Any(None, dict),
        vol.Optional("gateway"): str,
        vol.Optional("address"): OneOf(["nodeaddr", "hostname", "command"]),
        vol.Optional("address_command"): str,
        vol.Optional("timeout"): _DURATION,
        vol.Optional("poll"): _DURATION,
        vol.Optional("node_prefix"): vol.Match(r"^[A-Za-z][A-Za-z0-9_-]*$"),
        vol.Optional("node_vars"): dict,
    },
    describe=_describe,
    plans=True,
)
def slurm_allocate(ctx: ActionContext, args: dict[str, Any]) -> Result:
    """Allocate nodes (Slurm, or the local scheduler) and add them to inventory groups by
    ``layout``; the allocation is released at the end of the run."""
    from engine.schedulers import SCHEDULERS, Hooks

    gateway = str(args.get("gateway") or getattr(ctx.transport, "host", None) or ctx.host)
    spec = allocation_spec(args, gateway=gateway)
    scheduler = SCHEDULERS[str(args.get("scheduler", "slurm"))]
    if ctx.check_mode:
        allocation = scheduler.placeholder(spec)
        release = scheduler.release_command(allocation.job_id) if allocation.owned else None
        if release is not None and ctx.push_teardown is not None:
            ctx.push_teardown(release_allocation(gateway, release).to_dict())  # what the plan shows
    else:

        def on_submitted(cmd: str) -> None:
            if ctx.push_teardown is not None:
                ctx.push_teardown(release_allocation(gateway, cmd).to_dict())

        hooks = Hooks(
            progress=lambda msg: ctx.reporter.progress(ctx.host, msg) if ctx.reporter else None,
            on_submitted=on_submitted,
            cancel=ctx.cancel_event,
        )
        allocation = scheduler.allocate(spec, ctx.transport, hooks)
    groups = spec.layout.assign([n.name for n in allocation.nodes])
    _add_hosts(ctx, allocation, groups, dict(args.get("node_vars") or {}))
    summary = allocation.to_dict(groups)
    placed = "; ".join(f"{g}: {', '.join(h) or '-'}" for g, h in groups.items())
    return {
        "changed": allocation.owned,
        "allocation": summary,
        "job_id": summary["job_id"],
        "nodes": summary["nodes"],
        "groups": summary["groups"],
        "msg": f"{len(allocation.nodes)} node(s){'' if allocation.job_id is None else ' in job ' + str(allocation.job_id)}: {placed}",
    }


def allocation_spec(args: dict[str, Any], *, gateway: str) -> AllocationSpec:
    from engine.schedulers import AllocationSpec, Layout
    from engine.schedulers.base import ADOPT_ENV
    from engine.slurm.request import AllocationRequest

    layout = Layout.from_vars(args.get("layout"))
    request_vars = {k: args[k] for k in _request_fields() if k in args and args[k] is not None}
    request_vars.setdefault("nodes", max(1, layout.nodes_needed))
    if request_vars["nodes"] < layout.nodes_needed:
        raise ValidationError(
            f"nodes is {request_vars['nodes']} but the layout takes {layout.nodes_needed}",
            hint="drop `nodes` (it defaults to what the layout takes) or enlarge it",
        )
    job_id = args.get("job_id")
    scheduler = str(args.get("scheduler", "slurm"))
    if scheduler == "slurm" and not job_id and os.environ.get(ADOPT_ENV):
        job_id = os.environ[ADOPT_ENV]  # a detached run, inside the job it was submitted as
    return AllocationSpec(
        request=AllocationRequest.from_vars(request_vars),
        layout=layout,
        gateway=gateway,
        job_id=str(job_id) if job_id not in (None, "") else None,
        address=str(args.get("address", "nodeaddr")),
        address_command=str(args.get("address_command", "hostname -i")),
        timeout=parse_duration(args.get("timeout", "30m"), what="timeout"),
        poll=parse_duration(args.get("poll", 1), what="poll"),
        node_prefix=str(args.get("node_prefix", "node")),
    )


def _add_hosts(ctx: ActionContext, allocation: Allocation, groups: dict[str, list[str]], node_vars: dict[str, Any]) -> None:
    if ctx.add_host is None:
        raise ValidationError("slurm_allocate cannot add hosts here (no inventory)")
    groups_of: dict[str, list[str]] = {n.name: ["nodes"] for n in allocation.nodes}
    for group, names in groups.items():
        for name in names:
            groups_of[name].append(group)
    slots: Counter[str] = Counter()
    for node in allocation.nodes:
        slot = slots[str(node.address)]
        slots[str(node.address)] += 1
        hostvars = {
            **node.connection,
            "node_address": node.address,
            "node_index": node.index,
            "node_slot": slot,
            "scheduler": allocation.scheduler,
            **({"gpus_per_node": allocation.gpus_per_node} if allocation.gpus_per_node is not None else {}),
            **node_vars,
        }
        ctx.add_host(node.name, groups_of[node.name], hostvars)
