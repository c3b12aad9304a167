"""The rendering matrix: dry-runs of the llama70b playbooks, checked for what they would run.

Each configuration (see ``configs.py``) is rendered once per session with the real CLI; each
check below is a separate test per configuration, so a failure names both the check and the
configuration (``test_router[pd-sglang-tp16x2n-w2-edf-tel-otela-injob-tuned]``):

* ``renders``: exit 0 and a complete plan (every play, every worker rank, the router, the
  sidecars that are on, one measured benchmark run per concurrency);
* ``shell``: every shell script the plan would run passes ``bash -n`` and ``shellcheck -s
  bash``, and dry-run placeholders (``<address of node 1>``) are quoted wherever they stand;
* ``worker_flags``: every SGLang flag exists in the ServerArgs of SGLang 0.5.9 and of the
  newest release (``sglang_flags/<version>.json``) with the right number of values, once; tp, ports and the multi-node flags agree across ranks; vLLM runs
  ``vllm serve`` with Ray for multi-node workers;
* ``router``: the router's own parser (smg 1.13 or sglang-router 0.3.2) accepts the command
  line, it never binds 0.0.0.0, and its workers (and bootstrap ports) are exactly the
  launched ones: on its command line (sglang-router) or registered through smg's worker API;
* ``containers``: each srun step says the container runtime it runs in; the image is checked
  or imported once;
* ``sidecars``: OpenTela wraps the router only when on; telemetry sidecars only when on.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import math
import re
import shlex
import sys
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from tests.matrix.checks import (
    bash_syntax_errors,
    command_after,
    deferred_templates,
    line_with,
    parse_flags,
    shell_scripts,
    shellcheck_errors,
    steps,
    template_text,
    unquoted_placeholders,
)
from tests.matrix.configs import (
    BOOTSTRAP_ADDR,
    CONTAINER_VARS,
    DIMENSIONS,
    GPUS_PER_NODE,
    JOB_ID,
    MIN_CONFIGS,
    NEGATIVE_CONFIGS,
    Config,
    matrix_configs,
    role_bugs,
    uncovered_pairs,
)
from tests.matrix.conftest import PD_PLAYBOOK, REPO, Rendered, Workspace

MATRIX = matrix_configs()
LOCAL_INVENTORY = REPO / "inventory" / "local.yaml"


def params(check: str, configs: list[Config] = MATRIX) -> list[Any]:
    out = []
    for cfg in configs:
        bugs = role_bugs(cfg, check)
        marks = [pytest.mark.xfail(strict=True, reason="; ".join(f"{b.key}: {b.reason}" for b in bugs))] if bugs else []
        out.append(pytest.param(cfg, id=cfg.id, marks=marks))
    return out


def engine_scopes(*scopes: str) -> Callable[[Any], Any]:
    """Which engine-bug probes (conftest.ENGINE_PROBES) this test depends on."""

    def mark(fn: Any) -> Any:
        fn.engine_scopes = scopes
        return fn

    return mark


RenderFn = Callable[[Config], Rendered]


# ----------------------------------------------------------------------------------------
# what a configuration should contain
# ----------------------------------------------------------------------------------------
def groups(cfg: Config) -> dict[str, dict[str, int]]:
    """Worker group -> {workers, tp, span}, as the layout asks."""
    return {
        name: {"workers": spec["workers"], "tp": spec["tp"], "span": spec.get("nodes_per_worker", math.ceil(spec["tp"] / GPUS_PER_NODE))}
        for name, spec in cfg.layout.items()
    }


def nodes_needed(cfg: Config) -> int:
    total = 0
    for g in groups(cfg).values():
        per_node = max(1, GPUS_PER_NODE // g["tp"]) if g["span"] == 1 else 1
        total += g["workers"] * g["span"] if g["span"] > 1 else math.ceil(g["workers"] / per_node)
    return total


def play_names(playbook: Any) -> list[str]:
    return [p["name"] for p in yaml.safe_load(playbook.read_text())]


@pytest.fixture
def agg_playbook(workspace: Workspace) -> Any:
    return workspace.agg_playbook


def worker_scripts(plan: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    """(placement item, rendered launch script) of every worker rank."""
    out = []
    for _, step in steps(plan):
        if step["action"] == "template" and str(step["args"].get("src", "")).startswith("launch-") and "item" in step:
            out.append((step["item"], template_text(step)[1]))
    return out


#: the launch command of each router implementation (router_impl)
ROUTER_MODULES = {"smg": "-m smg launch", "sglang-router": "-m sglang_router.launch_router"}


def registration_steps(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for _, s in steps(plan) if s["action"] == "http" and s["args"].get("method") == "POST" and str(s["args"].get("url", "")).endswith("/workers")]


def registrations(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """The worker specs the plan POSTs to the gateway's worker API."""
    return [dict(s["args"]["body"]) for s in registration_steps(plan)]


