"""The Slurm side: does the partition exist and is it up, is the account known, do the nodes
and GPUs asked for fit the partition, does an adopted job exist. Read with ``sinfo``,
``sacctmgr`` and ``squeue`` on the login node."""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.preflight.checks import Check
from engine.slurm.request import AllocationRequest
from engine.slurm.runner import RunFn

_GPUS = re.compile(r"gpu(?::[^:,(]+)?:(\d+)")
SINFO_FORMAT = "%P|%a|%D|%G|%N|%t"
#: Node states (sinfo %t, a trailing * or ~ flag stripped) a job cannot start on.
UNUSABLE = ("down", "drain", "drng", "fail", "failg", "maint", "boot", "futr", "inval", "npc", "pow_dn", "unk")


@dataclass(frozen=True)
class NodeGroup:
    """One line of ``sinfo -o '%P|%a|%D|%G|%N|%t'``: nodes of a partition with the same GRES
    and state."""

    partition: str
    default: bool
    available: str
    nodes: int
    gpus: int
    nodelist: str
    state: str = "idle"

    @classmethod
    def parse(cls, line: str) -> NodeGroup | None:
        parts = line.strip().split("|")
        if len(parts) not in (5, 6) or not parts[2].isdigit():
            return None
        name, avail, count, gres, nodelist = parts[:5]
        state = parts[5].rstrip("*~#!%$@^-") if len(parts) == 6 else "idle"
        return cls(name.rstrip("*"), name.endswith("*"), avail, int(count), sum(int(n) for n in _GPUS.findall(gres)), nodelist, state)

    @property
    def usable(self) -> bool:
        return self.state not in UNUSABLE


def sinfo(run: RunFn) -> tuple[list[NodeGroup], str | None]:
    """Every partition's node groups, or the error text when sinfo cannot be run."""
    result = run(["sinfo", "--noheader", "--format", SINFO_FORMAT])
    if result.rc != 0:
        return [], (result.stderr or result.stdout).strip() or f"sinfo exited {result.rc}"
    return [g for g in map(NodeGroup.parse, result.stdout.splitlines()) if g is not None], None


def check_request(run: RunFn, request: AllocationRequest, *, host: str) -> list[Check]:
    """partition, nodes and gpus: what ``sbatch`` would be asked for, against ``sinfo``."""
    groups, error = sinfo(run)
    if error is not None:
        return [Check.fail("partition", f"sinfo failed on {host}: {error[:300]}", "check that Slurm's client commands work on the login node (`sinfo`)", host=host)]
    partitions = sorted({g.partition for g in groups})
    name = request.partition or next((g.partition for g in groups if g.default), None)
    if name is None:
        return [Check.fail("partition", "no partition requested and the cluster has no default", "set slurm_partition to one of: " + ", ".join(partitions), host=host)]
    mine = [g for g in groups if g.partition == name]
    if not mine:
        from engine.load.types import nearest

        guess = nearest(name, partitions)
        return [
            Check.fail(
                "partition",
                f"partition '{name}' does not exist",
                (f"did you mean '{guess}'? " if guess else "") + "set slurm_partition to one of: " + ", ".join(partitions),
                host=host,
            )
        ]
    out = []
    down = [g for g in mine if g.available != "up"]
    label = f"partition '{name}'" + ("" if request.partition else " (the default)")
    if down and len(down) == len(mine):
        out.append(Check.fail("partition", f"{label} is {down[0].available}", "pick a partition that is up (`sinfo`), or ask the admins", host=host))
    else:
        out.append(Check.ok("partition", f"{label} exists and is up", host=host))
    total = sum(g.nodes for g in mine)
    if request.nodes > total:
        out.append(
            Check.fail(
                "nodes",
                f"{request.nodes} node(s) requested, partition '{name}' has {total}",
                "shrink the layout (fewer workers, or a smaller tp per worker) or pick a bigger partition",
                host=host,
            )
        )
    elif request.nodes > (usable := sum(g.nodes for g in mine if g.usable)):
        states = ", ".join(sorted({f"{g.nodes} {g.state}" for g in mine if not g.usable}))
        out.append(Check.warn("nodes", f"{request.nodes} node(s) requested, partition '{name}' has {total} but only {usable} usable ({states})", "the job will wait until nodes return (`sinfo -R` says why they are out), or shrink the layout", host=host))
    else:
        out.append(Check.ok("nodes", f"{request.nodes} node(s) requested, partition '{name}' has {total}", host=host))
    want = request.gpus_per_node
    if want:
        fitting = sum(g.nodes for g in mine if g.gpus >= want)
        most = max(g.gpus for g in mine)
        if want > most or fitting < min(request.nodes, total):
            out.append(
                Check.fail(
                    "gpus",
                    f"{want} GPU(s) per node on {request.nodes} node(s) requested; partition '{name}' has "
                    f"{fitting} node(s) with that many (at most {most} per node)",
                    f"set gpus_per_node to at most {most}" + (" (the layout's tp is split across nodes by it)" if most else "; this partition has no GPU GRES: pick a GPU partition"),
                    host=host,
                )
            )
        else:
            out.append(Check.ok("gpus", f"{want} GPU(s) per node fit: {fitting} node(s) of '{name}' have {most}", host=host))
    else:
        out.append(Check.skip("gpus", "no GPUs requested (gpus_per_node unset or slurm_request_gpus false)", host=host))
    return out


def check_account(run: RunFn, account: str | None, *, host: str) -> Check:
    if not account:
        return Check.skip("account", "no account requested (slurm_account)", host=host)
    result = run(["sacctmgr", "--noheader", "--parsable2", "show", "account", account, "format=Account"])
    text = (result.stdout + result.stderr).strip()
    if result.rc == 127:
        return Check.skip("account", f"sacctmgr is not installed on {host}: account '{account}' not checked", host=host)
    if result.rc != 0 or "accounting_storage" in text or "slurmdbd" in text.lower():
        return Check.skip("account", f"accounting is not available ({text.splitlines()[0][:160] if text else f'rc {result.rc}'}): account '{account}' not checked", host=host)
    if account in {ln.strip() for ln in result.stdout.splitlines()}:
        return Check.ok("account", f"account '{account}' exists", host=host)
    return Check.fail("account", f"account '{account}' does not exist", "set slurm_account to one of yours (`sacctmgr show assoc user=$USER format=account`)", host=host)


def job_nodes(run: RunFn, job_id: str) -> tuple[list[str], str | None]:
    """The nodes of a running job, or why there are none."""
    from engine.slurm.commands import job_info

    info = job_info(run, job_id)
    if info is None:
        return [], f"job {job_id} is not known to squeue"
    if not info.is_running:
        return [], f"job {job_id} is {info.state}" + (f" ({info.reason})" if info.reason else "")
    return list(info.nodes), None
