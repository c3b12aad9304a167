"""The ssh transport against a real OpenSSH server on loopback (see conftest.py).

The framing parser and host-variable parsing are also tested on their own, without sshd.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from engine.errors import TransportError, UnreachableError, ValidationError
from engine.transport._shell import _Stream, frame
from engine.transport.base import BackgroundSpec, Transport
from engine.transport.ssh import SshHostSpec, SshTransport, connect_all
from tests.ports import free_port as _free_port

if TYPE_CHECKING:
    from tests.transport.conftest import Sshd

REPO = Path(__file__).resolve().parents[2]


def _transport(sshd: Sshd, name: str = "box", **extra: Any) -> SshTransport:
    return SshTransport(SshHostSpec.from_vars(name, sshd.hostvars(**extra), ssh_config=None))


def _ps_state(pid: int) -> str:
    """ps's STAT for a pid on this machine ('' if it is gone)."""
    out = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True)
    return out.stdout.strip()


def _gone(pid: int) -> bool:
    # PID 1 in this kind of VM does not reap orphans: a killed process may linger as a zombie
    # (<defunct>, state Z), which is dead all the same.
    state = _ps_state(pid)
    return state == "" or state.startswith("Z")


# ----------------------------------------------------------------------------- pure parts


def test_engine_transport_does_not_import_paramiko() -> None:
    code = "import sys, engine.transport; assert 'paramiko' not in sys.modules, 'paramiko'"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


@pytest.mark.skipif(not hasattr(socket, "TCP_QUICKACK"), reason="TCP_QUICKACK is Linux's")
def test_the_ssh_socket_acknowledges_each_read_until_it_settles() -> None:
    from engine.transport.ssh_connect import _tcp_socket

    with socket.create_server(("127.0.0.1", 0)) as server:
        sock = _tcp_socket("127.0.0.1", server.getsockname()[1], timeout=5)
        peer, _ = server.accept()
        with peer, contextlib.closing(sock):
            quickack = lambda: sock._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK)  # noqa: E731
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) and not sock.settled
            for _ in range(3):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 0)  # as the kernel does
                peer.sendall(b"x")
                assert sock.recv(10) == b"x" and quickack() == 1
            sock.settle()  # reads go straight to the socket: no setsockopt after them
            assert sock.settled and sock.recv == sock._sock.recv
            peer.sendall(b"y")
            assert sock.recv(10) == b"y"


def test_markers_found_when_fed_byte_by_byte() -> None:
    tok = b"__smlplay_x"
    out = _Stream(tok + b" B", b"\n" + tok + b" E")
    data = b"junk" + tok + b" B 42\nhello\nno newline" + b"\n" + tok + b" E 7\nlate"
    for i in range(len(data)):
        out.feed(data[i : i + 1])
    assert out.done
    assert out.begin_info.strip() == b"42"
    assert out.end_info.strip() == b"7"
    assert out.body() == b"hello\nno newline"


def test_frame_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="NUL"):
        frame("echo \0")
    with pytest.raises(ValueError, match="invalid environment variable name"):
        frame("true", env={"A-B": "x"})


def test_from_vars_defaults_and_types() -> None:
    spec = SshHostSpec.from_vars(
        "login1", {"ssh_port": "2200", "ssh_strict_host_key_checking": "no"}, ssh_config=None
    )
    assert (spec.host, spec.port, spec.strict_host_key_checking) == ("login1", 2200, False)
    assert spec.connect_timeout == 10 and spec.retries == 2 and spec.jump == ()
    with pytest.raises(ValidationError, match="login1: ssh_port must be an integer"):
        SshHostSpec.from_vars("login1", {"ssh_port": "twenty"}, ssh_config=None)
    with pytest.raises(ValidationError, match="ssh_strict_host_key_checking must be true or false"):
        SshHostSpec.from_vars("login1", {"ssh_strict_host_key_checking": "maybe"}, ssh_config=None)
    # a timeout is a duration, as everywhere else a time is asked for
    assert SshHostSpec.from_vars("login1", {"ssh_connect_timeout": "2m"}, ssh_config=None).connect_timeout == 120.0
    assert SshHostSpec.from_vars("login1", {"ssh_connect_timeout": 2.5}, ssh_config=None).connect_timeout == 2.5
    for bad in ("0s", 0, "soon", True):
        with pytest.raises(ValidationError, match="ssh_connect_timeout must be"):
            SshHostSpec.from_vars("login1", {"ssh_connect_timeout": bad}, ssh_config=None)