def registered_at(plan: dict[str, Any]) -> list[str]:
    return [str(s["args"]["url"]) for s in registration_steps(plan)]


def router_script(plan: dict[str, Any]) -> str:
    found = [template_text(s)[1] for _, s in steps(plan) if s["action"] == "template" and s["args"].get("src") == "router.sh.j2"]
    assert len(found) == 1, f"{len(found)} router scripts"
    return found[0]


def processes(plan: dict[str, Any], play: str | None = None) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for _, step in steps(plan, play):
        if step["action"] == "process":
            found[str(step["args"]["name"])].append(step)
    return found


def value(flags: dict[str, list[str]], name: str) -> str | None:
    values = flags.get(name)
    return values[0] if values else None


# ----------------------------------------------------------------------------------------
# the matrix itself
# ----------------------------------------------------------------------------------------
def test_matrix_covers_every_pair_of_values() -> None:
    ids = [c.id for c in MATRIX]
    assert len(MATRIX) >= MIN_CONFIGS >= 50
    assert len(set(ids)) == len(ids)
    assert uncovered_pairs(MATRIX) == []
    for name, values in DIMENSIONS.items():
        assert {getattr(c, name) for c in MATRIX} == set(values), name


# ----------------------------------------------------------------------------------------
# 1. exit 0 and a complete plan
# ----------------------------------------------------------------------------------------
@engine_scopes("matrix", "plans")
@pytest.mark.parametrize("cfg", params("renders"))
def test_renders(cfg: Config, render: RenderFn, agg_playbook: Any) -> None:
    result = render(cfg)
    assert result.rc == 0, result.explain()
    plan = result.plan
    playbook = PD_PLAYBOOK if cfg.mode == "pd" else agg_playbook
    assert [p["name"] for p in plan["plays"]] == play_names(playbook)

    allocate = [s for _, s in steps(plan) if s["action"] == "slurm_allocate"]
    assert len(allocate) == 1
    if cfg.allocation == "new":
        assert allocate[0]["detail"].startswith("sbatch "), allocate[0]["detail"]
        assert f"--nodes={nodes_needed(cfg)} " in allocate[0]["detail"]
        assert f"--gpus-per-node={GPUS_PER_NODE}" in allocate[0]["detail"]
    else:
        assert f"use running Slurm job {JOB_ID}" in allocate[0]["detail"]
    shown = [s["detail"] for _, s in steps(plan) if s["action"] == "debug" and "node(s)" in s["detail"]]
    assert shown and shown[0].startswith(f"{nodes_needed(cfg)} node(s)"), shown

    # only vmagent's script waits for the run (its labels need the job id of a new job)
    allowed = {("vmagent.sh.j2", "<job id>")} if cfg.allocation == "new" else set()
    assert set(deferred_templates(plan)) <= allowed, deferred_templates(plan)

    started = processes(plan)
    for group, g in groups(cfg).items():
        for index in range(g["workers"]):
            for rank in range(g["span"]):
                assert len(started.get(f"{group}-{index}-r{rank}", [])) == 1, f"{group}-{index} rank {rank} is not started"
    assert len(started["router"]) == 1
    nodes = next(p["hosts"] for p in plan["plays"] if p["name"] == "telemetry on every node")
    assert len(nodes) == nodes_needed(cfg)
    sidecars = processes(plan, "telemetry on every node")
    if cfg.telemetry:
        assert sorted(s["host"] for s in sidecars["vmagent"]) == sorted(nodes)
        assert len(sidecars["victoria-metrics"]) == 1
    else:
        assert not sidecars

    measured = [
        s["detail"] for _, s in steps(plan, "benchmark")
        if s["action"] == "command" and "sglang.bench_serving" in s["detail"] and "/bench_c" in s["detail"]
    ]
    assert [int(re.search(r"--max-concurrency (\d+)", d).group(1)) for d in measured] == cfg.concurrencies  # type: ignore[union-attr]


