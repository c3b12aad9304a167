"""engine.transport.srun.SrunTransport without a cluster: the argv it hands its gateway.

The gateway is a fake :class:`~engine.transport.base.Transport` that records every argv
and answers ``scontrol``/``scancel`` from a script. What the real gateway (SSH to a login
node) does with an argv is quote it for a remote shell, so the quoting is checked by
running that shell here: ``bash -c render(argv)`` with ``srun ... `` replaced by what
srun itself runs (``bash -c SCRIPT``) must reproduce every value byte for byte.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from engine.errors import TransportError
from engine.slurm.srun import ContainerFlags, render
from engine.transport import srun as srun_module
from engine.transport.base import BackgroundSpec, CommandResult, ProcessRecord, Transport
from engine.transport.srun import SrunTransport

TRICKY = {
    "SPACES": "two  words and a\ttab",
    "QUOTES": "it's \"quoted\" `back`",
    "SUBST": "$(echo pwned) ${HOME} $HOME",
    "SEMI": "a; echo injected; b && c || d | e",
    "NEWLINE": "line1\nline2",
    "EMPTY": "",
    "PERCENT": "100% \\n %s",
}


@dataclass
class Call:
    argv: list[str]
    timeout: float | None
    stdin: bytes | None


@dataclass
class FakeGateway:
    """Records argv; answers by ``responder(argv)`` (default rc 0, no output)."""

    responder: Callable[[list[str]], CommandResult | None] = lambda argv: None
    kind: str = "fake"
    host: str = "login"
    calls: list[Call] = field(default_factory=list)
    started: list[BackgroundSpec] = field(default_factory=list)
    stopped: list[ProcessRecord] = field(default_factory=list)
    client_alive: list[bool] = field(default_factory=lambda: [True])
    tails: dict[str, str] = field(default_factory=dict)

    def run(
        self,
        cmd: str | Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        timeout: float | None = None,
        stdin: bytes | None = None,
    ) -> CommandResult:
        assert not isinstance(cmd, str), "the srun transport hands its gateway an argv"
        assert env is None and cwd is None, "env and cwd belong inside the step's script"
        argv = list(cmd)
        self.calls.append(Call(argv, timeout, stdin))
        return self.responder(argv) or CommandResult(0, "", "")

    def start(self, spec: BackgroundSpec, *, critical: bool = False, tier: int = 1) -> ProcessRecord:
        self.started.append(spec)
        return ProcessRecord(
            host=self.host,
            name=spec.name,
            log=spec.log,
            transport=self.kind,
            handle={"pid": 4242, "pgid": 4242},
            critical=critical,
            tier=tier,
        )

    def alive(self, proc: ProcessRecord) -> bool:
        # Pops answers until one is left, which then repeats.
        return self.client_alive.pop(0) if len(self.client_alive) > 1 else self.client_alive[0]

    def stop(self, proc: ProcessRecord, *, grace: float = 10.0) -> bool:
        self.stopped.append(proc)
        return True

    def put(self, data: bytes, dest: str, *, mode: int | None = None) -> None:
        raise AssertionError("files reach a node as steps, not through the gateway's put")

    def read(self, path: str) -> bytes:
        raise AssertionError("files reach a node as steps, not through the gateway's read")

    def tail(self, path: str, lines: int = 50) -> str:
        return self.tails.get(path, "")

    def connect_tcp(self, address: str, port: int, timeout: float) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def srun_calls(self) -> list[Call]:
        return [c for c in self.calls if "srun" in c.argv]


def _transport(gateway: FakeGateway, **kwargs: Any) -> SrunTransport:
    return SrunTransport("n3", node="n3", job_id="77", gateway=gateway, **kwargs)


def _srun_tail(argv: list[str]) -> list[str]:
    """The argv from ``srun`` on (dropping a ``timeout ...`` wrapper)."""
    return argv[argv.index("srun") :]


def _what_srun_runs(argv: list[str]) -> list[str]:
    """The command srun would start on the node: everything from ``bash --norc -c`` on."""
    i = argv.index("bash")
    assert argv[i + 1 : i + 3] == ["--norc", "-c"] and len(argv) == i + 4
    return argv[i:]


def _through_remote_shell(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run what srun would run, quoted as a gateway hands it to a remote shell."""
    line = render(_what_srun_runs(argv))
    return subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=30)


