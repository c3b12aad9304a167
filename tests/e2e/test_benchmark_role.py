"""The `benchmark` role end to end: the real CLI, a real simulated SGLang worker behind the
real sglang-router, and sglang's real `bench_serving` (the `bench` extra).

The sweep and dead-URL tests need sglang 0.5.9 (`pip install -e '.[bench]' && pip install
--no-deps sglang==0.5.9`); they skip without it, except under CI=true where they must run.
The other tests (missing client, completion checks through a stand-in client, custom
commands, settings errors, the dry-run) run everywhere.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO, Workdir, free_port

pytestmark = pytest.mark.e2e

HAVE_SGLANG = importlib.util.find_spec("sglang") is not None
needs_bench_serving = pytest.mark.skipif(
    not HAVE_SGLANG and os.environ.get("CI") != "true",
    reason="sglang bench_serving not installed: pip install -e '.[bench]' && pip install --no-deps sglang==0.5.9",
)
INSTALL_RECIPE = "pip install -e '.[bench]' && pip install --no-deps sglang==0.5.9"
ISL, OSL = 32, 8


def inventory(router_url: str) -> str:
    """localhost is both the router host (its `router_url` fact) and the bench host."""
    return f"""
all:
  hosts:
    localhost: {{connection: local, router_url: "{router_url}"}}
  children:
    router: {{hosts: {{localhost: {{}}}}}}
    bench: {{hosts: {{localhost: {{}}}}}}
  vars:
    framework: sim
    model: {{name: llama, path: /models/llama}}
"""


def playbook(benchmark: str) -> str:
    return f"""
- name: benchmark
  hosts: bench
  vars:
    benchmark: {benchmark}
  roles: [benchmark]
"""


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, resp.read()
    except OSError:
        return 0, b""


def _wait(what: str, proc: subprocess.Popen[bytes], log: Path, ready: object) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"{what} exited {proc.returncode}:\n{log.read_text()[-3000:]}"
        if callable(ready) and ready():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} not ready after 60 s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def router_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A simulated worker (regular mode, 1 ms per output token) behind the real router."""
    logs = tmp_path_factory.mktemp("stack")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    worker, router, metrics = free_port(), free_port(), free_port()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        sim_log = logs / "sim.log"
        with sim_log.open("wb") as out:
            sim = subprocess.Popen(
                [sys.executable, "-m", "engine.sim", "--model-path", "m", "--served-model-name", "llama",
                 "--host", "127.0.0.1", "--port", str(worker), "--sim-tpot-ms", "1", "--sim-max-lifetime", "600"],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )
        procs.append(sim)
        _wait("simulated worker", sim, sim_log, lambda: _get(f"http://127.0.0.1:{worker}/health")[0] == 200)
        router_log = logs / "router.log"
        with router_log.open("wb") as out:
            rt = subprocess.Popen(
                [sys.executable, "-m", "sglang_router.launch_router", "--worker-urls", f"http://127.0.0.1:{worker}",
                 "--host", "127.0.0.1", "--port", str(router),
                 "--prometheus-host", "127.0.0.1", "--prometheus-port", str(metrics)],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )
        procs.append(rt)

        def router_ready() -> bool:
            status, body = _get(f"http://127.0.0.1:{router}/readiness")
            return status == 200 and json.loads(body).get("healthy_workers") == 1

        _wait("sglang-router", rt, router_log, router_ready)
        yield f"http://127.0.0.1:{router}"
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def results(work: Workdir) -> Path:
    return work.last_run() / "results"