# ----------------------------------------------------------------------------------------
# 2. shell
# ----------------------------------------------------------------------------------------
@engine_scopes("matrix", "plans")
@pytest.mark.parametrize("cfg", params("shell"))
def test_shell_scripts(cfg: Config, render: RenderFn) -> None:
    scripts = shell_scripts(render(cfg).plan)
    assert len(scripts) >= 5
    errors = bash_syntax_errors(scripts) + shellcheck_errors(scripts)
    assert not errors, "\n".join(errors)


@engine_scopes("matrix", "plans")
@pytest.mark.parametrize("cfg", params("placeholders"))
def test_placeholders_are_quoted(cfg: Config, render: RenderFn) -> None:
    """A dry-run value such as ``<address of node 1>`` stands for one word of the real run;
    bare, it is a redirection (or splits at its spaces), so the plan shows a command that
    is not the one that runs."""
    errors = [f"{s.label}: {e}" for s in shell_scripts(render(cfg).plan) for e in unquoted_placeholders(s.text)]
    assert not errors, "\n".join(errors)


# ----------------------------------------------------------------------------------------
# 3. worker command lines
# ----------------------------------------------------------------------------------------
@engine_scopes("matrix", "plans")
@pytest.mark.parametrize("cfg", params("worker_flags"))
def test_worker_flags(cfg: Config, render: RenderFn, sglang_flags: Any) -> None:
    plan = render(cfg).plan
    scripts = worker_scripts(plan)
    layout = groups(cfg)
    assert len(scripts) == sum(g["workers"] * g["span"] for g in layout.values())
    errors: list[str] = []
    leaders: dict[str, dict[str, str]] = {}
    ranks: dict[str, list[tuple[dict[str, Any], dict[str, list[str]], str]]] = defaultdict(list)
    for item, text in scripts:
        where = f"{item['name']} rank {item['rank']}"
        g = layout[item["role"]]
        assert item["tp"] == g["tp"] and item["nnodes"] == g["span"], where
        devices = re.search(r"^export CUDA_VISIBLE_DEVICES=(\S+)$", text, re.M)
        assert devices and len(devices.group(1).strip("'").split(",")) == g["tp"] // g["span"], f"{where}: {devices}"
        if cfg.framework == "vllm":
            ranks[item["name"]].append((item, {}, text))
            continue
        module = "-m engine.sim" if cfg.framework == "sim" else "-m sglang.launch_server"
        tokens = command_after(text, module)
        assert tokens is not None, f"{where}: no `{module}` line\n{text}"
        exec_line = line_with(text, re.escape(module)) or ""
        if cfg.framework == "sglang":
            assert exec_line.startswith("exec python3 -m sglang.launch_server "), exec_line
        flags, problems = parse_flags(tokens, sglang_flags, ignore_prefix="--sim-" if cfg.framework == "sim" else None)
        errors += [f"{where}: {p}" for p in problems]
        ranks[item["name"]].append((item, flags, text))
        expect = {"--tp-size": str(g["tp"]), "--port": str(item["port"]), "--model-path": "/models/Llama-3.1-70B-Instruct"}
        expect["--disaggregation-mode"] = item["role"] if cfg.mode == "pd" else None  # type: ignore[assignment]
        expect["--disaggregation-bootstrap-port"] = str(item["bootstrap_port"]) if item["role"] == "prefill" else None  # type: ignore[assignment]
        if cfg.tuning == "tuned":
            expect["--mem-fraction-static"] = "0.8"
            expect["--chunked-prefill-size"] = "8192"
            expect["--max-running-requests"] = "256"
            if cfg.mode == "pd":
                expect["--disaggregation-transfer-backend"] = "nixl"
                expect["--disaggregation-ib-device"] = "mlx5_0,mlx5_1"
        for flag, want in expect.items():
            if value(flags, flag) != want:
                errors.append(f"{where}: {flag} is {flags.get(flag)}, expected {want}")
        if cfg.tuning == "tuned":
            for flag in ("--trust-remote-code", "--disable-radix-cache", "--enable-metrics"):
                if flags.get(flag) != []:
                    errors.append(f"{where}: {flag} missing or given a value: {flags.get(flag)}")
            assert "export HF_HOME='/scratch/hf cache'" in text, where
        if item["rank"] == 0:
            leaders[item["name"]] = {"host": value(flags, "--host") or "", "port": str(item["port"])}

    for name, members in ranks.items():
        members.sort(key=lambda m: m[0]["rank"])
        leader_item, leader_flags, _ = members[0]
        nnodes = leader_item["nnodes"]
        if cfg.framework == "vllm":
            errors += _check_vllm(name, members)
            continue
        leader_host = value(leader_flags, "--host")
        for item, flags, _ in members:
            multi = {f: value(flags, f) for f in ("--nnodes", "--node-rank", "--dist-init-addr")}
            if nnodes == 1:
                if any(multi.values()):
                    errors.append(f"{name}: single-node worker with multi-node flags {multi}")
            elif multi != {"--nnodes": str(nnodes), "--node-rank": str(item["rank"]), "--dist-init-addr": f"{leader_host}:{item['dist_port']}"}:
                errors.append(f"{name} rank {item['rank']}: {multi}, leader {leader_host}:{item['dist_port']}")
    assert not errors, "\n".join(errors)


