"""engine.slurm.srun: step argv, container flags, and quoting that survives a shell."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from engine.errors import ValidationError
from engine.slurm import AllocationRequest, ContainerFlags, SrunStep, render, srun_argv

NASTY_SCRIPTS = [
    "echo hello world",
    "echo 'single' \"double\" `backticks`",
    "echo $(hostname) ; rm -rf /nonexistent; echo $HOME",
    'python -c "import sys; print(sys.argv)" --arg="a b" \'c\'"d"',
    'for i in 1 2; do echo "$i"; done && echo done || echo failed &',
    "printf '%s\\n' \"tab\there\" 'new\nline' \\\\back\\\\slash",
    "echo '' \"\" ; echo ~ * ? [a] {x,y} !bang # comment",
    "echo ünïcödé ✓ 日本",
]

# The rendered command is run by bash with `srun` replaced by a function that prints each
# argument NUL-terminated, so what arrives can be compared byte for byte.
_CAPTURE = "srun() { printf '%s\\0' srun \"$@\"; }\n"


def _through_bash(command: str) -> list[str]:
    out = subprocess.run(["bash", "-c", _CAPTURE + command], capture_output=True, check=True).stdout
    return out.decode().split("\0")[:-1]


@pytest.mark.parametrize("script", NASTY_SCRIPTS)
def test_rendered_command_arrives_byte_identical(script: str) -> None:
    argv = srun_argv("42", "n3", script, name="router step", output="/tmp/a b/$x.log")
    assert _through_bash(render(argv)) == argv
    assert argv[-4:] == ["bash", "--norc", "-c", script]


@pytest.mark.parametrize("script", NASTY_SCRIPTS)
def test_env_values_arrive_intact_in_the_step_script(script: str) -> None:
    env = {"A": "x y", "B": "$(echo no)", "C": "it's; here", "D": "a,b=c", "E": ""}
    argv = srun_argv("42", "n3", 'printf \'%s|\' "$A" "$B" "$C" "$D" "$E"', env=env)
    inner = _through_bash(render(argv))[-1]  # the script srun would hand to bash -c
    out = subprocess.run(["bash", "-c", inner], capture_output=True, text=True, check=True)
    assert out.stdout == "x y|$(echo no)|it's; here|a,b=c||"


def test_plain_step_argv() -> None:
    assert srun_argv("7", "n1", "hostname") == [
        "srun", "--jobid", "7", "--overlap", "--nodes", "1", "--ntasks", "1",
        "--nodelist", "n1", "bash", "--norc", "-c", "hostname",
    ]  # fmt: skip


def test_named_step_with_log_and_extra_args() -> None:
    step = SrunStep(
        job_id="7", node="n1", script="serve", name="worker", output="/logs/w.log",
        extra_args=("--mpi=none",),
    )  # fmt: skip
    assert step.argv() == [
        "srun", "--jobid", "7", "--overlap", "--nodes", "1", "--ntasks", "1",
        "--nodelist", "n1", "--job-name", "worker", "--output", "/logs/w.log",
        "--mpi=none", "bash", "--norc", "-c", "serve",
    ]  # fmt: skip
    assert step.command().startswith("srun --jobid 7 --overlap")


def test_pyxis_flags() -> None:
    flags = ContainerFlags.from_vars(
        {
            "image": "/images/sglang.sqsh",
            "mounts": ["/models:/models:ro", "/scratch/a b:/work"],
            "workdir": "/work",
        }
    )
    assert flags.runtime == "pyxis"  # inferred from `image`
    assert flags.args() == [
        "--container-image", "/images/sglang.sqsh",
        "--no-container-entrypoint", "--no-container-mount-home",
        "--container-mounts", "/models:/models:ro,/scratch/a b:/work",
        "--container-writable", "--container-workdir", "/work",
    ]  # fmt: skip
    argv = srun_argv("9", "nid001", "python -m sglang", container=flags)
    assert argv[10:12] == ["--container-image", "/images/sglang.sqsh"]
    assert argv[-4:] == ["bash", "--norc", "-c", "python -m sglang"]
    assert _through_bash(render(argv)) == argv


def test_pyxis_options_and_mount_mapping() -> None:
    flags = ContainerFlags.from_vars(
        {
            "runtime": "pyxis",
            "image": "docker://lmsys/sglang:latest",
            "mounts": {"/data": "/data"},
            "writable": False,
            "mount_home": True,
            "entrypoint": True,
        }
    )
    assert flags.args() == [
        "--container-image", "docker://lmsys/sglang:latest",
        "--container-mounts", "/data:/data", "--container-readonly",
    ]  # fmt: skip


def test_edf_flags() -> None:
    flags = ContainerFlags.from_vars({"environment": "/home/a/sglang.toml"})
    assert flags.runtime == "edf"
    assert flags.args() == ["--environment=/home/a/sglang.toml"]


@pytest.mark.parametrize("data", [None, {}, {"runtime": "none"}])
def test_no_container(data: dict[str, Any] | None) -> None:
    assert ContainerFlags.from_vars(data).args() == []
    assert ContainerFlags().args() == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"runtime": "docker"}, "not one of none, pyxis, edf"),
        ({"runtime": "pyxis"}, "needs `image`"),
        ({"runtime": "edf"}, "needs `environment`"),
        ({"runtime": "edf", "environment": "e.toml", "image": "x"}, "image from the EDF"),
        ({"runtime": "none", "image": "x.sqsh"}, "runtime is none"),
        ({"image": "x", "mounts": ["/a,b:/c"]}, "mount '/a,b:/c' is invalid"),
        ({"image": "x", "mounts": "/a:/b"}, "list of SRC:DST"),
        ({"image": "x", "writable": "yes"}, "writable must be true or false"),
        ({"image": "x", "volumes": []}, "unknown container field"),
        ({"image": ""}, "non-empty string"),
        ({"runtime": "pyxis", "image": 3}, "non-empty string"),
    ],
)
def test_container_validation(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ContainerFlags.from_vars(data)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"node": "n[1-2]"}, "exactly one node"),
        ({"node": "n1,n2"}, "exactly one node"),
        ({"job_id": "7; rm"}, "invalid Slurm job id"),
        ({"env": {"BAD-NAME": "x"}}, "invalid environment variable name"),
        ({"extra_args": ["--nodelist=n2"]}, "repeats a generated flag"),
        ({"extra_args": ["-w", "n2"]}, "repeats a generated flag"),
    ],
)
def test_step_validation(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"job_id": "7", "node": "n1", "script": "true", **kwargs}
    with pytest.raises(ValidationError, match=message):
        srun_argv(**args)


# --------------------------------------------------------------------------- request


def test_allocation_request_options() -> None:
    req = AllocationRequest.from_vars(
        {
            "nodes": 2,
            "partition": "gpu",
            "account": "proj-1",
            "time": "04:00:00",
            "gpus_per_node": 4,
            "exclusive": True,
            "extra_args": ["--reservation=demo"],
        }
    )
    assert req.sbatch_options() == [
        "--job-name=smlplay", "--nodes=2", "--ntasks-per-node=1", "--partition=gpu",
        "--account=proj-1", "--time=04:00:00", "--gpus-per-node=4", "--exclusive",
        "--reservation=demo",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"nodes": 0}, "positive integer"),
        ({"nodes": True}, "positive integer"),
        ({"time": "2h"}, "not a Slurm time"),
        ({"partition": "a b"}, "not a valid Slurm name"),
        ({"gpus_per_node": -1}, "non-negative"),
        ({"extra_args": ["-N", "3"]}, "repeats --nodes"),
        ({"extra_args": ["--partition=x"], "partition": "y"}, "repeats --partition"),
        ({"extra_args": "--exclusive"}, "list of strings"),
        ({"nodez": 2}, "unknown Slurm request field"),
        ({"time": "1:00", "time_limit": "1:00"}, "either `time` or `time_limit`"),
    ],
)
def test_allocation_request_validation(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        AllocationRequest.from_vars(data)


@pytest.mark.parametrize("value", ["30", "30:00", "4:00:00", "1-0", "2-12:30", "1-2:3:4", 90])
def test_allocation_time_formats(value: object) -> None:
    assert AllocationRequest.from_vars({"time": value}).time_limit == str(value)


def test_partition_may_come_from_extra_args_when_unset() -> None:
    req = AllocationRequest(extra_args=("--partition=x",))
    assert req.sbatch_options()[-1] == "--partition=x"