@needs_bench_serving
def test_sweep_through_the_router_counts_every_token(work: Workdir, router_url: str) -> None:
    work.write("inv.yaml", inventory(router_url))
    work.write("pb.yaml", playbook(
        f"{{concurrencies: [1, 3], isl: {ISL}, osl: {OSL}, prompts_per_concurrency: 3, min_prompts: 4}}"
    ))
    started = time.monotonic()
    proc = work.smlplay("run", "pb.yaml", "-i", "inv.yaml", timeout=300)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr
    assert "failed=0" in proc.stdout
    out = results(work)
    expected = {1: 4, 3: 9}  # max(C * 3, 4)
    for concurrency, prompts in expected.items():
        [line] = (out / f"bench_c{concurrency}.jsonl").read_text().splitlines()
        record = json.loads(line)
        assert record["max_concurrency"] == concurrency
        assert record["completed"] == prompts
        assert record["total_input_tokens"] == prompts * ISL
        assert record["total_output_tokens"] == prompts * OSL
        assert record["total_output_tokens_retokenized"] == prompts * OSL
        assert (out / f"warmup_c{concurrency}.jsonl").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tool"] == "bench_serving" and summary["url"] == router_url and summary["model"] == "llama"
    assert [(r["concurrency"], r["num_prompts"], r["completed"], r["failed"]) for r in summary["runs"]] == [
        (1, 4, 4, 0), (3, 9, 9, 0)
    ]
    assert all(r["output_throughput"] > 0 and r["mean_ttft_ms"] > 0 for r in summary["runs"])
    csv = (out / "summary.csv").read_text().splitlines()
    assert csv[0].startswith("concurrency,num_prompts,completed,") and len(csv) == 3
    assert csv[2].startswith("3,9,9,0,")
    table = (out / "summary.txt").read_text()
    assert "concurrency" in table and "mean TTFT" in table
    assert (work.last_run() / "tokenizer" / "tokenizer.json").exists()
    # a foreground benchmark: nothing of it is left to stop
    state = work.state()
    assert state["status"] == "ok" and state["processes"] == []
    print(f"sweep of 2 concurrencies (13 requests + warm-ups) through the CLI: {elapsed:.1f}s")


@needs_bench_serving
def test_benchmark_against_a_dead_url_fails_the_run(work: Workdir) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    work.write("inv.yaml", inventory(dead))
    work.write("pb.yaml", playbook(f"{{concurrencies: [1, 2], isl: {ISL}, osl: {OSL}, warmup: false}}"))
    proc = work.smlplay("run", "pb.yaml", "-i", "inv.yaml", timeout=300)
    assert proc.returncode == 1, proc.stdout[-4000:]
    assert f"bench_serving at concurrency 1 against {dead} failed (rc 1)" in proc.stdout
    assert "concurrency 2" not in proc.stdout.split("failed (rc 1)", 1)[1]  # the sweep stopped
    assert not (results(work) / "summary.json").exists()


def test_missing_client_names_the_install_recipe(work: Workdir) -> None:
    python = "/usr/bin/python3"
    if not Path(python).exists():
        pytest.skip(f"{python} not present")
    if subprocess.run([python, "-c", "import sglang.bench_serving"], capture_output=True).returncode == 0:
        pytest.skip(f"{python} has sglang installed")
    work.write("inv.yaml", inventory(f"http://127.0.0.1:{free_port()}"))
    work.write("pb.yaml", playbook(f"{{python: {python}}}"))
    proc = work.smlplay("run", "pb.yaml", "-i", "inv.yaml")
    assert proc.returncode == 1, proc.stdout
    assert f"bench_serving is not installed for {python} on localhost" in proc.stdout
    assert "No module named 'sglang'" in proc.stdout
    assert INSTALL_RECIPE in proc.stdout
    assert not (results(work)).exists()