def _check_vllm(name: str, members: list[tuple[dict[str, Any], dict[str, list[str]], str]]) -> list[str]:
    errors: list[str] = []
    leader, _, text = members[0]
    nnodes = leader["nnodes"]
    serve = command_after(text, "vllm serve")
    if serve is None:
        return [f"{name}: no `vllm serve` line\n{text}"]
    model, flags_tokens = serve[0], serve[1:]
    flags, problems = parse_flags(flags_tokens, None)
    errors += [f"{name}: {p}" for p in problems]
    if model != "/models/Llama-3.1-70B-Instruct":
        errors.append(f"{name}: serves {model}")
    if value(flags, "--tensor-parallel-size") != str(leader["tp"]) or value(flags, "--port") != str(leader["port"]):
        errors.append(f"{name}: tp/port {flags.get('--tensor-parallel-size')}/{flags.get('--port')}")
    head = line_with(text, r"^ray start --head ")
    if nnodes == 1:
        if head or "ray " in text.replace("# a follower", "") or "--distributed-executor-backend" in flags:
            errors.append(f"{name}: single-node vLLM worker uses Ray\n{text}")
        return errors
    if value(flags, "--distributed-executor-backend") != "ray":
        errors.append(f"{name}: multi-node vLLM without --distributed-executor-backend ray")
    if head is None:
        return [*errors, f"{name}: leader has no `ray start --head`\n{text}"]
    head_args = dict(a.split("=", 1) for a in shlex.split(head)[3:] if "=" in a)
    address = f"{head_args.get('--node-ip-address')}:{head_args.get('--port')}"
    if head_args.get("--node-ip-address") != value(flags, "--host"):
        errors.append(f"{name}: ray head on {head_args.get('--node-ip-address')}, vllm on {value(flags, '--host')}")
    for item, _, follower in members[1:]:
        joins = line_with(follower, r"ray start --address=")
        if joins is None or f"--address={address}" not in shlex.split(joins):
            errors.append(f"{name} rank {item['rank']}: does not join {address}: {joins}")
        elif "--block" not in joins or "vllm serve" in follower:
            errors.append(f"{name} rank {item['rank']}: follower must only block in Ray: {follower}")
    return errors


