"""Large layouts: worker ports are numbered per node address, so no layout size reaches
another service's port (the node exporter's 9100 was claimed twice at 128+128 workers when
ports were numbered across the whole deployment)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from tests.matrix.checks import steps
from tests.matrix.conftest import PD_PLAYBOOK, REPO, Workspace

EXAMPLE_CLUSTER = REPO / "inventory" / "example-cluster.yaml"


def claimed_ports(plan: dict[str, Any]) -> dict[str, list[int]]:
    """Every port a started process claims, by host (one address per node on this cluster)."""
    out: dict[str, list[int]] = defaultdict(list)
    for _, step in steps(plan):
        if step.get("action") == "process":
            out[step["host"]].extend(int(p) for p in step.get("args", {}).get("ports") or [])
    return out


def render(workspace: Workspace, *extra: str) -> dict[str, Any]:
    args = ["run", str(PD_PLAYBOOK), "-i", str(EXAMPLE_CLUSTER), "--dry-run", "--format", "json"]
    result = workspace.smlplay(*args, *[a for kv in extra for a in ("-e", kv)], timeout=600)
    assert result.rc == 0, result.explain()
    return result.plan


def test_1024_nodes_claim_no_port_twice(workspace: Workspace) -> None:
    plan = render(workspace, "layout.prefill.workers=512", "layout.decode.workers=512")
    ports = claimed_ports(plan)
    workers = {s["item"]["name"]: s["item"] for _, s in steps(plan) if s.get("action") == "process" and "item" in s}
    assert len(workers) == 1024
    assert len([h for h in ports if h.startswith("slurm-node")]) >= 1024
    for host, claimed in ports.items():
        assert len(claimed) == len(set(claimed)), f"{host} claims {sorted(claimed)}"
    # one TP-8 worker per node: every worker is slot 0 on its node
    assert {w["port"] for w in workers.values() if w["role"] == "prefill"} == {30000}
    assert {w["bootstrap_port"] for w in workers.values() if w["role"] == "prefill"} == {8998}
    assert {w["port"] for w in workers.values() if w["role"] == "decode"} == {31000}
    # telemetry runs on every node, beside the workers
    telemetry = {s["host"] for _, s in steps(plan, "telemetry on every node") if s.get("action") == "process"}
    assert len(telemetry) >= 1024


def test_multi_node_decode_workers_agree_on_their_ports(workspace: Workspace) -> None:
    plan = render(workspace, "layout.prefill.workers=16", "layout.prefill.tp=4", "layout.decode.workers=8", "layout.decode.tp=16")
    for host, claimed in claimed_ports(plan).items():
        assert len(claimed) == len(set(claimed)), f"{host} claims {sorted(claimed)}"
    ranks: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for _, s in steps(plan):
        if s.get("action") == "process" and "item" in s:
            ranks[s["item"]["name"]].append(s["item"])
    decode = {n: r for n, r in ranks.items() if n.startswith("decode-")}
    assert len(decode) == 8 and all(len(r) == 2 for r in decode.values())
    for name, items in decode.items():
        assert len({(i["port"], i["dist_port"], i["slot"]) for i in items}) == 1, f"{name}: {items}"
        assert items[0]["dist_port"] == 29600
    # two TP-4 prefill workers per node: slots 0 and 1 on each node
    prefill = [r[0] for n, r in ranks.items() if n.startswith("prefill-")]
    assert len(prefill) == 16
    assert sorted({(p["port"], p["bootstrap_port"]) for p in prefill}) == [(30000, 8998), (30001, 8999)]