FAKE_CLIENT = '''#!{python}
"""Stands in for the Python that runs `-m sglang.bench_serving`: writes a result line in
bench_serving's format with FAKE_MISSING requests missing and FAKE_TOKENS output tokens per
request. Anything else (`-c import ...`, `-m engine.sim.tokenizer`) runs on the real Python."""
import json, os, sys
args = sys.argv[1:]
if args[:2] == ["-m", "sglang.bench_serving"]:
    opt = lambda name: args[args.index(name) + 1]
    n, osl = int(opt("--num-prompts")), int(opt("--random-output-len"))
    completed = n - int(os.environ.get("FAKE_MISSING", "0"))
    per_request = int(os.environ.get("FAKE_TOKENS", osl))
    with open(opt("--output-file"), "a") as f:
        f.write(json.dumps({{
            "max_concurrency": int(opt("--max-concurrency")), "completed": completed,
            "duration": 1.0, "total_input_tokens": completed * int(opt("--random-input-len")),
            "total_output_tokens": completed * per_request, "request_throughput": completed / 1.0,
            "input_throughput": 1.0, "output_throughput": completed * per_request / 1.0,
            "mean_ttft_ms": 1.0, "median_ttft_ms": 1.0, "p99_ttft_ms": 2.0, "mean_tpot_ms": 1.0,
            "median_tpot_ms": 1.0, "p99_tpot_ms": 1.0, "mean_itl_ms": 1.0, "p99_itl_ms": 1.0,
            "mean_e2e_latency_ms": 9.0, "p99_e2e_latency_ms": 9.0, "request_rate": float("inf"),
        }}) + "\\n")
    sys.exit(0)
os.execv(sys.executable, [sys.executable, *args])
'''


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"FAKE_MISSING": "1"}, "benchmark at concurrency 2 completed 7 of 8 requested prompts (1 failed, 0 allowed)"),
        ({"FAKE_TOKENS": "0"}, "benchmark at concurrency 2 completed 8 of 8 requested prompts (0 failed, 0 allowed) with 0 output tokens"),
        ({"FAKE_MISSING": "1", "MAX_FAILED": "1"}, None),
    ],
    ids=["missing-request", "zero-tokens", "within-allowance"],
)
def test_incomplete_results_fail_the_run(work: Workdir, env: dict[str, str], expected: str | None) -> None:
    """A client that exits 0 but lost requests, or produced no tokens ("Total generated
    tokens: 0"), must fail the run, naming the concurrency and the counts."""
    fake = work.write("fake-python", FAKE_CLIENT.format(python=sys.executable))
    fake.chmod(0o755)
    allowed = env.pop("MAX_FAILED", "0")
    env_map = ", ".join(f"{k}: '{v}'" for k, v in env.items())
    # the bench host writes elsewhere than the run record (as a remote host would): the role
    # copies each result into the record
    workdir = work.path / "bench-host"
    work.write("inv.yaml", inventory(f"http://127.0.0.1:{free_port()}"))
    work.write("pb.yaml", playbook(
        f"{{python: {fake}, concurrencies: [2, 4], prompts_per_concurrency: 4, warmup: false, "
        f"max_failed_requests: {allowed}, env: {{{env_map}}}, workdir: {workdir}}}"
    ))
    proc = work.smlplay("run", "pb.yaml", "-i", "inv.yaml")
    if expected is None:
        assert proc.returncode == 0, proc.stdout[-4000:]
        runs = json.loads((results(work) / "summary.json").read_text())["runs"]
        assert [(r["concurrency"], r["num_prompts"], r["completed"], r["failed"]) for r in runs] == [(2, 8, 7, 1), (4, 16, 15, 1)]
        for c in (2, 4):
            on_host = (workdir / "results" / f"bench_c{c}.jsonl").read_text()
            assert json.loads(on_host)["completed"] == 4 * c - 1
            assert (results(work) / f"bench_c{c}.jsonl").read_text() == on_host
        assert (workdir / "tokenizer" / "tokenizer.json").exists()
        return
    assert proc.returncode == 1, proc.stdout[-4000:]
    assert expected in proc.stdout
    assert not (results(work) / "bench_c4.jsonl").exists()  # the sweep stopped at the failure


def test_custom_command_gets_its_placeholders(work: Workdir) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    work.write("inv.yaml", inventory(url))
    work.write("pb.yaml", playbook(
        "{tool: custom, concurrencies: [1, 5], min_prompts: 2, prompts_per_concurrency: 2, "
        "command: 'echo url={url} model={model} c={concurrency} n={num_prompts} isl={isl} osl={osl} | tee {output_file}'}"
    ))
    proc = work.smlplay("run", "pb.yaml", "-i", "inv.yaml")
    assert proc.returncode == 0, proc.stdout[-4000:]
    out = results(work)
    assert (out / "custom_c1.log").read_text() == f"url={url} model=llama c=1 n=2 isl=128 osl=32\n"
    assert (out / "custom_c5.log").read_text() == f"url={url} model=llama c=5 n=10 isl=128 osl=32\n"
    assert (out / "bench_c5.jsonl").read_text() == f"url={url} model=llama c=5 n=10 isl=128 osl=32\n"
    runs = json.loads((out / "summary.json").read_text())["runs"]
    assert [(r["concurrency"], r["num_prompts"], r["rc"]) for r in runs] == [(1, 2, 0), (5, 10, 0)]