# ----------------------------------------------------------------------------------------
# 4. router
# ----------------------------------------------------------------------------------------
@engine_scopes("matrix", "plans")
@pytest.mark.parametrize("cfg", params("router"))
def test_router(cfg: Config, render: RenderFn, router_parser: Any) -> None:
    plan = render(cfg).plan
    marker = ROUTER_MODULES[cfg.router]
    tokens = command_after(router_script(plan), marker)
    assert tokens is not None, f"no `{marker}` line:\n{router_script(plan)}"
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            args = router_parser[cfg.router](tokens)
    except SystemExit as exc:
        pytest.fail(f"{cfg.router} refuses {shlex.join(tokens)}:\n{stderr.getvalue()} (exit {exc.code})")
    assert args.host != "0.0.0.0" and args.prometheus_host != "0.0.0.0"
    assert args.host == args.prometheus_host and args.host.startswith("<address of node")
    assert args.port == 8000

    by_role: dict[str, dict[str, int | None]] = defaultdict(dict)
    for item, text in worker_scripts(plan):
        if item["rank"] != 0:
            continue
        if cfg.framework == "vllm":
            flags, _ = parse_flags((command_after(text, "vllm serve") or [""])[1:], None)
        else:
            module = "-m engine.sim" if cfg.framework == "sim" else "-m sglang.launch_server"
            flags, _ = parse_flags(command_after(text, module) or [], None)
        url = f"http://{value(flags, '--host')}:{value(flags, '--port')}"
        port = value(flags, "--disaggregation-bootstrap-port")
        by_role[item["role"]][url] = int(port) if port else None
    assert args.pd_disaggregation == (cfg.mode == "pd")
    registered = registrations(plan)
    if cfg.router == "smg":
        # started empty; every launched worker registered through POST /workers, once
        assert (args.prefill_urls, args.decode_urls, args.worker_urls) == ([], [], [])
        expected = [{"url": u, "worker_type": "prefill", "bootstrap_port": b} for u, b in by_role["prefill"].items()]
        expected += [{"url": u, "worker_type": "decode"} for u in by_role["decode"]]
        expected += [{"url": u, "worker_type": "regular"} for u in by_role["workers"]]
        assert sorted(registered, key=str) == sorted(expected, key=str)
        assert all(url == f"http://{args.host}:{args.port}/workers" for url in registered_at(plan))
    elif cfg.mode == "pd":
        assert registered == []
        assert sorted(args.prefill_urls) == sorted(by_role["prefill"].items())
        assert sorted(args.decode_urls) == sorted(by_role["decode"])
        assert args.worker_urls == []
    else:
        assert registered == []
        assert sorted(args.worker_urls) == sorted(by_role["workers"])
    if cfg.tuning == "tuned":
        assert args.policy == "round_robin" and args.request_timeout_secs == 600
        if cfg.mode == "pd":
            assert (args.prefill_policy, args.decode_policy) == ("cache_aware", "power_of_two")


# ----------------------------------------------------------------------------------------
# 5. containers
# ----------------------------------------------------------------------------------------
@engine_scopes("matrix", "plans")
@pytest.mark.parametrize("cfg", params("containers"))
def test_containers(cfg: Config, render: RenderFn) -> None:
    plan = render(cfg).plan
    runtime = CONTAINER_VARS[cfg.container]["container_runtime"]
    job = "<job id>" if cfg.allocation == "new" else JOB_ID
    container_play = [s for _, s in steps(plan, "containers on every node")]
    errors = []
    for play, step in steps(plan):
        if play in ("allocate the nodes", "containers on every node") or not step.get("host", "").startswith("slurm-node"):
            continue
        via = step.get("via")
        if via is None:
            continue  # delegated to localhost (the run record)
        suffix = "" if runtime == "none" else f", container {runtime}"
        if not re.fullmatch(rf"srun step on node <node \d+> of job {re.escape(job)} through login{re.escape(suffix)}", via):
            errors.append(f"{play} / {step['task']} on {step['host']}: via {via!r}, expected container {runtime}")
    assert not errors, "\n".join(errors[:20])

    commands = [s["detail"] for s in container_play if s["action"] == "command"]
    image = CONTAINER_VARS[cfg.container].get("container_image")
    if cfg.container == "none":
        assert container_play == []
    elif cfg.container in ("pyxis-sqsh", "apptainer"):
        assert commands == [f"test -r {image}"]
    elif cfg.container == "edf":
        assert commands == [f"test -r {CONTAINER_VARS['edf']['container_edf']}"]
    else:
        assert commands == [f"enroot import --output /scratch/enroot/lmsysorg+sglang+v0.5.9-cu129.sqsh {image}"]
    for s in container_play:
        assert not s.get("via", "").endswith(f"container {runtime}"), "the image check runs outside the container"


