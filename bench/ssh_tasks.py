#!/usr/bin/env python3
"""What one trivial task costs over SSH: smlplay's transport against the floor and others.

The workload of ``reference/ssh-task-cost.md``: 4 inventory hosts that all reach the loopback
sshd (``tests/cluster/sshd.sh``), 50 tasks alternating ``true`` and ``echo hello``, each task
on the 4 hosts in parallel (200 remote commands). Every variant runs as its own process and
its whole wall time counts (Python start-up and imports included), in interleaved rounds
after a warm-up round; the median is reported.

    .venv/bin/python bench/ssh_tasks.py                 # ours, floor, exec, fabric; 5 rounds
    .venv/bin/python bench/ssh_tasks.py --runs 3 --with-ansible
    .venv/bin/python bench/ssh_tasks.py --clean-home    # as a user without ~/.bashrc

Variants:
  ours    smlplay's SshTransport (persistent shells, framing, isolation, timeouts)
  floor   raw paramiko, ONE persistent bash per host fed through stdin (no stderr framing,
          no isolation between commands): the lower bound this project measures against
  floor-sub  the floor with each command in a subshell `( ... )`: what isolation alone costs
  exec    raw paramiko, pooled connection, one exec channel per command (TCP_NODELAY set)
  fabric  fabric 3 Connection.run per command (its defaults)
  ansible ansible-playbook, forks 4, pipelining on (--with-ansible: installs ansible-core
          into a venv under /tmp the first time)
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, bench_parser, median_of, write_json

SSHD = REPO / "tests" / "cluster" / "sshd.sh"
ANSIBLE_VENV = Path("/tmp/smlplay-bench-ansible")
CLEAN_USER = "smlbench"
CLEAN_HOME = "/tmp/smlplay-bench-home"
VARIANTS = ("ours", "floor", "floor-sub", "exec", "fabric")


class Clock:
    """Marks inside a child process: connected (all hosts ready), done (all tasks ran)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.connected = self.start

    def mark_connected(self) -> None:
        self.connected = time.perf_counter()

    def report(self) -> None:
        done = time.perf_counter()
        print(
            json.dumps({"connect_s": self.connected - self.start, "tasks_s": done - self.connected})
        )


def commands(tasks: int) -> list[str]:
    return ["true" if i % 2 == 0 else "echo hello" for i in range(tasks)]


def expected(cmd: str) -> str:
    return "hello\n" if cmd == "echo hello" else ""


# ------------------------------------------------------------------ variants (children)


def run_ours(cfg: dict[str, Any], clock: Clock) -> None:
    from engine.transport.ssh import SshHostSpec, connect_all

    specs = [
        SshHostSpec.from_vars(
            f"host{i}",
            {
                "ssh_host": cfg["host"],
                "ssh_port": cfg["port"],
                "ssh_user": cfg["user"],
                "ssh_key": cfg["key"],
                "ssh_known_hosts": cfg["known_hosts"],
            },
            ssh_config=None,
        )
        for i in range(cfg["hosts"])
    ]
    connected = connect_all(specs)
    transports = []
    for name, t in connected.items():
        if isinstance(t, Exception):
            raise SystemExit(f"{name}: {t}")
        transports.append(t)
    clock.mark_connected()
    with ThreadPoolExecutor(len(transports)) as pool:
        for cmd in commands(cfg["tasks"]):
            for r in pool.map(lambda t, c=cmd: t.run(c), transports):
                assert r.rc == 0 and r.stdout == expected(cmd), r
    clock.report()
    for t in transports:
        t.close()


