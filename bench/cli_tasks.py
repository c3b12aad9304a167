#!/usr/bin/env python3
"""The whole ``smlplay run`` against the floor, as a new user would measure it (issue #15).

4 inventory hosts on the loopback sshd (``tests/cluster/sshd.sh up``), a playbook of 50
``command`` tasks alternating ``true`` and ``echo hello`` (200 remote commands), and the
whole process ``smlplay run playbook.yaml -i inventory.yaml``: start-up, imports, the plan,
connecting, the tasks, the display and the run record. Beside it, in the same rounds, the
floor of ``reference/ssh-task-cost.md`` (raw paramiko, one persistent ``bash`` per host fed
through stdin: ``bench/ssh_tasks.py``'s ``floor`` child) and, where ``.venv-ansible``
exists, ansible-playbook (forks 4, pipelining on).

Both profiles of the reference, one after the other: ``slow`` logs in as root, whose
``~/.bashrc`` runs ``pyenv init``; ``clean`` logs in as a user without rc files. One warm-up
round per profile, then ``--runs`` rounds with the variants taking turns; the table shows
medians and ``x floor`` ratios (measured side by side: on a shared machine the ratios count,
not the absolute times)::

    .venv/bin/python bench/cli_tasks.py                     # both profiles, median of 3
    .venv/bin/python bench/cli_tasks.py --profiles clean --runs 5
    .venv/bin/python bench/cli_tasks.py --json out.json

Run it under ``flock /tmp/smlplay-servers.lock`` on a machine others share (it uses the
shared loopback sshd).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, bench_parser, median_of, timed, write_json
from ssh_tasks import commands, ensure_clean_user, sshd_env

ANSIBLE = REPO / ".venv-ansible" / "bin" / "ansible-playbook"
PROFILES = ("slow", "clean")


def write_workload(workdir: Path, cfg: dict[str, Any]) -> None:
    """inventory.yaml and playbook.yaml for smlplay, inventory.ini and play.yml for ansible."""
    hosts = "".join(
        f"    host{i}:\n      connection: ssh\n      ssh_host: {cfg['host']}\n      ssh_port: {cfg['port']}\n"
        f"      ssh_user: {cfg['user']}\n      ssh_key: {cfg['key']}\n      ssh_known_hosts: {cfg['known_hosts']}\n"
        for i in range(cfg["hosts"])
    )
    (workdir / "inventory.yaml").write_text(f"all:\n  hosts:\n{hosts}")
    tasks = "".join(f"    - name: task {i}\n      command: '{cmd}'\n" for i, cmd in enumerate(commands(cfg["tasks"])))
    (workdir / "playbook.yaml").write_text(f"- name: {cfg['tasks']} trivial tasks\n  hosts: all\n  tasks:\n{tasks}")
    ssh_args = f"-o UserKnownHostsFile={cfg['known_hosts']} -o StrictHostKeyChecking=yes"
    ini = "".join(
        f"host{i} ansible_host={cfg['host']} ansible_port={cfg['port']} ansible_user={cfg['user']} "
        f"ansible_ssh_private_key_file={cfg['key']} ansible_python_interpreter=/usr/bin/python3 "
        f"ansible_ssh_common_args='{ssh_args}'\n"
        for i in range(cfg["hosts"])
    )
    (workdir / "inventory.ini").write_text(f"[all]\n{ini}")
    play = "".join(
        f"    - name: task {i}\n      ansible.builtin.command: '{cmd}'\n      changed_when: false\n"
        for i, cmd in enumerate(commands(cfg["tasks"]))
    )
    (workdir / "play.yml").write_text(f"- hosts: all\n  gather_facts: false\n  tasks:\n{play}")


def smlplay_argv() -> list[str]:
    """The console script a user runs (the venv's ``smlplay``), else ``python -m engine``."""
    script = Path(sys.executable).parent / "smlplay"
    return [str(script)] if script.exists() else [sys.executable, "-m", "engine"]


def measure(profile: str, args: argparse.Namespace, sshd: dict[str, str]) -> dict[str, list[dict[str, float]]]:
    cfg = {
        "host": sshd["SMLPLAY_SSH_HOST"],
        "port": int(sshd["SMLPLAY_SSH_PORT"]),
        "user": ensure_clean_user() if profile == "clean" else sshd["SMLPLAY_SSH_USER"],
        "key": sshd["SMLPLAY_SSH_KEY"],
        "known_hosts": sshd["SMLPLAY_SSH_KNOWN_HOSTS"],
        "hosts": args.hosts,
        "tasks": args.tasks,
    }
    workdir = Path(tempfile.mkdtemp(prefix=f"smlplay-cli-bench-{profile}-"))
    write_workload(workdir, cfg)
    env = {**os.environ, "PYTHONPATH": str(REPO), "SMLPLAY_RUNS_DIR": str(workdir / "runs")}
    # as on a user's machine: bytecode is cached (the warm-up round writes it); with
    # PYTHONDONTWRITEBYTECODE=1 (set in some shells here) every run recompiles the engine
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    argvs = {
        "smlplay": [*smlplay_argv(), "run", "playbook.yaml", "-i", "inventory.yaml"],
        "floor": [sys.executable, str(REPO / "bench" / "ssh_tasks.py"), "--child", "floor", "--cfg", json.dumps(cfg)],
    }
    if ANSIBLE.exists() and not args.no_ansible:
        argvs["ansible"] = [str(ANSIBLE), "-i", "inventory.ini", "play.yml"]
        env.update(ANSIBLE_FORKS=str(args.hosts), ANSIBLE_PIPELINING="True", ANSIBLE_NOCOLOR="1")
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in argvs}
    for rnd in range(args.runs + 1):  # round 0 warms the page cache and sshd up: not counted
        for variant, argv in argvs.items():
            if variant == "ansible" and rnd == 0:
                continue  # tens of seconds per run: no warm-up for it
            if variant == "ansible" and len(runs["ansible"]) >= args.ansible_runs:
                continue
            marks = timed(argv, cwd=workdir, env=env)
            if rnd > 0:
                runs[variant].append(marks)
            print(f"{profile} round {rnd} {variant:8s} {marks['wall_s']:6.2f} s wall {marks['cpu_s']:6.2f} s CPU", file=sys.stderr, flush=True)
    shutil.rmtree(workdir, ignore_errors=True)
    return runs


