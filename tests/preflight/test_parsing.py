"""The parts of preflight that read command output: sinfo lines, ``ss -Hltn``, launch scripts."""

from __future__ import annotations

from engine.preflight.inputs import Launch
from engine.preflight.nodes import help_argv, help_flags, listening
from engine.preflight.slurm import NodeGroup
from engine.slurm.srun import ContainerFlags


def test_sinfo_lines() -> None:
    g = NodeGroup.parse("gpu*|up|16|gpu:h100:8(S:0-1),gpu:mig:2|nid[001-016]|mix")
    assert g == NodeGroup("gpu", True, "up", 16, 10, "nid[001-016]", "mix") and g.usable
    down = NodeGroup.parse("cpu|down|4|(null)|c[1-4]|drain*")
    assert down == NodeGroup("cpu", False, "down", 4, 0, "c[1-4]", "drain") and not down.usable
    assert NodeGroup.parse("garbage") is None


def test_listening_sockets() -> None:
    out = "LISTEN 0      128        127.0.0.1:30000      0.0.0.0:*\nLISTEN 0 4096 [::]:8998 [::]:*\nLISTEN 0 5 *:9100 *:*\n"
    assert listening(out) == {("127.0.0.1", 30000), ("::", 8998), ("*", 9100)}


def test_launch_script_command_and_flags() -> None:
    body = """#!/usr/bin/env bash
# prefill-0 rank 0
set -euo pipefail
export CUDA_VISIBLE_DEVICES=0,1
exec /venv/bin/python3 -m sglang.launch_server --model-path /models/llama --host '<address of node 1>' --port 30000 --tp-size=8 --enable-metrics
"""
    launch = Launch.parse("n1", "prefill-0-r0.sh", body, ContainerFlags())
    assert launch is not None
    assert launch.launcher == ("/venv/bin/python3", "-m", "sglang.launch_server")
    assert launch.flags == ("--model-path", "--host", "--port", "--tp-size", "--enable-metrics")
    assert launch.model_path == "/models/llama"
    vllm = Launch.parse("n1", "w.sh", "exec vllm serve /models/x --tensor-parallel-size 8\n", ContainerFlags())
    assert vllm is not None and vllm.model_path == "/models/x" and vllm.launcher == ("vllm", "serve", "/models/x")


def test_help_flags() -> None:
    text = "usage: x [-h] [--tp-size TP_SIZE]\n  --model-path MODEL_PATH, --model MODEL_PATH\n  --enable-metrics  (see also a--b)"
    assert help_flags(text) == {"--tp-size", "--model-path", "--model", "--enable-metrics"}


def test_help_runs_where_the_container_is() -> None:
    def launch(container: ContainerFlags) -> Launch:
        found = Launch.parse("n1", "w.sh", "exec python3 -m sglang.launch_server --port 1\n", container)
        assert found is not None
        return found

    assert help_argv(launch(ContainerFlags()), job_id=None, partition="gpu", account=None) == ["python3", "-m", "sglang.launch_server", "--help"]
    apptainer = help_argv(launch(ContainerFlags(runtime="apptainer", image="/img/sglang.sif")), job_id=None, partition=None, account=None)
    assert apptainer[:2] == ["apptainer", "exec"] and apptainer[-5:] == ["/img/sglang.sif", "python3", "-m", "sglang.launch_server", "--help"]
    pyxis = ContainerFlags(runtime="pyxis", image="/img/sglang.sqsh")
    step = help_argv(launch(pyxis), job_id=None, partition="gpu", account="proj")
    assert step[:1] == ["srun"] and step[step.index("--partition") : step.index("--partition") + 2] == ["--partition", "gpu"]
    assert "--container-image" in step and step[-4:] == ["python3", "-m", "sglang.launch_server", "--help"]
    adopted = help_argv(launch(pyxis), job_id="42", partition="gpu", account=None)
    assert adopted[:5] == ["srun", "--jobid", "42", "--overlap", "--nodes"] and "--partition" not in adopted


def test_request_against_recorded_sinfo_output() -> None:
    """The decisions on sinfo output as a busy cluster prints it (the cluster tests cover
    the real command): drained nodes warn, a GPU count above every node's fails."""
    from engine.preflight.slurm import check_request
    from engine.slurm.request import AllocationRequest
    from engine.transport.base import CommandResult

    printed = "gpu*|up|6|gpu:h100:8|nid[001-006]|mix\ngpu*|up|2|gpu:h100:8|nid[007-008]|drain\ncpu|up|4|(null)|c[1-4]|idle\n"

    def run(argv: object) -> CommandResult:
        return CommandResult(rc=0, stdout=printed, stderr="", elapsed=0.01)

    checks = {c.name: c for c in check_request(run, AllocationRequest(nodes=7, gpus_per_node=8), host="login")}
    assert checks["partition"].status == "ok" and "(the default)" in checks["partition"].message
    assert checks["nodes"].status == "warn" and "only 6 usable (2 drain)" in checks["nodes"].message
    assert checks["gpus"].status == "ok"
    checks = {c.name: c for c in check_request(run, AllocationRequest(nodes=2, gpus_per_node=16, partition="gpu"), host="login")}
    assert checks["gpus"].status == "fail" and "at most 8 per node" in checks["gpus"].message