def _paramiko_client(cfg: dict[str, Any]) -> Any:
    import socket

    import paramiko

    sock = socket.create_connection((cfg["host"], cfg["port"]), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client = paramiko.SSHClient()
    client.get_host_keys().load(cfg["known_hosts"])
    client.connect(
        cfg["host"],
        port=cfg["port"],
        username=cfg["user"],
        key_filename=cfg["key"],
        look_for_keys=False,
        allow_agent=False,
        sock=sock,
    )
    return client


def run_floor(cfg: dict[str, Any], clock: Clock, *, subshell: bool = False) -> None:
    import secrets

    def open_shell(_: int) -> Any:
        client = _paramiko_client(cfg)
        channel = client.get_transport().open_session()
        channel.exec_command("bash")
        return client, channel

    def run(channel: Any, cmd: str) -> tuple[int, str]:
        marker = secrets.token_hex(8).encode()
        line = f"({cmd})" if subshell else cmd
        channel.sendall(f"{line}; echo {marker.decode()} $?\n".encode())
        buf = b""
        while True:
            chunk = channel.recv(65536)
            if not chunk:
                raise EOFError("shell closed")
            buf += chunk
            i = buf.find(marker + b" ")
            if i >= 0 and buf.endswith(b"\n"):
                return int(buf[i + len(marker) :].strip()), buf[:i].decode()

    with ThreadPoolExecutor(cfg["hosts"]) as pool:
        shells = list(pool.map(open_shell, range(cfg["hosts"])))
        channels = [ch for _, ch in shells]
        list(pool.map(lambda ch: run(ch, "true"), channels))  # the login shell has started
        clock.mark_connected()
        for cmd in commands(cfg["tasks"]):
            for rc, out in pool.map(lambda ch, c=cmd: run(ch, c), channels):
                assert rc == 0 and out == expected(cmd), (rc, out)
    clock.report()
    for client, _ in shells:
        client.close()


def run_exec(cfg: dict[str, Any], clock: Clock) -> None:
    def run(client: Any, cmd: str) -> tuple[int, str]:
        channel = client.get_transport().open_session()
        channel.exec_command(cmd)
        out = b""
        while chunk := channel.recv(65536):
            out += chunk
        while channel.recv_stderr(65536):
            pass
        rc = channel.recv_exit_status()
        channel.close()
        return rc, out.decode()

    with ThreadPoolExecutor(cfg["hosts"]) as pool:
        clients = list(pool.map(lambda _: _paramiko_client(cfg), range(cfg["hosts"])))
        clock.mark_connected()
        for cmd in commands(cfg["tasks"]):
            for rc, out in pool.map(lambda cl, c=cmd: run(cl, c), clients):
                assert rc == 0 and out == expected(cmd), (rc, out)
    clock.report()
    for client in clients:
        client.close()


def run_fabric(cfg: dict[str, Any], clock: Clock) -> None:
    from fabric import Connection

    conns = [
        Connection(
            cfg["host"],
            port=cfg["port"],
            user=cfg["user"],
            connect_kwargs={
                "key_filename": cfg["key"],
                "look_for_keys": False,
                "allow_agent": False,
            },
        )
        for _ in range(cfg["hosts"])
    ]
    with ThreadPoolExecutor(cfg["hosts"]) as pool:
        list(pool.map(lambda c: c.open(), conns))
        clock.mark_connected()
        for cmd in commands(cfg["tasks"]):
            for r in pool.map(lambda c, cm=cmd: c.run(cm, hide=True, warn=True), conns):
                assert r.exited == 0 and r.stdout == expected(cmd), r
    clock.report()
    for c in conns:
        c.close()


CHILDREN: dict[str, Callable[[dict[str, Any], Clock], None]] = {
    "ours": run_ours,
    "floor": run_floor,
    "floor-sub": lambda cfg, clock: run_floor(cfg, clock, subshell=True),
    "exec": run_exec,
    "fabric": run_fabric,
}


# ------------------------------------------------------------------------ ansible


def ansible_setup(cfg: dict[str, Any], workdir: Path) -> list[str]:
    """Install ansible-core into a venv under /tmp (once) and write inventory + playbook."""
    playbook_bin = ANSIBLE_VENV / "bin" / "ansible-playbook"
    if not playbook_bin.exists():
        print(f"installing ansible-core into {ANSIBLE_VENV} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(ANSIBLE_VENV)], check=True)
        subprocess.run(
            [str(ANSIBLE_VENV / "bin" / "pip"), "install", "-q", "ansible-core"], check=True
        )
    workdir.mkdir(parents=True, exist_ok=True)
    ssh_args = f"-o UserKnownHostsFile={cfg['known_hosts']} -o StrictHostKeyChecking=yes"
    hosts = "\n".join(
        f"host{i} ansible_host={cfg['host']} ansible_port={cfg['port']} "
        f"ansible_user={cfg['user']} ansible_ssh_private_key_file={cfg['key']} "
        f"ansible_python_interpreter=/usr/bin/python3 ansible_ssh_common_args='{ssh_args}'"
        for i in range(cfg["hosts"])
    )
    (workdir / "inventory.ini").write_text(f"[all]\n{hosts}\n")
    tasks = "".join(
        f"    - name: task {i}\n      ansible.builtin.command: '{cmd}'\n      changed_when: false\n"
        for i, cmd in enumerate(commands(cfg["tasks"]))
    )
    (workdir / "play.yml").write_text(f"- hosts: all\n  gather_facts: false\n  tasks:\n{tasks}")
    return [str(playbook_bin), "-i", str(workdir / "inventory.ini"), str(workdir / "play.yml")]


# ------------------------------------------------------------------------ parent


def sshd_env() -> dict[str, str]:
    subprocess.run([str(SSHD), "up"], check=True)
    out = subprocess.run([str(SSHD), "env"], check=True, capture_output=True, text=True).stdout
    env = {}
    for line in out.splitlines():
        name, _, value = line.partition("=")
        env[name] = shlex.split(value)[0] if value else ""
    return env


def ensure_clean_user() -> str:
    """A user whose login shell reads no rc files (the reference's 'clean home' profile).
    The loopback sshd authorises the test key for every user (AuthorizedKeysFile is a path
    in its state dir)."""
    if subprocess.run(["id", CLEAN_USER], capture_output=True).returncode != 0:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--create-home",
                "--home-dir",
                CLEAN_HOME,
                "--shell",
                "/bin/bash",
                CLEAN_USER,
            ],
            check=True,
        )
    subprocess.run(["usermod", "-p", "*", CLEAN_USER], check=True)  # not locked: no PAM here
    for rc in (".bashrc", ".profile", ".bash_profile", ".bash_login"):
        Path(CLEAN_HOME, rc).unlink(missing_ok=True)
    return CLEAN_USER