def table(profile: str, runs: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> list[str]:
    def med(v: str, key: str) -> float:
        return median_of(runs[v], key) or 0.0

    floor_wall, floor_cpu = med("floor", "wall_s"), med("floor", "cpu_s")
    lines = [
        f"profile {profile} ({'root, ~/.bashrc runs pyenv init' if profile == 'slow' else 'user smlbench, no rc files'}): "
        f"{args.hosts} hosts x {args.tasks} tasks, median of {args.runs} after a warm-up, {os.cpu_count()} cores",
        f"{'variant':<8} {'wall s':>7} {'range':>13} {'ms/task':>8} {'x floor':>8} | {'CPU s':>6} {'x floor':>8}",
    ]
    for v, rs in runs.items():
        walls = [r["wall_s"] for r in rs]
        wall, cpu = med(v, "wall_s"), med(v, "cpu_s")
        lines.append(
            f"{v:<8} {wall:7.2f} {min(walls):6.2f}-{max(walls):<6.2f} {wall / args.tasks * 1000:8.1f} {wall / floor_wall:8.2f} | "
            f"{cpu:6.2f} {cpu / floor_cpu:8.2f}"
        )
    return lines


def main() -> None:
    parser = bench_parser(__doc__, runs=3, runs_help="measured rounds per profile (after 1 warm-up)")
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--profiles", default=",".join(PROFILES), help="slow,clean")
    parser.add_argument("--no-ansible", action="store_true", help="skip ansible-playbook even if .venv-ansible exists")
    parser.add_argument("--ansible-runs", type=int, default=1, help="ansible-playbook runs per profile (slow: ~1 min each)")
    args = parser.parse_args()

    sshd = sshd_env()
    results = {p: measure(p, args, sshd) for p in args.profiles.split(",")}
    print()
    for profile, runs in results.items():
        print("\n".join(table(profile, runs, args)) + "\n")
    write_json(args.json, results)


if __name__ == "__main__":
    main()
