"""engine.slurm.commands / errors / jobs with a scripted ``run``: no Slurm needed.

The squeue fixtures are real 22.05 output from the local test cluster and a 23.11-shaped
document; the stderr corpus (data/slurm_errors.json) holds Slurm's own wording.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from engine.errors import SchedulerError, ValidationError
from engine.slurm import (
    HOLD_SCRIPT,
    JobInfo,
    SlurmCommandError,
    SlurmErrorKind,
    command_error,
    job_info,
    local_run,
    parse_key_values,
    parse_squeue_json,
    salloc,
    sbatch,
    scancel,
    show_hostnames,
    show_job,
    squeue,
    steps,
    wait_until_running,
)
from engine.transport.base import CommandResult

DATA = Path(__file__).parent / "data"
SQUEUE_22 = (DATA / "squeue-22.05.json").read_text()
SQUEUE_23 = (DATA / "squeue-23.11.json").read_text()
ERROR_CASES = json.loads((DATA / "slurm_errors.json").read_text())

SCONTROL_JOB = (
    "JobId=6 JobName=hold UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901758 "
    "Nice=0 Account=(null) QOS=(null) JobState=RUNNING Reason=None Dependency=(null) "
    "Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0 RunTime=00:03:16 "
    "TimeLimit=UNLIMITED TimeMin=N/A SubmitTime=2026-11-24T00:17:39 "
    "Partition=debug AllocNode:Sid=localhost:2164 ReqNodeList=(null) ExcNodeList=(null) "
    "NodeList=n[1-2] BatchHost=n1 NumNodes=2 NumCPUs=2 NumTasks=2 CPUs/Task=1 "
    "ReqB:S:C:T=0:0:*:* TRES=cpu=2,node=2,billing=2 Socks/Node=* "
    "NtasksPerN:B:S:C=0:0:*:* CoreSpec=* Command=(null) WorkDir=/tmp "
    "StdErr=/tmp/slurm-6.out StdIn=/dev/null StdOut=/tmp/slurm-6.out Power= "
    "TresPerNode=gres:gpu:1 \n"
)
SCONTROL_STEPS = (
    "StepId=6.batch UserId=0 StartTime=2026-11-24T00:17:40 TimeLimit=UNLIMITED State=RUNNING "
    "Partition=debug NodeList=n1 Nodes=1 CPUs=0 Tasks=1 Name=batch Network=(null) TRES=(null) "
    "ResvPorts=(null) CPUFreqReq=Default SrunHost:Pid=(null):0\n"
    "StepId=6.4 UserId=0 StartTime=2026-11-24T00:18:29 TimeLimit=UNLIMITED State=RUNNING "
    "Partition=debug NodeList=n2 Nodes=1 CPUs=1 Tasks=1 Name=router Network=(null) "
    "TRES=cpu=1,mem=0,node=1 ResvPorts=(null) CPUFreqReq=Default Dist=Cyclic "
    "SrunHost:Pid=vm:8516 TresPerNode=gres:gpu:1\n"
)


class FakeRun:
    """A scripted ``run``: answers by the command name, records every argv."""

    def __init__(self, **answers: CommandResult | list[CommandResult]) -> None:
        self.answers = {k: (v if isinstance(v, list) else [v]) for k, v in answers.items()}
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> CommandResult:
        self.calls.append(list(argv))
        queue = self.answers[argv[0]]
        return queue.pop(0) if len(queue) > 1 else queue[0]


def ok(stdout: str = "") -> CommandResult:
    return CommandResult(rc=0, stdout=stdout, stderr="")


def fail(stderr: str, rc: int = 1) -> CommandResult:
    return CommandResult(rc=rc, stdout="", stderr=stderr)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("case", ERROR_CASES, ids=[c["name"] for c in ERROR_CASES])
def test_stderr_is_mapped_to_an_actionable_error(case: dict[str, Any]) -> None:
    result = CommandResult(rc=case["rc"], stdout="", stderr=case["stderr"])
    err = command_error(case["argv"], result, doing="do it")
    assert isinstance(err, SchedulerError)
    assert err.kind == SlurmErrorKind(case["kind"])
    text = str(err)
    assert " ".join(case["argv"][:2]) in text  # the command line
    assert case["stderr"].strip().splitlines()[-1].strip() in text  # Slurm's own words
    assert f"exit status: {case['rc']}" in text
    for needle in case["mentions"]:
        assert needle in text


def test_timed_out_command_is_its_own_kind() -> None:
    result = CommandResult(rc=124, stdout="", stderr="", timed_out=True)
    err = command_error(["squeue", "--json"], result)
    assert err.kind is SlurmErrorKind.TIMEOUT
    assert "(no stderr)" in str(err)


def test_local_run_reports_a_missing_command_like_a_shell() -> None:
    result = local_run(["smlplay-no-such-command-xyz"])
    assert result.rc == 127
    with pytest.raises(SlurmCommandError) as info:
        sbatch(lambda argv: result, wrap="true")
    assert info.value.kind is SlurmErrorKind.NOT_INSTALLED


def test_local_run_times_out() -> None:
    result = local_run(["sleep", "5"], timeout=0.2)
    assert result.timed_out and result.rc == 124


def test_local_run_returns_output() -> None:
    result = local_run(["bash", "-c", "echo out; echo err >&2; exit 3"])
    assert (result.rc, result.stdout, result.stderr) == (3, "out\n", "err\n")


# --------------------------------------------------------------------------- salloc


def test_salloc_reads_the_job_id_from_stderr() -> None:
    granted = CommandResult(0, "", "salloc: Pending job allocation 41\nsalloc: Granted job allocation 41\n")
    run = FakeRun(salloc=granted)
    assert salloc(run, ["--nodes=2"]) == "41"
    assert run.calls == [["salloc", "--no-shell", "--nodes=2"]]


def test_salloc_that_gives_up_while_pending_cancels_what_it_queued() -> None:
    gave_up = CommandResult(1, "", "salloc: Pending job allocation 42\nsalloc: error: Unable to allocate resources: Job/step already completing or completed\n")
    run = FakeRun(salloc=gave_up, scancel=ok())
    with pytest.raises(SlurmCommandError):
        salloc(run, ["--immediate=5"])
    assert ["scancel", "42"] in run.calls


# --------------------------------------------------------------------------- sbatch


def test_sbatch_returns_the_job_id() -> None:
    run = FakeRun(sbatch=ok("123\n"))
    assert sbatch(run, ["--nodes=2"], wrap=HOLD_SCRIPT) == "123"
    assert run.calls == [["sbatch", "--parsable", "--nodes=2", "--wrap", HOLD_SCRIPT]]


def test_sbatch_script_path_goes_last_and_cluster_suffix_is_dropped() -> None:
    run = FakeRun(sbatch=ok("sbatch: warning: ignored\n77;cluster2\n"))
    assert sbatch(run, ["-J", "x"], script="/home/a/job.sh") == "77"
    assert run.calls[0][-1] == "/home/a/job.sh"


def test_sbatch_failure_is_a_scheduler_error_with_the_command() -> None:
    run = FakeRun(sbatch=fail(ERROR_CASES[0]["stderr"]))
    with pytest.raises(SlurmCommandError) as info:
        sbatch(run, ["--partition=nope"], wrap="true")
    assert info.value.kind is SlurmErrorKind.INVALID_PARTITION
    assert "could not submit the job" in str(info.value)
    assert "sbatch --parsable --partition=nope --wrap true" in str(info.value)


def test_sbatch_without_a_job_id_is_an_error() -> None:
    with pytest.raises(SchedulerError, match="printed no job id"):
        sbatch(FakeRun(sbatch=ok("")), wrap="true")


@pytest.mark.parametrize("kwargs", [{}, {"wrap": "true", "script": "x.sh"}])
def test_sbatch_needs_exactly_one_of_wrap_and_script(kwargs: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        sbatch(FakeRun(sbatch=ok("1")), **kwargs)


# --------------------------------------------------------------------------- squeue


def test_parse_squeue_22_05() -> None:
    jobs = {j.job_id: j for j in parse_squeue_json(SQUEUE_22, now=1795479812.0)}
    running = jobs["14"]
    assert running.state == "RUNNING" and running.is_running and running.is_active
    assert running.nodes == ("n1", "n2", "n3") and running.node_count == 3
    assert running.time_used == pytest.approx(3.0)  # now - start_time
    assert running.time_limit_min == 10
    pending = jobs["15"]
    assert pending.is_pending and pending.reason == "Resources" and pending.nodes == ()
    assert pending.time_used == 0 and not pending.is_hopeless
    done = jobs["6"]
    assert done.state == "COMPLETED" and done.is_finished and not done.is_active
    assert done.time_used == 300  # end - start, not now - start
    assert done.time_limit_min is None  # UNLIMITED
    assert jobs["7"].state == "CANCELLED" and jobs["7"].reason == "PartitionConfig"


def test_parse_squeue_23_11_list_states_and_number_objects() -> None:
    jobs = {j.job_id: j for j in parse_squeue_json(SQUEUE_23, now=1700000160.0)}
    serve = jobs["4242"]
    assert serve.state == "RUNNING" and serve.is_running
    assert serve.nodes == ("nid001", "nid002", "nid003", "nid004", "nid007")
    assert serve.node_count == 5 and serve.time_used == 60 and serve.time_limit_min == 60
    big = jobs["4243"]
    assert big.is_pending and big.reason == "QOSMaxNodePerUserLimit"
    assert not big.is_hopeless  # clears when the user's other jobs end
    assert big.time_limit_min is None  # infinite
    assert jobs["4244"].is_finished and jobs["4244"].time_used == 120
    booting = jobs["4245"]
    assert booting.state_flags == ("CONFIGURING",) and not booting.is_running
    assert jobs["4246"].is_hopeless
    assert serve.to_dict()["nodes"][0] == "nid001"


def test_squeue_filters_jobs_because_22_05_ignores_jobs_option() -> None:
    run = FakeRun(squeue=ok(SQUEUE_22))
    jobs = squeue(run, ["14", "999"])
    assert [j.job_id for j in jobs] == ["14"]
    assert run.calls == [["squeue", "--json", "--states=all", "--jobs=14,999"]]


def test_job_info_of_an_unknown_job_is_none() -> None:
    assert job_info(FakeRun(squeue=ok(SQUEUE_22)), "999") is None
    gone = FakeRun(squeue=fail("slurm_load_jobs error: Invalid job id specified\n"))
    assert job_info(gone, "999") is None


def test_squeue_failure_raises() -> None:
    run = FakeRun(squeue=fail("slurm_load_jobs error: Unable to contact slurm controller\n"))
    with pytest.raises(SlurmCommandError) as info:
        squeue(run)
    assert info.value.kind is SlurmErrorKind.CONTROLLER_UNREACHABLE


@pytest.mark.parametrize(
    ("stdout", "message"),
    [("not json", "not JSON"), ('{"errors": ["boom"], "jobs": []}', "boom"), ("[1]", "unexpected")],
)
def test_squeue_bad_output(stdout: str, message: str) -> None:
    with pytest.raises(SchedulerError, match=message):
        squeue(FakeRun(squeue=ok(stdout)))


def _squeue_doc(*jobs: dict[str, Any]) -> CommandResult:
    return ok(json.dumps({"errors": [], "jobs": list(jobs)}))


def _job(state: str, reason: str = "None", nodes: str = "") -> dict[str, Any]:
    return {"job_id": 5, "job_state": state, "state_reason": reason, "nodes": nodes}


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _wait(run: FakeRun, timeout: float = 10.0) -> JobInfo:
    clock = FakeClock()
    return wait_until_running(run, "5", timeout=timeout, poll=1.0, sleep=clock.sleep, clock=clock)


def test_wait_until_running_polls_until_running() -> None:
    run = FakeRun(
        squeue=[
            _squeue_doc(_job("PENDING", "Priority")),
            _squeue_doc(_job("PENDING", "Resources")),
            _squeue_doc(_job("RUNNING", nodes="n[1-2]")),
        ]
    )
    info = _wait(run)
    assert info.nodes == ("n1", "n2") and len(run.calls) == 3


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (_squeue_doc(_job("PENDING", "PartitionConfig")), "can never start.*PartitionConfig"),
        (_squeue_doc(_job("FAILED", "NonZeroExitCode")), "ended \\(FAILED"),
        (_squeue_doc(), "not known to Slurm"),
        (_squeue_doc(_job("PENDING", "Resources")), "did not start within 10s.*Resources"),
    ],
)
def test_wait_until_running_fails_fast_or_times_out(doc: CommandResult, message: str) -> None:
    with pytest.raises(SchedulerError, match=message):
        _wait(FakeRun(squeue=doc))


# --------------------------------------------------------------------------- scontrol


def test_parse_key_values_keeps_values_with_equals_and_odd_keys() -> None:
    kv = parse_key_values(SCONTROL_JOB)
    assert kv["JobId"] == "6" and kv["JobState"] == "RUNNING"
    assert kv["NodeList"] == "n[1-2]"
    assert kv["TRES"] == "cpu=2,node=2,billing=2"
    assert kv["AllocNode:Sid"] == "localhost:2164"
    assert kv["ReqB:S:C:T"] == "0:0:*:*"
    assert kv["Socks/Node"] == "*"
    assert kv["Power"] == ""
    assert kv["TresPerNode"] == "gres:gpu:1"


def test_parse_key_values_multi_line_form() -> None:
    text = "JobId=7 JobName=a b\n   JobState=PENDING Reason=Resources Dependency=(null)\n"
    kv = parse_key_values(text)
    assert kv == {
        "JobId": "7",
        "JobName": "a b",
        "JobState": "PENDING",
        "Reason": "Resources",
        "Dependency": "(null)",
    }


def test_show_job() -> None:
    run = FakeRun(scontrol=ok(SCONTROL_JOB))
    assert show_job(run, "6")["StdOut"] == "/tmp/slurm-6.out"
    assert run.calls == [["scontrol", "-o", "show", "job", "6"]]


def test_show_job_not_found() -> None:
    run = FakeRun(scontrol=fail("slurm_load_jobs error: Invalid job id specified\n"))
    with pytest.raises(SlurmCommandError) as info:
        show_job(run, "99999")
    assert info.value.kind is SlurmErrorKind.JOB_NOT_FOUND
    assert "scontrol -o show job 99999" in str(info.value)


def test_steps_finds_named_steps() -> None:
    found = steps(FakeRun(scontrol=ok(SCONTROL_STEPS)), "6")
    assert [(s.id, s.name, s.nodes) for s in found] == [
        ("6.batch", "batch", ("n1",)),
        ("6.4", "router", ("n2",)),
    ]


def test_steps_of_an_ended_job_is_empty() -> None:
    run = FakeRun(scontrol=fail("Job step 5. not found\n"))
    assert steps(run, "5") == ()


def test_show_hostnames() -> None:
    run = FakeRun(scontrol=ok("n1\nn2\n"))
    assert show_hostnames(run, "n[1-2]") == ["n1", "n2"]
    assert run.calls == [["scontrol", "show", "hostnames", "n[1-2]"]]
    assert show_hostnames(run, " ") == []  # scontrol would read $SLURM_JOB_NODELIST


# --------------------------------------------------------------------------- scancel


@pytest.mark.parametrize(
    ("kwargs", "argv"),
    [
        ({}, ["scancel", "12"]),
        ({"step": 3}, ["scancel", "12.3"]),
        ({"signal": "TERM"}, ["scancel", "--signal=TERM", "12"]),
        ({"step": "3", "signal": "term"}, ["scancel", "--signal=TERM", "--ctld", "12.3"]),
        ({"step": 0, "signal": 15}, ["scancel", "--signal=15", "--ctld", "12.0"]),
    ],
)
def test_scancel_argv(kwargs: dict[str, Any], argv: list[str]) -> None:
    run = FakeRun(scancel=ok())
    scancel(run, "12", **kwargs)
    assert run.calls == [argv]


def test_scancel_missing_job() -> None:
    err = "scancel: error: Kill job error on job step id 12: Invalid job id specified\n"
    run = FakeRun(scancel=fail(err, rc=225))
    with pytest.raises(SlurmCommandError) as info:
        scancel(run, "12", step=3, signal="TERM")
    assert info.value.kind is SlurmErrorKind.JOB_NOT_FOUND
    scancel(run, "12", step=3, signal="TERM", missing_ok=True)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda run: scancel(run, "12; rm -rf /"), "invalid Slurm job id"),
        (lambda run: scancel(run, "12", step="3;x"), "invalid step id"),
        (lambda run: scancel(run, "12", signal="TERM;x"), "invalid signal"),
        (lambda run: squeue(run, ["abc"]), "invalid Slurm job id"),
    ],
)
def test_ids_are_validated_before_running_anything(
    call: Callable[[FakeRun], object], message: str
) -> None:
    run = FakeRun(scancel=ok(), squeue=ok())
    with pytest.raises(ValidationError, match=message):
        call(run)
    assert run.calls == []