def timed(argv: list[str], env: dict[str, str]) -> dict[str, float]:
    """Whole-process wall time, plus the child's own marks where it reports them."""
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(
            f"{' '.join(argv[:4])} ... failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        )
    marks: dict[str, float] = {"wall_s": wall}
    last = proc.stdout.strip().splitlines()[-1:] or [""]
    if last[0].startswith("{"):
        marks.update(json.loads(last[0]))
    return marks


def main() -> None:
    parser = bench_parser(__doc__, runs=5, runs_help="measured rounds (after 1 warm-up)")
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--with-ansible", action="store_true")
    parser.add_argument(
        "--clean-home",
        action="store_true",
        help=f"log in as {CLEAN_USER!r}, a user with no rc files (created)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--cfg", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        CHILDREN[args.child](json.loads(args.cfg), Clock())
        return

    env = sshd_env()
    cfg = {
        "host": env["SMLPLAY_SSH_HOST"],
        "port": int(env["SMLPLAY_SSH_PORT"]),
        "user": ensure_clean_user() if args.clean_home else env["SMLPLAY_SSH_USER"],
        "key": env["SMLPLAY_SSH_KEY"],
        "known_hosts": env["SMLPLAY_SSH_KNOWN_HOSTS"],
        "hosts": args.hosts,
        "tasks": args.tasks,
    }
    child_env = {**os.environ, "PYTHONPATH": str(REPO)}
    argvs = {
        v: [sys.executable, __file__, "--child", v, "--cfg", json.dumps(cfg)]
        for v in args.variants.split(",")
    }
    if args.with_ansible:
        argvs["ansible"] = ansible_setup(cfg, Path("/tmp/smlplay-bench-ansible-play"))
        child_env.update(
            ANSIBLE_FORKS=str(args.hosts), ANSIBLE_PIPELINING="True", ANSIBLE_NOCOLOR="1"
        )
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in argvs}
    for rnd in range(args.runs + 1):  # round 0 warms caches up and is not counted
        for variant, argv in argvs.items():
            if variant == "ansible" and rnd == 0:
                continue  # minutes per run: no warm-up for it
            marks = timed(argv, child_env)
            if rnd > 0:
                runs[variant].append(marks)
            print(f"round {rnd} {variant:8s} {marks['wall_s']:7.2f} s", file=sys.stderr)
    print_table(runs, cfg, args.runs)
    write_json(args.json, {"cfg": cfg, "runs": runs})


def print_table(runs: dict[str, list[dict[str, float]]], cfg: dict[str, Any], n: int) -> None:
    def med(variant: str, key: str) -> float | None:
        return median_of(runs[variant], key)

    wall = {v: med(v, "wall_s") or 0.0 for v in runs}
    tasks = {v: med(v, "tasks_s") for v in runs}
    print(
        f"\n{cfg['hosts']} hosts x {cfg['tasks']} tasks ({cfg['hosts'] * cfg['tasks']} commands), "
        f"median of {n}, user {cfg['user']}, {os.cpu_count()} cores"
    )
    print("wall = whole process (start-up, imports, connect, tasks); tasks = the 50 tasks alone")
    head = (
        "variant",
        "wall s",
        "range",
        "ms/task",
        "x floor",
        "x ours",
        "tasks s",
        "ms/task",
        "x floor",
        "x ours",
    )
    widths = (-8, 7, 13, 8, 7, 7, 7, 8, 7, 7)
    cells = [f"{h:<{-w}}" if w < 0 else f"{h:>{w}}" for h, w in zip(head, widths, strict=True)]
    print(" ".join(cells[:6]) + " | " + " ".join(cells[6:]))
    for v in runs:
        lo = min(r["wall_s"] for r in runs[v])
        hi = max(r["wall_s"] for r in runs[v])
        row = [
            f"{v:8s}",
            f"{wall[v]:7.2f}",
            f"{lo:6.2f}-{hi:<6.2f}",
            f"{wall[v] / cfg['tasks'] * 1000:8.1f}",
        ]
        row += [_ratio(wall[v], wall.get("floor")), _ratio(wall[v], wall.get("ours"))]
        t = tasks[v]
        if t is None:
            row += [f"{'-':>7s}", f"{'-':>8s}", f"{'-':>7s}", f"{'-':>7s}"]
        else:
            row += [
                f"{t:7.2f}",
                f"{t / cfg['tasks'] * 1000:8.1f}",
                _ratio(t, tasks.get("floor")),
                _ratio(t, tasks.get("ours")),
            ]
        print(" ".join(row[:6]) + " | " + " ".join(row[6:]))


def _ratio(value: float, base: float | None) -> str:
    return f"{value / base:7.2f}" if base else f"{'-':>7s}"


if __name__ == "__main__":
    main()