# ----------------------------------------------------------------------------- foreground


def test_foreground_step_argv() -> None:
    gw = FakeGateway()
    result = _transport(gw).run("echo hi")
    assert result.rc == 0
    (call,) = gw.calls
    assert call.argv == [
        "srun",
        "--input=none",
        "--jobid",
        "77",
        "--overlap",
        "--nodes",
        "1",
        "--ntasks",
        "1",
        "--nodelist",
        "n3",
        "bash",
        "--norc",
        "-c",
        "echo hi",
    ]
    assert call.timeout is None and call.stdin is None


def test_the_gateway_result_is_returned_as_is() -> None:
    gw = FakeGateway(lambda argv: CommandResult(3, "out\n", "err\n", 0.5))
    result = _transport(gw).run("exit 3")
    assert (result.rc, result.stdout, result.stderr, result.timed_out) == (3, "out\n", "err\n", False)


def test_env_values_survive_the_remote_shell() -> None:
    gw = FakeGateway()
    script = 'for n in SPACES QUOTES SUBST SEMI NEWLINE EMPTY PERCENT; do printf "%s=[%s]\\n" "$n" "${!n}"; done'
    _transport(gw).run(script, env=TRICKY)
    (call,) = gw.calls
    assert shlex.split(render(call.argv)) == call.argv
    out = _through_remote_shell(call.argv)
    assert out.returncode == 0, out.stderr
    expected = "".join(f"{k}=[{v}]\n" for k, v in TRICKY.items())
    assert out.stdout == expected
    assert "pwned" not in out.stdout.replace("$(echo pwned)", "")
    assert "injected" not in out.stdout.replace("echo injected", "")


def test_argv_commands_survive_the_remote_shell() -> None:
    gw = FakeGateway()
    words = ["printf", "%s|", *TRICKY.values(), "--flag=a b", "*", "~"]
    _transport(gw).run(words)
    (call,) = gw.calls
    out = _through_remote_shell(call.argv)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "".join(f"{w}|" for w in words[2:])


def test_cwd_is_entered_inside_the_step(tmp_path: Any) -> None:
    where = tmp_path / "dir with 'quote' and $(x)"
    where.mkdir()
    gw = FakeGateway()
    _transport(gw).run("pwd", cwd=str(where))
    (call,) = gw.calls
    out = _through_remote_shell(call.argv)
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"{where}\n"
    gw.calls.clear()
    _transport(gw).run("pwd", cwd=str(tmp_path / "missing"))
    assert _through_remote_shell(gw.calls[0].argv).returncode == 1  # `cd ... || exit 1`


@pytest.mark.parametrize(("timeout", "seconds"), [(2.5, "3"), (0.2, "1"), (60, "60")])
def test_timeout_wraps_srun_in_timeout_term(timeout: float, seconds: str) -> None:
    gw = FakeGateway()
    _transport(gw).run("sleep 100", timeout=timeout)
    (call,) = gw.calls
    # srun gets SIGTERM (which cancels the step); SIGKILL would leave the step running.
    assert call.argv[:7] == ["timeout", "-s", "TERM", "-k", "10", seconds, "srun"]
    assert "--input=none" in _srun_tail(call.argv)
    assert call.timeout is not None and call.timeout > timeout  # the gateway's own backstop


def test_timeout_expiry_is_reported() -> None:
    gw = FakeGateway(lambda argv: CommandResult(124, "partial\n", "srun: forcing job termination\n"))
    result = _transport(gw).run("sleep 100", timeout=2)
    assert result.timed_out and result.rc == 124
    assert result.stdout == "partial\n"
    assert "timed out after 2s" in result.stderr


def test_rc_124_without_a_timeout_is_an_ordinary_failure() -> None:
    gw = FakeGateway(lambda argv: CommandResult(124, "", ""))
    result = _transport(gw).run("exit 124")
    assert result.rc == 124 and not result.timed_out


