"""The Slurm scheduler: one holding job per run, every process an ``srun`` step of it.

The job's batch script only sleeps (:data:`engine.slurm.HOLD_SCRIPT`); workers, router and
sidecars are started later as steps on chosen nodes, so each one can be stopped on its own
and in order. Slurm commands run on the *gateway* (the login host over SSH, or this machine
when it is a login node or already inside the job), and so do the ``srun`` clients of the
steps.

Node addresses (what servers bind to and what the router is given):

* ``nodeaddr`` (default): Slurm's ``NodeAddr`` from ``scontrol show node``, the address
  slurmctld itself uses to reach the node;
* ``hostname``: the node name, for sites whose DNS resolves node names on the fast network;
* ``command``: run ``address_command`` (``hostname -i``) on each node as a step and take the
  first IP in its **stdout**; srun's own "Step created" notices go to stderr and are never
  parsed (they once corrupted the address in 1.7% of jobs of a tool this one replaces).
"""

from __future__ import annotations

import concurrent.futures as cf
import ipaddress
import shlex
import time
from collections.abc import Sequence

from engine.errors import Interrupted, SchedulerError
from engine.schedulers.base import Allocation, AllocationSpec, Hooks, Node
from engine.slurm.commands import HOLD_SCRIPT, parse_key_values, sbatch, wait_until_running
from engine.slurm.errors import command_error
from engine.slurm.jobs import JobInfo
from engine.slurm.runner import RunFn, transport_runner
from engine.slurm.srun import srun_argv
from engine.template import Unknown
from engine.transport.base import Transport


class SlurmScheduler:
    name = "slurm"

    def allocate(self, spec: AllocationSpec, gateway: Transport, hooks: Hooks) -> Allocation:
        run = transport_runner(gateway, timeout=120.0)
        owned = spec.job_id is None
        if spec.job_id is None:
            options = [*spec.request.sbatch_options()]
            if spec.request.output is None:
                options.append("--output=/dev/null")
            job_id = sbatch(run, options, wrap=HOLD_SCRIPT)
            hooks.on_submitted(self.release_command(job_id))
            hooks.progress(f"submitted job {job_id} ({spec.request.nodes} node(s))")
        else:
            job_id = spec.job_id
            hooks.progress(f"using the running job {job_id}")

        def sleep(seconds: float) -> None:
            if hooks.cancel.wait(seconds):
                raise Interrupted(f"interrupted while waiting for job {job_id} to start")

        started = time.monotonic()
        info = wait_until_running(
            run,
            job_id,
            timeout=spec.timeout,
            poll=spec.poll,
            sleep=sleep,
            on_poll=lambda i: hooks.progress(_progress_line(i, time.monotonic() - started, spec.timeout)),
        )
        if len(info.nodes) < spec.layout.nodes_needed:
            raise SchedulerError(
                f"job {job_id} has {len(info.nodes)} node(s) but the layout needs {spec.layout.nodes_needed}",
                hint="ask for more nodes, or reuse a bigger job",
            )
        addresses = self._addresses(spec, run, job_id, info.nodes)
        nodes = tuple(
            Node(
                name,
                addresses[name],
                i,
                {
                    "connection": "srun",
                    "srun_gateway": spec.gateway,
                    "slurm_job_id": job_id,
                    "slurm_node": name,
                },
            )
            for i, name in enumerate(info.nodes)
        )
        return Allocation("slurm", job_id, nodes, owned=owned, gpus_per_node=spec.request.gpus_per_node)

    def release_command(self, job_id: object) -> str:
        return f"scancel {shlex.quote(str(job_id))}"

    def placeholder(self, spec: AllocationSpec) -> Allocation:
        count = max(spec.request.nodes, spec.layout.nodes_needed)
        job = spec.job_id or Unknown("job id")
        nodes = tuple(
            Node(
                f"slurm-node{i + 1}",
                Unknown(f"address of node {i + 1}"),
                i,
                {"connection": "srun", "srun_gateway": spec.gateway, "slurm_job_id": job, "slurm_node": Unknown(f"node {i + 1}")},
            )
            for i in range(count)
        )
        return Allocation("slurm", job, nodes, owned=spec.job_id is None, gpus_per_node=spec.request.gpus_per_node)

    # --------------------------------------------------------------------------------
    def _addresses(self, spec: AllocationSpec, run: RunFn, job_id: str, nodes: Sequence[str]) -> dict[str, str]:
        if spec.address == "hostname":
            return {n: n for n in nodes}
        if spec.address == "nodeaddr":
            argv = ["scontrol", "-o", "show", "node", ",".join(nodes)]
            result = run(argv)
            if result.rc != 0:
                raise command_error(argv, result, doing="read the nodes' addresses")
            found = {}
            for line in result.stdout.splitlines():
                record = parse_key_values(line)
                if "NodeName" in record:
                    found[record["NodeName"]] = record.get("NodeAddr") or record["NodeName"]
            missing = [n for n in nodes if n not in found]
            if missing:
                raise SchedulerError(f"scontrol printed no address for {', '.join(missing)}")
            return {n: found[n] for n in nodes}
        with cf.ThreadPoolExecutor(max_workers=min(16, len(nodes))) as pool:
            return dict(zip(nodes, pool.map(lambda n: self._address_on(run, job_id, n, spec.address_command), nodes), strict=True))

    def _address_on(self, run: RunFn, job_id: str, node: str, command: str) -> str:
        argv = srun_argv(job_id, node, command)
        result = run(argv)
        if result.rc != 0:
            raise command_error(argv, result, doing=f"find the address of node {node}")
        address = first_ip(result.stdout)
        if address is None:
            raise SchedulerError(
                f"`{command}` on node {node} printed no IP address (stdout: {result.stdout.strip()[:200]!r})",
                hint="set address_command to a command that prints the node's IP, or use address: nodeaddr",
            )
        return address


def first_ip(text: str) -> str | None:
    """The first token of ``text`` that is an IPv4 or IPv6 address (stdout of a step)."""
    for token in text.split():
        try:
            return str(ipaddress.ip_address(token.strip("[],")))
        except ValueError:
            continue
    return None


def _progress_line(info: JobInfo, elapsed: float, timeout: float | None = None, now: float | None = None) -> str:
    """``job 7: PENDING, reason Resources, waited 40s of 5m00s, Slurm expects a start in
    2m10s``: the wait, its deadline and, for a pending job, Slurm's estimate (an ETA)."""
    from engine.units import format_duration

    reason = f", reason {info.reason}" if info.reason and info.reason != "None" else ""
    line = f"job {info.job_id}: {info.state}{reason}, waited {elapsed:.0f}s"
    if timeout:
        line += f" of {format_duration(timeout)}"
    now = time.time() if now is None else now
    if info.is_pending and info.start_time and info.start_time > now:
        line += f", Slurm expects a start in {format_duration(info.start_time - now)}"
    return line
