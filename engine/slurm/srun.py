"""The ``srun`` command line of one step inside an allocation, container flags included.

Every process of a serving stack runs as its own step of one holding job:

    srun --jobid J --overlap --nodes 1 --ntasks 1 --nodelist NODE [--job-name NAME]
         [--output LOG] [container flags] bash --norc -c SCRIPT

``--overlap`` lets steps share the CPUs and GPUs the job holds (a router and a worker on
the same node); ``--nodes 1 --ntasks 1 --nodelist NODE`` pins exactly one task to the
chosen node. The step inherits the job's GPUs (CUDA_VISIBLE_DEVICES uses the node's
global GPU numbers).

``--norc``: see :data:`engine.transport.base.BASH_C` (srun propagates ``SSH_CLIENT``).

Environment variables are **not** passed with ``srun --export``: they are prepended to the
script as ``export NAME=VALUE`` lines. ``--export`` cannot carry values with commas, and
with pyxis the image's own ``ENV`` (``PATH``, ``LD_LIBRARY_PATH``) would override the step's
environment for the same names; an ``export`` inside ``bash -c`` runs last, inside the
container, and behaves the same for every runtime. srun keeps its default ``--export=ALL``
so ``SLURM_*`` variables reach the step.

:func:`render` turns the argv into one shell-quoted string: what ``--check`` prints and
what a remote shell (SSH to a login node) is given; the quoting round-trips byte for byte.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.errors import ValidationError
from engine.transport.base import BASH_C

__all__ = ["RUNTIMES", "ContainerFlags", "SrunStep", "render", "script_with_env", "srun_argv"]

RUNTIMES = ("none", "pyxis", "edf", "apptainer")

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NODE = re.compile(r"^[^\s,\[\]]+$")
_JOB_ID = re.compile(r"^\d+(_\d+)?$")
_SHORT = {
    "-N": "--nodes",
    "-n": "--ntasks",
    "-w": "--nodelist",
    "-J": "--job-name",
    "-o": "--output",
}


@dataclass(frozen=True)
class ContainerFlags:
    """How a step enters its container: ``none``, ``pyxis`` (enroot), ``edf`` (CSCS) or
    ``apptainer`` (``apptainer exec`` inside the step).

    pyxis gets ``--container-image IMG --no-container-entrypoint --no-container-mount-home
    --container-mounts SRC:DST,... --container-writable --container-workdir DIR``: the
    entrypoint and the home mount are off by default because an image's entrypoint would
    wrap ``bash -c`` and a mounted home shadows files the image ships. With ``edf`` the
    Environment Definition File (``--environment=FILE.toml``) holds image, mounts and
    workdir, so those fields must stay empty.
    """

    runtime: str = "none"
    image: str | None = None
    mounts: tuple[str, ...] = ()
    workdir: str | None = None
    writable: bool = True
    mount_home: bool = False
    entrypoint: bool = False
    environment: str | None = None

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise ValidationError(
                f"container runtime {self.runtime!r} is not one of {', '.join(RUNTIMES)}"
            )
        for mount in self.mounts:
            if not mount or "," in mount or mount.startswith(":"):
                raise ValidationError(
                    f"container mount {mount!r} is invalid",
                    hint="write SRC:DST or SRC:DST:ro; paths cannot contain ','",
                )
        if self.runtime in ("pyxis", "apptainer") and not self.image:
            if self.runtime == "apptainer":
                raise ValidationError("container runtime apptainer needs `image` (a .sif or docker://)")
            raise ValidationError("container runtime pyxis needs `image` (a .sqsh or docker://)")
        if self.runtime == "edf":
            if not self.environment:
                raise ValidationError("container runtime edf needs `environment` (FILE.toml)")
            misplaced = [n for n in ("image", "workdir") if getattr(self, n) is not None] + (
                ["mounts"] if self.mounts else []
            )
            if misplaced:
                raise ValidationError(
                    f"container runtime edf takes {', '.join(misplaced)} from the EDF file",
                    hint="set them in the .toml given as `environment`, not here",
                )
        if self.runtime == "none":
            given = [n for n in ("image", "workdir", "environment") if getattr(self, n)]
            if self.mounts:
                given.append("mounts")
            if given:
                raise ValidationError(
                    f"container {', '.join(given)} given but the runtime is none",
                    hint="set `runtime: pyxis` or `runtime: edf`",
                )

    @classmethod
    def from_vars(cls, data: Mapping[str, Any] | None) -> ContainerFlags:
        """Build from the ``container:`` variables of a host or role.

        Keys: ``runtime`` (none|pyxis|edf; when absent: pyxis if ``image`` is set, edf if
        ``environment`` is set, else none), ``image``, ``mounts`` (a list of ``SRC:DST``
        strings or a ``{SRC: DST}`` mapping), ``workdir``, ``writable``, ``mount_home``,
        ``entrypoint``, ``environment``.
        """
        if not data:
            return cls()
        if not isinstance(data, Mapping):
            raise ValidationError(f"container must be a mapping, not {type(data).__name__}")
        known = {
            "runtime",
            "image",
            "mounts",
            "workdir",
            "writable",
            "mount_home",
            "entrypoint",
            "environment",
        }
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValidationError(
                f"unknown container field(s): {', '.join(unknown)}",
                hint=f"known fields: {', '.join(sorted(known))}",
            )
        runtime = data.get("runtime")
        if runtime is None:
            runtime = "pyxis" if data.get("image") else "edf" if data.get("environment") else "none"
        for flag in ("writable", "mount_home", "entrypoint"):
            if flag in data and not isinstance(data[flag], bool):
                raise ValidationError(f"container {flag} must be true or false")
        return cls(
            runtime=str(runtime),
            image=_opt_str(data, "image"),
            mounts=_mounts(data.get("mounts")),
            workdir=_opt_str(data, "workdir"),
            writable=bool(data.get("writable", True)),
            mount_home=bool(data.get("mount_home", False)),
            entrypoint=bool(data.get("entrypoint", False)),
            environment=_opt_str(data, "environment"),
        )

    def args(self) -> list[str]:
        """The srun flags for this runtime (empty for ``none``)."""
        if self.runtime == "pyxis":
            out = ["--container-image", str(self.image)]
            if not self.entrypoint:
                out.append("--no-container-entrypoint")
            if not self.mount_home:
                out.append("--no-container-mount-home")
            if self.mounts:
                out += ["--container-mounts", ",".join(self.mounts)]
            out.append("--container-writable" if self.writable else "--container-readonly")
            if self.workdir:
                out += ["--container-workdir", self.workdir]
            return out
        if self.runtime == "edf":
            return [f"--environment={self.environment}"]
        return []  # apptainer wraps the command instead: see command_prefix

    def command_prefix(self) -> list[str]:
        """What runs the step's ``bash -c`` inside the container when srun itself cannot
        (apptainer: ``apptainer exec --nv [--bind M] [--pwd D] IMAGE``)."""
        if self.runtime != "apptainer":
            return []
        out = ["apptainer", "exec", "--nv"]
        if not self.mount_home:
            out.append("--no-home")
        if self.mounts:
            out += ["--bind", ",".join(self.mounts)]
        if self.workdir:
            out += ["--pwd", self.workdir]
        if self.writable:
            out.append("--writable-tmpfs")
        return [*out, str(self.image)]


@dataclass(frozen=True)
class SrunStep:
    """One step: which job and node, what script, and where its output goes.

    ``output=None`` leaves the step's stdout on srun's stdout (foreground steps whose output
    is parsed); background steps give a log path.
    """

    job_id: str
    node: str
    script: str
    name: str | None = None
    output: str | None = None
    container: ContainerFlags = field(default_factory=ContainerFlags)
    env: Mapping[str, str] = field(default_factory=dict)
    extra_args: tuple[str, ...] = ()

    def argv(self) -> list[str]:
        return srun_argv(
            self.job_id,
            self.node,
            self.script,
            name=self.name,
            output=self.output,
            container=self.container,
            env=self.env,
            extra_args=self.extra_args,
        )

    def command(self) -> str:
        """The argv as one shell-quoted string (dry-run display, remote shells)."""
        return render(self.argv())


def srun_argv(
    job_id: str | int,
    node: str,
    script: str,
    *,
    name: str | None = None,
    output: str | None = None,
    container: ContainerFlags | None = None,
    env: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """Build ``srun --jobid J --overlap --nodes 1 --ntasks 1 --nodelist NODE ... bash -c S``.

    ``extra_args`` (site-specific flags such as ``--mpi=pmix``) go after the generated
    flags and before the container flags; they may not repeat a generated flag.
    """
    job = str(job_id)
    if not _JOB_ID.match(job):
        raise ValidationError(f"invalid Slurm job id {job_id!r}: expected digits like 12345")
    if not _NODE.match(node):
        raise ValidationError(
            f"invalid node {node!r}: a step runs on exactly one node, give one name",
            hint="expand a node list with engine.slurm.hostlist.expand first",
        )
    argv = [
        "srun",
        "--jobid",
        job,
        "--overlap",
        "--nodes",
        "1",
        "--ntasks",
        "1",
        "--nodelist",
        node,
    ]
    if name:
        argv += ["--job-name", name]
    if output:
        argv += ["--output", output]
    generated = {a for a in argv if a.startswith("--")}
    for arg in extra_args:
        flag = arg.split("=", 1)[0] if arg.startswith("--") else _SHORT.get(arg[:2], "")
        if flag in generated:
            raise ValidationError(f"extra srun argument {arg!r} repeats a generated flag")
    argv += list(extra_args)
    flags = container or ContainerFlags()
    argv += flags.args()
    argv += [*flags.command_prefix(), *BASH_C, script_with_env(script, env or {})]
    return argv


def script_with_env(script: str, env: Mapping[str, str]) -> str:
    """Prefix ``script`` with one ``export NAME=VALUE`` line per variable (shell-quoted)."""
    lines = []
    for key, value in env.items():
        if not _ENV_NAME.match(key):
            raise ValidationError(f"invalid environment variable name {key!r}")
        lines.append(f"export {key}={shlex.quote(str(value))}")
    return "\n".join([*lines, script]) if lines else script


def render(argv: Sequence[str]) -> str:
    """Quote ``argv`` for a POSIX shell; ``bash -c render(argv)`` runs exactly ``argv``."""
    return shlex.join(argv)


def _opt_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ValidationError(f"container {key} must be a non-empty string, not {value!r}")
    return value


def _mounts(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, Mapping):
        return tuple(f"{src}:{dst}" for src, dst in value.items())
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValidationError(
            "container mounts must be a list of SRC:DST strings or a {SRC: DST} mapping"
        )
    return tuple(str(m) for m in value)
