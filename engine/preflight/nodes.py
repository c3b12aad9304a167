"""Checks that run commands: the image and model paths on the login node, the ports on the
nodes of an adopted job, and the framework's own ``--help`` against the rendered flags."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence

from engine.preflight.checks import Check
from engine.preflight.inputs import Launch, placeholders
from engine.slurm.runner import RunFn
from engine.slurm.srun import ContainerFlags, srun_argv

#: How long the framework may take to print its --help (sglang imports torch first).
HELP_TIMEOUT = 180.0
_HELP_FLAG = re.compile(r"(?<![\w-])--[A-Za-z0-9][A-Za-z0-9_.-]*")
_LISTEN = re.compile(r"^\S+\s+\d+\s+\d+\s+(\S+):(\d+)\s", re.M)


def check_paths(run: RunFn, paths: Mapping[str, tuple[str, str]], *, host: str) -> list[Check]:
    """``paths``: path -> (check name, what it is); one ``test -e`` round trip for all."""
    real = {p: v for p, v in paths.items() if p and not placeholders(p) and "://" not in p}
    if not real:
        return []
    script = "; ".join(f"if test -e {shlex.quote(p)}; then echo ok; else echo missing; fi" for p in real)
    result = run(["bash", "-c", script])
    answers = result.stdout.split()
    out = []
    for (path, (name, what)), answer in zip(real.items(), [*answers, *["?"] * len(real)], strict=False):
        if answer == "ok":
            out.append(Check.ok(name, f"{what} {path} exists", host=host))
        else:
            out.append(Check.fail(name, f"{what} {path} does not exist on {host}", f"put it there (a path every node sees) or point the playbook at the right one ({_setting(name)})", host=host))
    return out


def _setting(name: str) -> str:
    return {"model": "-e model.path=...", "image": "container_image / container_edf"}.get(name, name)


def listening(ss_output: str) -> set[tuple[str, int]]:
    """(address, port) pairs from ``ss -Hltn``."""
    return {(addr.strip("[]"), int(port)) for addr, port in _LISTEN.findall(ss_output)}


def check_ports(run: RunFn, job_id: str, node: str, ports: Sequence[int], *, host: str) -> Check:
    """Is anything already listening on ``ports`` on ``node``? One srun step into the job."""
    result = run(srun_argv(job_id, node, "ss -Hltn", name="smlplay-preflight"))
    if result.rc != 0:
        return Check.fail("ports", f"could not list the listening ports on {node}: {(result.stderr or result.stdout).strip()[:200]}", "check that `srun --jobid --overlap` works for your job, and that `ss` (iproute2) is on the nodes", host=host)
    taken = sorted({p for _, p in listening(result.stdout)} & set(ports))
    if taken:
        return Check.fail(
            "ports",
            f"port(s) {', '.join(map(str, taken))} already in use on {node} (job {job_id})",
            "stop what listens there (`ss -ltnp` on the node) or move the role's ports (e.g. -e worker_port_base=..., -e router_port=...)",
            host=host,
        )
    return Check.ok("ports", f"{len(ports)} port(s) free on {node}: {', '.join(map(str, ports))}", host=host)


def help_argv(launch: Launch, *, job_id: str | None, partition: str | None, account: str | None) -> list[str]:
    """``LAUNCHER --help`` where the workers would run it: on the login node (no container,
    or apptainer exec), or in one short srun step when the container needs srun (pyxis, edf)."""
    command = [*launch.launcher, "--help"]
    flags = launch.container
    if flags.runtime in ("none", "apptainer"):
        return [*flags.command_prefix(), *command]
    if job_id:
        return ["srun", "--jobid", job_id, "--overlap", "--nodes", "1", "--ntasks", "1", "--job-name", "smlplay-preflight", *flags.args(), *command]
    request = ["--partition", partition] if partition else []
    request += ["--account", account] if account else []
    return ["srun", "--nodes", "1", "--ntasks", "1", "--time", "5", "--job-name", "smlplay-preflight", *request, *flags.args(), *command]


def help_flags(text: str) -> set[str]:
    """Every ``--flag`` a ``--help`` text names (argparse, click: ``--tp-size, --tp``)."""
    return set(_HELP_FLAG.findall(text))


def check_flags(run: RunFn, launches: Iterable[Launch], *, host: str, job_id: str | None, partition: str | None, account: str | None) -> list[Check]:
    """One ``--help`` per distinct launcher and container; each rendered flag must be in it."""
    groups: dict[tuple[tuple[str, ...], ContainerFlags], list[Launch]] = {}
    for launch in launches:
        groups.setdefault((launch.launcher, launch.container), []).append(launch)
    out = []
    for (launcher, container), members in groups.items():
        shown = shlex.join(launcher)
        where = f" in {container.runtime} image {container.image or container.environment}" if container.runtime != "none" else ""
        argv = help_argv(members[0], job_id=job_id, partition=partition, account=account)
        result = run(argv)
        known = help_flags(result.stdout + result.stderr)
        if result.rc != 0:  # srun's own usage on a bad option would look like a help text
            out.append(
                Check.fail(
                    "flags",
                    f"`{shown} --help`{where} failed (rc {result.rc}): {(result.stderr or result.stdout).strip()[-300:]}",
                    "install the framework where the workers run (the image, or the login node's environment), or fix the launcher",
                    host=host,
                )
            )
            continue
        used = list(dict.fromkeys(f for m in members for f in m.flags))
        unknown = [f for f in used if f not in known]
        if unknown:
            from engine.load.types import nearest

            hints = [f"{f} (did you mean {g}?)" if (g := nearest(f, known)) else f for f in unknown]
            scripts = sorted({m.script for m in members if set(m.flags) & set(unknown)})
            out.append(
                Check.fail(
                    "flags",
                    f"{shown}{where} does not accept {', '.join(hints)} (rendered in {', '.join(scripts)})",
                    "drop or rename them in sglang_args/vllm_args, or use the framework version the flags are for",
                    host=host,
                )
            )
        else:
            out.append(Check.ok("flags", f"{shown}{where} accepts all {len(used)} rendered flag(s) of {len(members)} launch script(s)", host=host))
    return out