def test_from_vars_reads_ssh_config(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text(
        "Host cluster\n  HostName login.example.org\n  Port 2022\n  User alice\n"
        "  IdentityFile ~/.ssh/cluster_key\n  ProxyJump bastion\n"
        "Host bastion\n  HostName bastion.example.org\n  User bob\n  Port 22022\n"
    )
    spec = SshHostSpec.from_vars("cluster", {}, ssh_config=str(config))
    assert (spec.host, spec.port, spec.user) == ("login.example.org", 2022, "alice")
    assert spec.keys == (os.path.expanduser("~/.ssh/cluster_key"),)
    assert [str(j) for j in spec.jump] == ["bob@bastion.example.org:22022"]
    # Inventory variables win over the config; ssh_jump accepts user@host:port chains.
    spec = SshHostSpec.from_vars(
        "cluster", {"ssh_port": 22, "ssh_jump": "carol@a:2201,bastion"}, ssh_config=str(config)
    )
    assert spec.port == 22
    assert [j.address for j in spec.jump] == ["a:2201", "bastion.example.org:22022"]
    assert spec.jump[0].user == "carol"


def test_ssh_transport_satisfies_the_protocol() -> None:
    spec = SshHostSpec.from_vars("box", {}, ssh_config=None)  # connects only when used
    assert isinstance(SshTransport(spec), Transport)


# -------------------------------------------------------------------------- commands


@pytest.mark.cluster
def test_the_socket_settles_once_the_first_session_started(sshd: Sshd) -> None:
    t = _transport(sshd).connect()
    try:
        sock = t._clients[0].get_transport().sock
        assert not sock.settled  # logged in, no session yet: sshd still writes with Nagle
        assert t.run("echo hi").stdout == "hi\n"
        assert sock.settled
    finally:
        t.close()


@pytest.mark.cluster
def test_rc_stdout_stderr_are_kept_apart(ssh: SshTransport) -> None:
    r = ssh.run("echo out; echo err >&2; echo out2; exit 3")
    assert (r.rc, r.stdout, r.stderr, r.timed_out) == (3, "out\nout2\n", "err\n", False)
    assert ssh.run("true").rc == 0
    assert ssh.run("false").rc == 1
    r = ssh.run("if then")
    assert r.rc == 2 and "syntax error" in r.stderr


@pytest.mark.cluster
def test_binary_unterminated_and_large_output(ssh: SshTransport) -> None:
    r = ssh.run(r"printf 'a\x00b\xffc'; printf 'no newline' >&2")
    assert r.stdout == "a\x00b\ufffdc"
    assert r.stderr == "no newline"
    r = ssh.run("printf '\\n\\n'")
    assert r.stdout == "\n\n"
    # More than the SSH window (2 MiB) on both streams at once must not deadlock.
    r = ssh.run(
        "for i in 1 2 3; do head -c 1500000 /dev/zero | tr '\\0' x; "
        "head -c 1500000 /dev/zero | tr '\\0' y >&2; done",
        timeout=60,
    )
    assert r.rc == 0
    assert r.stdout == "x" * 4_500_000 and r.stderr == "y" * 4_500_000


@pytest.mark.cluster
def test_commands_do_not_leak_state(ssh: SshTransport) -> None:
    shell_pid = ssh.run("echo $$").stdout
    r = ssh.run("cd /tmp; export LEAK=1; umask 077; f() { :; }; set -e; trap 'echo t' EXIT; exit 4")
    assert r.rc == 4 and r.stdout == "t\n"
    r = ssh.run("pwd; echo ${LEAK-unset}; umask; type f >/dev/null 2>&1 || echo nofunc; echo $-")
    assert r.stdout.splitlines()[:4] == [
        ssh.run("echo $HOME").stdout.strip(),
        "unset",
        "0022",
        "nofunc",
    ]
    assert "e" not in r.stdout.splitlines()[4]
    assert ssh.run("echo $$").stdout == shell_pid  # same persistent shell all along


@pytest.mark.cluster
def test_env_cwd_stdin_and_argv(ssh: SshTransport) -> None:
    r = ssh.run('pwd; echo "$A|$B"', cwd="/etc", env={"A": "x y", "B": "it's $HOME"})
    assert r.stdout == "/etc\nx y|it's $HOME\n"
    r = ssh.run("pwd", cwd="/does/not/exist")
    assert r.rc == 1 and "No such file" in r.stderr
    assert ssh.run("cat", stdin=b"in\x00put\n").stdout == "in\x00put\n"
    assert ssh.run("cat").stdout == ""  # stdin is /dev/null, not the shell's own stream
    r = ssh.run(["printf", "%s|", "a b", "$HOME", "it's", ";exit 9"])
    assert (r.rc, r.stdout) == (0, "a b|$HOME|it's|;exit 9|")
    with pytest.raises(ValidationError, match="box: invalid environment variable name"):
        ssh.run("true", env={"NOT-A-NAME": "x"})


@pytest.mark.cluster
def test_timeout_kills_the_command_group_not_the_shell(ssh: SshTransport, tmp_path: Path) -> None:
    shell_pid = ssh.run("echo $$").stdout
    pidfile = tmp_path / "child.pid"
    t0 = time.monotonic()
    r = ssh.run(f"sleep 300 & echo $! > {pidfile}; echo started; wait", timeout=1)
    assert time.monotonic() - t0 < 6
    assert r.timed_out and r.rc == 124 and r.stdout == "started\n"
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(child), "the command's child survived the timeout"
    assert ssh.run("echo $$").stdout == shell_pid
    assert ssh.run("echo ok").stdout == "ok\n"


@pytest.mark.cluster
def test_eight_threads_on_one_host(ssh: SshTransport) -> None:
    errors: list[str] = []

    def worker(n: int) -> None:
        for i in range(25):
            r = ssh.run(f"echo {n}-{i}; echo e{n}-{i} >&2; exit {i % 7}")
            if (r.rc, r.stdout, r.stderr) != (i % 7, f"{n}-{i}\n", f"e{n}-{i}\n"):
                errors.append(f"{n}-{i}: {r}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert ssh._shells.open_count <= ssh.spec.max_shells


@pytest.mark.cluster
def test_broken_shell_falls_back_and_recovers(ssh: SshTransport) -> None:
    # A command that kills its own shell: reported as lost, and the next command still runs.
    r = ssh.run("kill -9 $$; sleep 0.5")
    assert r.rc == 255 and "remote shell died" in r.stderr
    assert ssh.run("echo again").stdout == "again\n"
    # A shell whose channel broke while idle: the command goes over an exec channel.
    assert ssh._shells.idle, "expected an idle shell in the pool"
    for shell in ssh._shells.idle:
        shell.channel.close()
    r = ssh.run("echo via-exec; echo e >&2; exit 5")
    assert (r.rc, r.stdout, r.stderr) == (5, "via-exec\n", "e\n")
    assert ssh.run("echo fresh").stdout == "fresh\n"


@pytest.mark.cluster
def test_interrupt_kills_commands_in_flight(ssh: SshTransport) -> None:
    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(ssh.run("sleep 60")))
    thread.start()
    deadline = time.monotonic() + 10
    while not ssh._inflight and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    ssh.interrupt()
    thread.join(timeout=10)
    assert results and results[0].rc == 137
    assert ssh.run("echo ok").stdout == "ok\n"


# ------------------------------------------------------------------ background processes


@pytest.mark.cluster
def test_start_alive_stop(ssh: SshTransport, tmp_path: Path) -> None:
    log = tmp_path / "logs" / "svc.log"
    spec = BackgroundSpec(
        name="svc",
        cmd='echo "up $SVC_MODE in $PWD"; exec sleep 300',
        log=str(log),
        env={"SVC_MODE": "test"},
        cwd="/tmp",
    )
    proc = ssh.start(spec, critical=True, tier=2)
    pid = int(proc.handle["pid"])
    assert proc.handle["pgid"] == pid and proc.host == "box" and proc.transport == "ssh"
    assert proc.critical and proc.tier == 2 and proc.log == str(log)
    assert ssh.alive(proc)
    assert _ps_state(pid) != "" and not _gone(pid)
    # The process lives in its own session, detached from the shell that started it.
    assert os.getsid(pid) == pid
    deadline = time.monotonic() + 5
    while "up" not in ssh.tail(str(log)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ssh.tail(str(log)) == "up test in /tmp\n"
    assert ssh.stop(proc, grace=5) is True
    assert _gone(pid)
    assert not ssh.alive(proc)
    assert ssh.stop(proc, grace=1) is False


@pytest.mark.cluster
def test_a_started_process_does_not_read_the_login_rc_files(
    ssh: SshTransport, tmp_path: Path
) -> None:
    # sshd sets SSH_CLIENT, and bash sources ~/.bashrc for a `bash -c` it believes sshd
    # started: without --norc a noisy or slow rc file (pyenv init on these machines) lands
    # in every process log and delays every start.
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text("echo RC-FILE-WAS-READ\n")
    log = tmp_path / "svc.log"
    spec = BackgroundSpec(
        name="svc", cmd="echo started; exec sleep 300", log=str(log), env={"HOME": str(home)}
    )
    proc = ssh.start(spec)
    try:
        deadline = time.monotonic() + 5
        while "started" not in ssh.tail(str(log)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ssh.tail(str(log)) == "started\n"
    finally:
        ssh.stop(proc, grace=1)


@pytest.mark.cluster
def test_stop_escalates_to_kill_and_survives_a_new_connection(sshd: Sshd, tmp_path: Path) -> None:
    first = _transport(sshd)
    proc = first.start(
        BackgroundSpec(
            name="stubborn",
            cmd="trap '' TERM; sleep 300 & wait; sleep 300",
            log=str(tmp_path / "s.log"),
        )
    )
    first.close()  # the process must outlive the connection that started it
    second = _transport(sshd)
    try:
        assert second.alive(proc)
        t0 = time.monotonic()
        assert second.stop(proc, grace=0.5) is True
        assert time.monotonic() - t0 < 10
        assert _gone(int(proc.handle["pid"]))
        assert not second.alive(proc)
    finally:
        second.close()


# ----------------------------------------------------------------------------- files


@pytest.mark.cluster
def test_put_read_tail(ssh: SshTransport, tmp_path: Path) -> None:
    dest = tmp_path / "new" / "dir" / "file.bin"
    data = bytes(range(256)) * 1000
    ssh.put(data, str(dest), mode=0o600)
    assert dest.read_bytes() == data
    assert dest.stat().st_mode & 0o777 == 0o600
    assert ssh.read(str(dest)) == data
    ssh.put(b"replaced\n", str(dest))
    assert ssh.read(str(dest)) == b"replaced\n"
    text = tmp_path / "log.txt"
    ssh.put("".join(f"line {i}\n" for i in range(100)).encode(), str(text))
    assert ssh.tail(str(text), 3) == "line 97\nline 98\nline 99\n"
    assert ssh.tail(str(tmp_path / "missing.log")) == ""
    with pytest.raises(FileNotFoundError):
        ssh.read(str(tmp_path / "missing"))
    assert sorted(p.name for p in dest.parent.iterdir()) == ["file.bin"]  # no temp files left


@pytest.mark.cluster
def test_put_and_read_relative_to_home(ssh: SshTransport) -> None:
    name = f"smlplay-test-{os.getpid()}"
    try:
        ssh.put(b"home\n", f"~/{name}/f")
        assert ssh.read(f"~/{name}/f") == b"home\n"
        assert ssh.run(f"cat {name}/f", cwd="~").stdout == "home\n"
    finally:
        ssh.run(["rm", "-rf", "--", name])


# ------------------------------------------------------------------------------- TCP


@pytest.mark.cluster
def test_connect_tcp_reaches_a_server_seen_from_the_host(ssh: SshTransport, tmp_path: Path) -> None:
    port = _free_port()
    (tmp_path / "hello.txt").write_text("hello over ssh\n")
    proc = ssh.start(
        BackgroundSpec(
            name="http",
            cmd=f"exec python3 -m http.server {port} --bind 127.0.0.1",
            log=str(tmp_path / "http.log"),
            cwd=str(tmp_path),
        )
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                conn = ssh.connect_tcp("127.0.0.1", port, 5)
                break
            except ConnectionRefusedError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        conn.sendall(b"GET /hello.txt HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
        conn.close()
        assert data.startswith(b"HTTP/1.0 200")
        assert data.endswith(b"hello over ssh\n")
    finally:
        ssh.stop(proc, grace=2)
    with pytest.raises(ConnectionRefusedError):
        ssh.connect_tcp("127.0.0.1", _free_port(), 5)


# ------------------------------------------------------------------------ connecting


@pytest.mark.cluster
def test_closed_port_is_unreachable(sshd: Sshd) -> None:
    port = _free_port()
    t = _transport(sshd, "deadhost", ssh_port=port, ssh_retries=1)
    t0 = time.monotonic()
    with pytest.raises(UnreachableError) as info:
        t.run("true")
    message = str(info.value)
    assert "deadhost" in message and f"127.0.0.1:{port}" in message
    assert "connection refused" in message and "2 attempts" in message
    assert time.monotonic() - t0 >= 0.5  # one retry, after a backoff


@pytest.mark.cluster
def test_unknown_host_key_is_refused_with_the_line_to_add(
    sshd: Sshd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh/known_hosts to fall back on
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    t = _transport(sshd, "newhost", ssh_known_hosts=str(empty))
    with pytest.raises(UnreachableError) as info:
        t.connect()
    err = info.value
    assert "newhost" in str(err) and f"127.0.0.1:{sshd.port}" in str(err)
    assert "host key is unknown" in err.message
    expected_line = Path(sshd.known_hosts).read_text().strip()
    assert err.hint is not None and expected_line in err.hint
    # The opt-out connects, with a warning naming the host and fingerprint.
    with caplog.at_level(logging.WARNING, logger="engine.transport.ssh"):
        lax = _transport(
            sshd, "newhost", ssh_known_hosts=str(empty), ssh_strict_host_key_checking=False
        )
        try:
            assert lax.run("echo ok").stdout == "ok\n"
        finally:
            lax.close()
    assert any("newhost" in r.getMessage() and "SHA256:" in r.getMessage() for r in caplog.records)


@pytest.mark.cluster
def test_changed_host_key_is_refused(
    sshd: Sshd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True
    )
    other = (tmp_path / "other.pub").read_text().split()
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[127.0.0.1]:{sshd.port} {other[0]} {other[1]}\n")
    t = _transport(sshd, "spoofed", ssh_known_hosts=str(wrong), ssh_strict_host_key_checking=False)
    with pytest.raises(UnreachableError, match="host key mismatch") as info:
        t.connect()
    assert "spoofed" in str(info.value)
    assert info.value.hint is not None and "ssh-keygen -R" in info.value.hint


@pytest.mark.cluster
def test_wrong_key_fails_authentication(sshd: Sshd, tmp_path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True
    )
    t = _transport(sshd, "locked", ssh_key=str(tmp_path / "k"))
    with pytest.raises(UnreachableError, match="authentication failed") as info:
        t.connect()
    assert "locked" in str(info.value)


@pytest.mark.cluster
def test_jump_host(sshd: Sshd) -> None:
    t = _transport(sshd, "inner", ssh_jump=f"{sshd.user}@127.0.0.1:{sshd.port}")
    try:
        assert [str(j) for j in t.spec.jump] == [f"{sshd.user}@127.0.0.1:{sshd.port}"]
        assert t.run("echo through; echo e >&2").stdout == "through\n"
        assert len(t._clients) == 2  # jump host, then the target through it
        assert not t._clients[0].get_transport().sock.settled  # the jump's sshd keeps Nagle on
        t.put(b"via jump", "/tmp/smlplay-jump-test")
        assert t.read("/tmp/smlplay-jump-test") == b"via jump"
    finally:
        t.close()
    dead = _free_port()
    t = _transport(
        sshd, "inner", ssh_port=dead, ssh_retries=0, ssh_jump=f"{sshd.user}@127.0.0.1:{sshd.port}"
    )
    with pytest.raises(UnreachableError) as info:
        t.connect()
    message = str(info.value)
    assert f"127.0.0.1:{dead} via {sshd.user}@127.0.0.1:{sshd.port}" in message
    assert "jump host could not open a connection" in message


@pytest.mark.cluster
def test_connect_all_reports_each_host(sshd: Sshd) -> None:
    dead = _free_port()
    specs = [SshHostSpec.from_vars(f"h{i}", sshd.hostvars(), ssh_config=None) for i in range(3)] + [
        SshHostSpec.from_vars("down", sshd.hostvars(ssh_port=dead, ssh_retries=0), ssh_config=None)
    ]
    result = connect_all(specs)
    try:
        assert set(result) == {"h0", "h1", "h2", "down"}
        assert isinstance(result["down"], UnreachableError)
        for name in ("h0", "h1", "h2"):
            t = result[name]
            assert isinstance(t, SshTransport)
            assert t.run("echo $SSH_CONNECTION").stdout.strip() != ""
    finally:
        for t in result.values():
            if isinstance(t, SshTransport):
                t.close()


@pytest.mark.cluster
def test_closed_transport_refuses_work(sshd: Sshd) -> None:
    t = _transport(sshd).connect()
    t.close()
    with pytest.raises(TransportError, match="closed"):
        t.run("true")