def test_stdin_is_forwarded_and_input_none_only_without_it() -> None:
    gw = FakeGateway()
    transport = _transport(gw)
    transport.run("cat", stdin=b"data\n")
    transport.run("cat", stdin=b"", timeout=5)
    transport.run("cat")
    with_data, empty, without = gw.calls
    assert "--input=none" not in with_data.argv and with_data.stdin == b"data\n"
    assert "--input=none" not in empty.argv and empty.stdin == b""
    assert "--input=none" in without.argv and without.stdin is None
    # --input=none belongs to srun, right after it, never inside the script
    assert without.argv[without.argv.index("srun") + 1] == "--input=none"


def test_container_flags_are_read_at_every_call() -> None:
    current: dict[str, Any] = {}
    reads: list[int] = []

    def container() -> ContainerFlags:
        reads.append(1)
        return ContainerFlags.from_vars(current)

    gw = FakeGateway()
    transport = _transport(gw, container=container, extra_args=["--mpi=none"])
    transport.run("echo before")
    current.update(image="/images/serve.sqsh", mounts=["/data:/data"])  # container-up ran
    transport.run("echo after")
    before, after = gw.calls
    assert len(reads) == 2
    assert not any(a.startswith("--container") for a in before.argv)
    tail = _srun_tail(after.argv)
    assert tail[tail.index("--container-image") + 1] == "/images/serve.sqsh"
    assert tail[tail.index("--container-mounts") + 1] == "/data:/data"
    # site flags after the generated ones, container flags after them, the command last
    assert tail.index("--nodelist") < tail.index("--mpi=none") < tail.index("--container-image")
    assert tail[-4:-1] == ["bash", "--norc", "-c"]


# ----------------------------------------------------------------------------- files


