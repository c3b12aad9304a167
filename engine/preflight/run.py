"""Run every preflight check for a playbook and inventory: a dry-run first (bad input stops
here, exit 2, as in ``smlplay check``), then the cluster, over the run's own transports."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import SmlplayError
from engine.executor.context import RunOptions
from engine.preflight.checks import Check, Report
from engine.preflight.inputs import Allocation, Inputs, Launch
from engine.preflight.nodes import HELP_TIMEOUT, check_flags, check_paths, check_ports
from engine.preflight.slurm import check_account, check_request, job_nodes
from engine.slurm.runner import RunFn, transport_runner

if TYPE_CHECKING:
    from engine.executor.runner import Runner


def preflight(playbook_path: str | Path, inventory_path: str | Path | None, options: RunOptions, *, strict: bool = False) -> Report:
    from engine import secrets
    from engine.events import NullSink
    from engine.executor.run import load
    from engine.executor.runner import Runner
    from engine.runs import runs_dir

    playbook, inventory, loader = load(playbook_path, inventory_path)
    secrets.collect_static(playbook, inventory, options.extra_vars)  # masked in what checks print
    runner = Runner(
        playbook, inventory, replace(options, dry_run=True), loader=loader, sink=NullSink(),
        run_dir=runs_dir() / "<run-id>", run_id="<run-id>",
    )
    runner.run()
    for host, error in runner.plan_failures:
        if runner.hosts[host].failed:
            raise error
    inputs = Inputs.from_runner(runner)
    try:
        checks = _checks(inputs, runner)
    finally:
        runner.transports.close()
    return Report.of(str(playbook_path), str(inventory_path) if inventory_path else None, checks, strict=strict)


def _checks(inputs: Inputs, runner: Runner) -> list[Check]:
    pool = runner.transports
    out: list[Check] = []
    runners: dict[str, RunFn | None] = {}

    def reach(host: str, timeout: float = 60.0) -> RunFn | None:
        if host not in runners:
            try:
                transport = pool.get(host)
                probe = transport.run(["true"], timeout=90)
                if probe.rc != 0:
                    raise SmlplayError(probe.stderr.strip() or f"rc {probe.rc}")
                out.append(Check.ok("connect", f"reached {host} ({transport.kind})", host=host))
                runners[host] = transport_runner(transport, timeout=timeout)
            except SmlplayError as exc:
                out.append(Check.fail("connect", f"cannot reach {host}: {exc}", "fix the host's connection variables (ssh_host, ssh_port, ssh_key...) or start it", host=host))
                runners[host] = None
        return runners[host]

    if not inputs.allocations:
        out.append(Check.skip("partition", "the playbook allocates nothing (no slurm_allocate task)"))
    job_id: str | None = None
    partition = account = None
    for alloc in inputs.allocations:
        run = reach(alloc.gateway)
        if run is None:
            continue
        if alloc.scheduler != "slurm":
            out.append(Check.skip("partition", f"scheduler {alloc.scheduler}: virtual nodes on {alloc.gateway}, nothing to ask Slurm", host=alloc.gateway))
            continue
        request = alloc.spec.request
        partition, account = request.partition, request.account
        if alloc.spec.job_id:
            job_id = str(alloc.spec.job_id)
            out.extend(_adopted(run, alloc, inputs))
        else:
            out.extend(check_request(run, request, host=alloc.gateway))
            out.append(check_account(run, request.account, host=alloc.gateway))
            out.append(Check.skip("ports", "nothing allocated yet: each process task checks its ports when it starts (set allocation_job_id to check a running job's nodes now)", host=alloc.gateway))
    login = inputs.allocations[0].gateway if inputs.allocations else None
    out.extend(_paths(inputs, login, reach))
    launches = inputs.launches
    if not launches:
        out.append(Check.skip("flags", "no launch script in the plan (no serving-worker)"))
    by_host: dict[str, list[Launch]] = {}
    for launch in launches:
        by_host.setdefault(login or launch.host, []).append(launch)
    for host, group in by_host.items():
        run = reach(host, HELP_TIMEOUT)
        if run is not None:
            flags_run = transport_runner(pool.get(host), timeout=HELP_TIMEOUT)
            out.extend(check_flags(flags_run, group, host=host, job_id=job_id, partition=partition, account=account))
    return out


def _adopted(run: RunFn, alloc: Allocation, inputs: Inputs) -> list[Check]:
    job = str(alloc.spec.job_id)
    host = alloc.gateway
    try:
        nodes, why = job_nodes(run, job)
    except SmlplayError as exc:
        nodes, why = [], str(exc)
    if why is not None:
        return [Check.fail("job", why, "start the job first (salloc/sbatch) or drop job_id (allocation_job_id) to submit one", host=host)]
    need = alloc.spec.layout.nodes_needed
    out = []
    if len(nodes) < need:
        out.append(Check.fail("job", f"job {job} has {len(nodes)} node(s), the layout needs {need}", "reuse a bigger job or shrink the layout", host=host))
    else:
        out.append(Check.ok("job", f"job {job} is running on {len(nodes)} node(s); the layout needs {need}", host=host))
    for name, ports in sorted(inputs.ports.items()):
        index = inputs.node_index.get(name)
        if index is None or index >= len(nodes) or not ports:
            continue
        out.append(check_ports(run, job, nodes[index], ports, host=name))
    return out


def _paths(inputs: Inputs, login: str | None, reach: Callable[[str], RunFn | None]) -> list[Check]:
    """Model and image paths, on the login node (or each worker's host without one)."""
    wanted: dict[str, dict[str, tuple[str, str]]] = {}
    sim: set[str] = set()
    for launch in inputs.launches:
        if launch.model_path:
            wanted.setdefault(login or launch.host, {})[launch.model_path] = ("model", "model path")
            if "engine.sim" in launch.launcher:
                sim.add(launch.model_path)
    for host, flags in inputs.containers.items():
        for path, what in ((flags.image, "container image"), (flags.environment, "EDF file")):
            if path:
                wanted.setdefault(login or host, {})[path] = ("image", what)
    out: list[Check] = []
    for host, paths in wanted.items():
        run = reach(host)
        if run is None:
            continue
        for check in check_paths(run, paths, host=host):
            if check.status == "fail" and check.name == "model" and any(p in check.message for p in sim):
                check = Check.warn(check.name, check.message + " (the simulator reads no weights; a real framework would fail)", check.remedy, host=check.host)
            out.append(check)
    if not wanted:
        out.append(Check.skip("model", "no model path in the rendered launch commands"))
    return out
