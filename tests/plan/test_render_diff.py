"""`smlplay render A --diff B` / `-E` / `--diff-against RUN`: per-node diffs, exit 0/1 like diff."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from engine.cli import main
from engine.runs import RunRecord

REPO = Path(__file__).resolve().parents[2]
CLUSTER = ["playbooks/llama70b.yaml", "-i", "inventory/example-cluster.yaml"]


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)


def _smlplay(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_same_plan_is_no_difference() -> None:
    out = _smlplay("render", *CLUSTER, "--diff", "playbooks/llama70b.yaml")
    assert out.exit_code == 0, out.output
    assert out.output.startswith("no differences between playbooks/llama70b.yaml")


def test_decode_tp_and_workers_change_only_the_decode_node_and_router() -> None:
    out = _smlplay("render", *CLUSTER, "-E", "layout.decode.tp=4", "-E", "layout.decode.workers=2")
    assert out.exit_code == 1, out.output
    text = out.output
    assert "+++ playbooks/llama70b.yaml -i inventory/example-cluster.yaml -e layout.decode.tp=4 -e layout.decode.workers=2" in text
    node2 = text[text.index("=== node slurm-node2"):]
    # flags and the new worker's port, on the node that runs it
    assert "-      export CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7" in node2
    assert "+      export CUDA_VISIBLE_DEVICES=4,5,6,7" in node2
    assert "--port 31001 --tp-size 4" in node2
    # its teardown: a new srun step to stop
    assert "+TEARDOWN tier 1: stop decode-1-r0@slurm-node2" in node2
    assert "+    $ on login: scancel --signal=TERM --ctld <job id>.<step of decode-1-r0>" in node2
    # the router on node 1 learns the second decode worker; the prefill worker is unchanged
    node1 = text[text.index("=== node slurm-node1"):text.index("=== node slurm-node2")]
    assert '+    $ POST http://<address of node 1>:8000/workers {"url": "http://<address of node 2>:31001"' in node1
    assert "prefill-0" not in "\n".join(line for line in node1.splitlines() if line[:1] in "+-")
    assert text.rstrip().endswith("2 node(s) differ: slurm-node1, slurm-node2")
    assert "/work/" not in text and ".yml:" not in text  # no paths of this machine, no positions


def test_two_playbook_files(tmp_path: Path) -> None:
    base = "- hosts: localhost\n  tasks:\n    - name: serve\n      process:\n        name: web\n        cmd: exec python3 -m http.server {port}\n        ports: [{port}]\n{extra}"
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    a.write_text(base.format(port=18080, extra=""))
    b.write_text(base.format(port=18081, extra="        grace: 30s\n"))
    out = _smlplay("render", str(a), "--diff", str(b), "--format", "json")
    assert out.exit_code == 1, out.output
    data = json.loads(out.output)
    assert data["same"] is False
    (node,) = data["nodes"]
    assert node["node"] == "localhost" and node["status"] == "changed"
    assert "-    $ start 'web' (critical, tier 1): exec python3 -m http.server 18080" in node["diff"]
    assert "+    $ start 'web' (critical, tier 1): exec python3 -m http.server 18081" in node["diff"]
    assert "+    $ wait up to 30s (grace) for the group to exit" in node["diff"]
    md = _smlplay("render", str(a), "--diff", str(b), "--format", "markdown")
    assert md.exit_code == 1 and "## localhost (changed: +2 -2)" in md.output and "```diff" in md.output


def test_diff_against_a_recorded_run(tmp_path: Path) -> None:
    from engine import plan as plan_format
    from engine.commands.render import rendered

    record = RunRecord.create(REPO / "playbooks/llama70b.yaml", base=tmp_path / "runs")
    plan = rendered("playbooks/llama70b.yaml", inventory="inventory/example-cluster.yaml")
    record.write_plan({"playbook": "playbooks/llama70b.yaml", **plan_format.RenderedPlan.to_dict(plan)})
    same = _smlplay("render", *CLUSTER, "--diff-against", str(record.path))
    assert same.exit_code == 0, same.output
    changed = _smlplay("render", *CLUSTER, "-e", "layout.prefill.tp=4", "--diff-against", str(record.path))
    assert changed.exit_code == 1, changed.output
    assert changed.output.startswith(f"--- run {record.id}\n+++ playbooks/llama70b.yaml -i inventory/example-cluster.yaml -e layout.prefill.tp=4")
    assert "=== node slurm-node1" in changed.output and "=== node slurm-node2" not in changed.output


def test_bad_diff_options_are_usage_errors(tmp_path: Path) -> None:
    out = CliRunner().invoke(main, ["render", *CLUSTER, "--diff", "playbooks/llama70b.yaml", "--diff-against", "last"])
    assert out.exit_code == 2 and "alternatives" in out.output
    out = CliRunner().invoke(main, ["render", *CLUSTER, "--diff-against", str(tmp_path / "nope")])
    assert out.exit_code == 2
    out = CliRunner().invoke(main, ["render", *CLUSTER, "--diff-against", "last", "-E", "layout.decode.tp=4"])
    assert out.exit_code == 2 and "recorded run" in out.output
