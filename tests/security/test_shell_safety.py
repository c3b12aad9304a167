"""Shell safety: values full of shell syntax reach the remote process as the literal string.

Over real SSH (the loopback sshd as the login host) and real srun (a step of an allocation
on the local Slurm cluster, through that login host), each value goes in by every route a
task has: ``command`` argv, ``command`` cmd and ``shell`` with ``| quote``, the task's
``environment`` and a ``process``'s ``cmd`` and ``env``. The process on the far side writes
the argv and environment it received; they must equal the values, byte for byte, and no
command hidden in a value may have run.
"""

from __future__ import annotations

import json

import pytest

from tests.cluster.conftest import Cli

pytestmark = pytest.mark.cluster

DUMP = (
    "import json, os, sys\n"
    "env = {k: v for k, v in os.environ.items() if k.startswith('HOSTILE_')}\n"
    "with open(sys.argv[1] + '.tmp', 'w') as f: json.dump({'argv': sys.argv[2:], 'env': env}, f)\n"
    "os.rename(sys.argv[1] + '.tmp', sys.argv[1])\n"
)


def hostile_values(canary: str) -> list[str]:
    return [
        "two  words",
        "it's",
        'say "hi"',
        "a;b && c || d",
        f"$(touch {canary}-dollar)",
        f"`touch {canary}-backtick`",
        "line one\nline two",
        "-rf",
        "--help",
        "$HOME ${PATH} $1",
        "* ? [a-z] ~",
        "back\\slash \\n",
        "> /tmp/x < /dev/null | cat &",
        "100% {x} #comment",
        "  padded  ",
    ]


def test_hostile_values_are_literal_over_ssh_and_srun(cli: Cli) -> None:
    canary = str(cli.out / "PWNED")
    hostile = hostile_values(canary)
    env = {f"HOSTILE_{i}": v for i, v in enumerate(hostile)}
    run = cli.run(
        "../../security/playbooks/hostile.yaml",
        extra_vars={"hostile": hostile, "hostile_env": env, "dump": DUMP},
        timeout=150,
    )
    assert run.rc == 0, str(run)
    hosts = sorted(p.name.split("-")[0] for p in cli.out.glob("*-argv.json"))
    assert len(hosts) == 2 and "login" in hosts, hosts  # the ssh host and the srun node
    for host in hosts:
        for route, with_env in (("argv", True), ("cmd", False), ("shell", True), ("process", True)):
            got = json.loads((cli.out / f"{host}-{route}.json").read_text())
            assert got["argv"] == hostile, (host, route)
            if with_env:
                assert got["env"] == env, (host, route)
    assert not list(cli.out.glob("PWNED*")), "a command hidden in a value ran"
    # the process logs the engine created on the far side are private: over SSH the file
    # 0600 in a 0700 directory; over srun the directory 0700 (Slurm creates the file)
    logs = sorted(cli.last_run_dir().glob(f"logs/*/dump-{cli.marker}.process.log"))
    assert len(logs) == 2, logs
    for log in logs:
        assert log.parent.stat().st_mode & 0o777 == 0o700, log.parent
    (ssh_log,) = [p for p in logs if p.parent.name == "login"]
    assert ssh_log.stat().st_mode & 0o777 == 0o600