@pytest.mark.parametrize(
    ("benchmark", "message"),
    [
        ("{concurency: [1]}", "unknown key(s) concurency"),
        ("{concurrencies: [1, 0, 1]}", "concurrencies must be a non-empty list of distinct positive integers, not [1, 0, 1]"),
        ("{tool: locust}", 'tool must be bench_serving, aiperf or custom, not "locust"'),
        ("{timeout: 1h}", 'timeout must be a positive integer, not "1h"'),
        ("{tool: custom}", "tool custom needs a command"),
    ],
)
def test_bad_settings_are_rejected_before_anything_runs(work: Workdir, benchmark: str, message: str) -> None:
    work.write("inv.yaml", inventory(f"http://127.0.0.1:{free_port()}"))
    work.write("pb.yaml", playbook(benchmark))
    proc = work.smlplay("run", "pb.yaml", "-i", "inv.yaml")
    assert proc.returncode in (1, 2), proc.stdout
    assert f"invalid benchmark settings: {message}" in proc.stdout + proc.stderr
    assert "check the benchmark client is installed" not in proc.stdout


def test_no_router_url_is_a_clear_error(work: Workdir) -> None:
    work.write("inv.yaml", inventory("").replace('router_url: ""', "port: 1"))
    work.write("pb.yaml", playbook("{}"))
    proc = work.smlplay("run", "pb.yaml", "-i", "inv.yaml")
    assert proc.returncode in (1, 2), proc.stdout
    assert "no URL to benchmark" in proc.stdout + proc.stderr


def test_dry_run_shows_each_command(work: Workdir) -> None:
    url = "http://10.0.0.7:30000"
    work.write("inv.yaml", inventory(url))
    work.write("pb.yaml", playbook("{concurrencies: [2, 16], isl: 1024, osl: 256}"))
    proc = work.smlplay("run", "pb.yaml", "-i", "inv.yaml", "--dry-run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    plan = proc.stdout
    for concurrency, prompts in ((2, 8), (16, 64)):
        assert (
            f"-m sglang.bench_serving --backend sglang --base-url {url} --model llama --tokenizer "
            in plan
        )
        assert f"--max-concurrency {concurrency} --request-rate inf --disable-tqdm --num-prompts {prompts} " in plan
        assert f"results/bench_c{concurrency}.jsonl" in plan
        assert f"--num-prompts {concurrency} --seed" in plan  # warm-up: one request per slot
    assert "--random-input-len 1024 --random-output-len 256 --random-range-ratio 1.0" in plan
    assert "--dataset-name random-ids" in plan and "-m engine.sim.tokenizer" in plan
    assert not (work.path / "runs").exists()

    # -e KEY=VALUE gives strings; the role reads the list, number and boolean they spell
    proc = work.smlplay(
        "run", "pb.yaml", "-i", "inv.yaml", "--dry-run",
        "-e", "benchmark.concurrencies=[1,32]", "-e", "benchmark.isl=64", "-e", "benchmark.warmup=false",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "--random-input-len 64 --random-output-len 256" in proc.stdout
    assert "--max-concurrency 32 --request-rate inf --disable-tqdm --num-prompts 128 " in proc.stdout
    assert "--max-concurrency 2 " not in proc.stdout and "warm up" not in proc.stdout

    aiperf = work.write("aiperf.yaml", playbook("{tool: aiperf, concurrencies: [4], isl: 100, osl: 20, tokenizer: /tok}"))
    proc = work.smlplay("run", aiperf.name, "-i", "inv.yaml", "--dry-run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (
        f"-m aiperf profile --model llama --url {url} --endpoint-type chat --streaming --concurrency 4 "
        "--request-count 16 --synthetic-input-tokens-mean 100 --synthetic-input-tokens-stddev 0 "
        "--output-tokens-mean 20 --output-tokens-stddev 0 --tokenizer /tok"
    ) in proc.stdout
    assert "--warmup-request-count 4 --artifact-dir" in proc.stdout and "--ui-type none" in proc.stdout