def test_put_sends_the_data_as_the_step_stdin(tmp_path: Any) -> None:
    gw = FakeGateway()
    dest = tmp_path / "a dir" / "it's.txt"
    _transport(gw).put(b"payload\n", str(dest), mode=0o640)
    (call,) = gw.calls
    assert call.stdin == b"payload\n"
    assert "--input=none" not in call.argv
    line = render(_what_srun_runs(call.argv))
    done = subprocess.run(["bash", "-c", line], input=b"payload\n", capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert dest.read_bytes() == b"payload\n"
    assert oct(dest.stat().st_mode & 0o777) == oct(0o640)


def test_read_decodes_base64_stdout() -> None:
    gw = FakeGateway(lambda argv: CommandResult(0, "aGVsbG8K\n", ""))
    assert _transport(gw).read("/x") == b"hello\n"
    gw = FakeGateway(lambda argv: CommandResult(1, "", "No such file\n"))
    with pytest.raises(TransportError, match="cannot read /x on node n3"):
        _transport(gw).read("/x")


# ----------------------------------------------------------------------------- background


def _steps_responder(lines_by_call: list[str]) -> Callable[[list[str]], CommandResult | None]:
    """Answer successive ``scontrol show step`` calls with the given outputs."""
    answers = list(lines_by_call)

    def respond(argv: list[str]) -> CommandResult | None:
        if argv[:4] == ["scontrol", "-o", "show", "step"]:
            out = answers.pop(0) if len(answers) > 1 else answers[0]
            return CommandResult(0, out, "")
        return None

    return respond


BATCH = "StepId=77.batch UserId=0 State=RUNNING Partition=debug NodeList=n1 Nodes=1 Name=batch\n"
WEB = "StepId=77.4 UserId=0 State=RUNNING Partition=debug NodeList=n3 Nodes=1 Name=web.n3\n"


def test_background_step_is_named_logged_and_found() -> None:
    gw = FakeGateway(_steps_responder([BATCH, BATCH + WEB]))
    spec = BackgroundSpec(name="web", cmd="exec server --port 1", log="/runs/r/logs/n3/web.log", env={"A": "x y"}, cwd="/w d")
    record = _transport(gw).start(spec, critical=True, tier=2)
    mkdir = gw.calls[0]
    assert "mkdir -p /runs/r/logs/n3" in mkdir.argv[-1]
    (client_spec,) = gw.started
    assert client_spec.name == "srun-web.n3"
    assert client_spec.log == "/runs/r/logs/n3/web.log.srun"
    argv = shlex.split(client_spec.cmd)
    tail = _srun_tail(argv)
    assert tail[tail.index("--job-name") + 1] == "web.n3"
    assert tail[tail.index("--output") + 1] == "/runs/r/logs/n3/web.log"
    assert tail[1] == "--input=none"
    assert argv[-1] == "export A='x y'\ncd '/w d' || exit 1\nexec server --port 1"
    assert record.transport == "srun" and record.critical and record.tier == 2
    assert record.handle["step_id"] == "4" and record.handle["step"] == "77.4"
    assert record.handle["step_name"] == "web.n3" and record.handle["node"] == "n3"
    assert ProcessRecord.from_dict(record.handle["client"]).handle["pid"] == 4242


def test_log_directory_is_made_once() -> None:
    other = WEB.replace("77.4", "77.5").replace("web.n3", "db.n3")
    gw = FakeGateway(_steps_responder([BATCH + WEB + other]))
    transport = _transport(gw)
    transport.start(BackgroundSpec(name="web", cmd="x", log="/l/web.log"))
    transport.start(BackgroundSpec(name="db", cmd="x", log="/l/db.log"))
    mkdirs = [c for c in gw.srun_calls() if "mkdir -p" in c.argv[-1]]
    assert len(mkdirs) == 1


def test_a_step_that_exits_at_once_is_reported_with_its_log() -> None:
    gw = FakeGateway(_steps_responder([BATCH]), client_alive=[False])
    gw.tails["/l/web.log.srun"] = "srun: error: Unable to create step for job 77: Invalid generic resource"
    with pytest.raises(TransportError, match="exited at once") as info:
        _transport(gw).start(BackgroundSpec(name="web", cmd="x", log="/l/web.log"))
    assert "Invalid generic resource" in str(info.value)


def _record(gw: FakeGateway) -> ProcessRecord:
    gw.responder = _steps_responder([BATCH + WEB])
    record = _transport(gw).start(BackgroundSpec(name="web", cmd="x", log="/l/web.log"))
    gw.calls.clear()
    return record


def test_stop_signals_the_step_through_the_controller() -> None:
    gw = FakeGateway()
    record = _record(gw)
    gw.client_alive = [True, False]  # alive at first, gone after the TERM
    assert _transport(gw).stop(record, grace=5) is True
    assert [c.argv for c in gw.calls] == [["scancel", "--signal=TERM", "--ctld", "77.4"]]
    assert gw.stopped == []


def test_stop_kills_a_step_that_ignores_term() -> None:
    gw = FakeGateway()
    record = _record(gw)
    gw.client_alive = [True]
    assert _transport(gw).stop(record, grace=0.2) is True
    assert [c.argv for c in gw.calls] == [
        ["scancel", "--signal=TERM", "--ctld", "77.4"],
        ["scancel", "77.4"],
    ]
    assert [p.name for p in gw.stopped] == ["srun-web.n3"]


def test_stop_of_an_ended_step_does_nothing() -> None:
    gw = FakeGateway()
    record = _record(gw)
    gw.client_alive = [False]
    assert _transport(gw).stop(record) is False
    assert gw.calls == []


def test_stop_tolerates_a_step_slurm_already_forgot() -> None:
    gw = FakeGateway()
    record = _record(gw)
    gw.client_alive = [True, False]
    gw.responder = lambda argv: CommandResult(1, "", "scancel: error: Kill job error on job id 77.4: Invalid job id specified\n")
    assert _transport(gw).stop(record, grace=1) is True


# ----------------------------------------------------------------------------- from_vars


def test_from_vars_needs_job_and_node() -> None:
    gw = FakeGateway()
    with pytest.raises(TransportError, match="no slurm_job_id or slurm_node"):
        srun_module.from_vars("n1", {"connection": "srun"}, gw, ContainerFlags)
    t = srun_module.from_vars(
        "n1",
        {"slurm_job_id": 12, "slurm_node": "n1", "srun_extra_args": "--mpi=pmix --cpu-bind=none"},
        gw,
        ContainerFlags,
    )
    t.run("true")
    tail = _srun_tail(gw.calls[0].argv)
    assert tail[tail.index("--jobid") + 1] == "12"
    assert "--mpi=pmix" in tail and "--cpu-bind=none" in tail


def test_the_fake_gateway_is_a_transport() -> None:
    assert isinstance(FakeGateway(), Transport)