@engine_scopes("matrix", "plans")
@pytest.mark.parametrize("cfg", params("node_python", [c for c in MATRIX if c.container != "none" and c.framework != "sim"]))
def test_container_steps_do_not_run_the_engine_python(cfg: Config, render: RenderFn) -> None:
    """Inside a container only the image's files (and the mounts) exist: a step there must not
    run the interpreter of the machine that runs smlplay (``smlplay_python``)."""
    engine_python = sys.executable
    found = []
    for play, step in steps(render(cfg).plan):
        if not str(step.get("via") or "").endswith(f"container {CONTAINER_VARS[cfg.container]['container_runtime']}"):
            continue
        text = template_text(step)[1] if step["action"] == "template" else json.dumps(step.get("args", {}))
        if engine_python in text:
            found.append(f"{play} / {step['task']} on {step['host']}")
    assert not found, f"{engine_python} inside the container:\n" + "\n".join(found)


# ----------------------------------------------------------------------------------------
# 6. OpenTela and telemetry
# ----------------------------------------------------------------------------------------
@engine_scopes("matrix", "plans")
@pytest.mark.parametrize("cfg", params("sidecars"))
def test_sidecars(cfg: Config, render: RenderFn) -> None:
    plan = render(cfg).plan
    router = processes(plan, "front door")["router"][0]
    cmd = shlex.split(router["args"]["cmd"])
    script = next(s["args"]["dest"] for _, s in steps(plan) if s["args"].get("src") == "router.sh.j2")
    if cfg.opentela:
        otela = ["otela"] if cfg.framework != "sim" else [cmd[1], "-m", "engine.sim.otela"]
        assert cmd[: 1 + len(otela) + 1] == ["exec", *otela, "start"], cmd
        flags = dict(itertools.pairwise(cmd))
        assert flags["--bootstrap.addr"] == BOOTSTRAP_ADDR and flags["--service.port"] == "8000"
        assert flags["--subprocess"] == f"bash {script}" and cmd[-2:] == ["--subprocess", f"bash {script}"]
        if cfg.tuning == "tuned":
            assert flags["--service.health_path"] == "/health" and flags["--log.level"] == "debug"
    else:
        assert cmd == ["exec", "bash", script]
        wrapped = [s["args"]["name"] for _, s in steps(plan) if s["action"] == "process" and "otela" in s["args"]["cmd"]]
        assert wrapped == [], "OpenTela is off"

    telemetry = [s for _, s in steps(plan, "telemetry on every node")]
    if not cfg.telemetry:
        assert telemetry == []
        return
    job = "<job id>" if cfg.allocation == "new" else JOB_ID
    for _, step in steps(plan, "telemetry on every node"):
        if step["action"] == "template" and step["args"]["src"] == "vmagent.sh.j2" and cfg.allocation == "job":
            text = template_text(step)[1]
            assert f"-remoteWrite.label=slurm_job_id={job}" in text, text
            assert "-remoteWrite.label=model=meta-llama/Llama-3.1-70B-Instruct" in text
            if cfg.tuning == "tuned":
                assert "'-remoteWrite.label=team=ml infra'" in text
    exporters = {s["args"]["name"] for s in telemetry if s["action"] == "process"} - {"vmagent", "victoria-metrics"}
    assert exporters == ({"dcgm-exporter"} if cfg.tuning == "tuned" else {"dcgm-exporter", "node-exporter"})


# ----------------------------------------------------------------------------------------
# negative cases
# ----------------------------------------------------------------------------------------
@engine_scopes("matrix", "refusals")
@pytest.mark.parametrize("cfg", params("refused", NEGATIVE_CONFIGS))
def test_refused_at_render_time(cfg: Config, render: RenderFn) -> None:
    result = render(cfg)
    assert result.rc == cfg.expect_rc, result.explain()
    for fragment in cfg.expect_error:
        assert fragment in result.stderr, result.explain()
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr


@engine_scopes("refusals")
def test_bootstrap_port_disagreement_is_refused(workspace: Workspace) -> None:
    endpoints = {"router_prefill_endpoints": [{"url": "http://x:30000", "bootstrap_port": 9999}]}
    result = workspace.dry_run(PD_PLAYBOOK, LOCAL_INVENTORY, "-e", json.dumps(endpoints))
    assert result.rc == 2, result.explain()
    assert "9999" in result.stderr and "8998" in result.stderr, result.explain()


def test_user_flag_repeating_a_generated_one_is_refused(workspace: Workspace) -> None:
    result = workspace.dry_run(PD_PLAYBOOK, LOCAL_INVENTORY, "-e", json.dumps({"sglang_args": {"disaggregation-bootstrap-port": 9000}}))
    assert result.rc == 2, result.explain()
    assert "--disaggregation-bootstrap-port" in result.stderr, result.explain()
    assert "8998" in result.stderr and "9000" in result.stderr, result.explain()


def test_override_replaces_a_generated_flag_once(workspace: Workspace) -> None:
    result = workspace.dry_run(PD_PLAYBOOK, LOCAL_INVENTORY, "-e", json.dumps({"sglang_overrides": {"disaggregation-bootstrap-port": 9000}}))
    assert result.rc == 0, result.explain()
    plan = result.plan
    prefill = [text for item, text in worker_scripts(plan) if item["role"] == "prefill"]
    assert prefill
    for text in prefill:
        tokens = command_after(text, "-m engine.sim") or []
        assert tokens.count("--disaggregation-bootstrap-port") == 1
        assert tokens[tokens.index("--disaggregation-bootstrap-port") + 1] == "9000"
    assert [r.get("bootstrap_port") for r in registrations(plan) if r["worker_type"] == "prefill"] == [9000], (
        "the router must be given the port prefill listens on"
    )
    cli = workspace.dry_run(PD_PLAYBOOK, LOCAL_INVENTORY, "-e", json.dumps({"router_impl": "sglang-router", "sglang_overrides": {"disaggregation-bootstrap-port": 9000}}))
    router = command_after(router_script(cli.plan), "-m sglang_router.launch_router") or []
    assert router[router.index("--prefill") + 2] == "9000", "the router must be given the port prefill listens on"


@engine_scopes("plans")
@pytest.mark.parametrize("playbook", ["llama70b.yaml", "llama70b-aggregated.yaml"])
def test_playbook_renders_with_the_default_inventory(workspace: Workspace, playbook: str) -> None:
    path = REPO / "playbooks" / playbook
    if not path.exists():
        pytest.skip(f"no {playbook}")
    result = workspace.dry_run(path, LOCAL_INVENTORY)
    assert result.rc == 0, result.explain()
    assert [p["name"] for p in result.plan["plays"]] == play_names(path)
    assert any("sglang.bench_serving" in s.get("detail", "") for _, s in steps(result.plan, "benchmark"))


@pytest.mark.parametrize("playbook", ["llama70b.yaml", "llama70b-aggregated.yaml"])
def test_playbook_renders_with_the_example_cluster_inventory(workspace: Workspace, playbook: str) -> None:
    """inventory/example-cluster.yaml (pyxis with a .sqsh image, an SSH login node that a
    dry-run never contacts)."""
    path, inventory = REPO / "playbooks" / playbook, REPO / "inventory" / "example-cluster.yaml"
    result = workspace.dry_run(path, inventory)
    assert result.rc == 0, result.explain()
    assert [p["name"] for p in result.plan["plays"]] == play_names(path)


def test_dry_runs_ran_no_slurm_command(rendered: dict[str, Any], workspace: Workspace) -> None:
    """Every dry-run of this session ran with sbatch, srun, salloc, squeue, scontrol and
    scancel on PATH as recorders: a dry-run never executes, so none was called. Run alone
    (``-k``), it renders a Slurm configuration itself, so it never passes on nothing."""
    for future in rendered.values():
        future.result()
    if not rendered:
        cfg = next(c for c in MATRIX if c.scheduler == "slurm")
        assert workspace.render(cfg).rc == 0, workspace.render(cfg).explain()
    assert workspace.slurm_calls() == []
