"""The configurations of the rendering matrix, and the role bugs known to break some of them.

A configuration is one dry-run of ``playbooks/llama70b.yaml`` (P/D) or
``playbooks/llama70b-aggregated.yaml`` (aggregated replicas) against a Slurm inventory, with
``-e`` choosing the framework, the worker shape, the container runtime and the sidecars. The
positive configurations are a greedy covering array (:func:`covering_rows`): every pair of
values of any two dimensions appears in at least one configuration, and beyond that the rows
add (stack, container, shape) triples until there are :data:`MIN_CONFIGS` of them.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

GPUS_PER_NODE = 8
MIN_CONFIGS = 56
#: a well-formed OpenTela bootstrap multiaddr (never dialled by a dry-run)
BOOTSTRAP_ADDR = "/ip4/10.1.2.3/tcp/43905/p2p/12D3KooWJmxW4Dbk7mDhdfeLjXq2VvrfvxsqaR4SjQrbyGYDwXqo"
#: with allocation "job" the run adopts this running job (allocation_job_id)
JOB_ID = "4242"

#: mode-framework: vLLM serves aggregated replicas only (vLLM with P/D is a negative case)
STACKS = ("pd-sglang", "pd-sim", "agg-sglang", "agg-sim", "agg-vllm")
CONTAINERS = ("none", "pyxis-sqsh", "pyxis-docker", "edf", "apptainer")
#: (tp, nodes per worker): tp > gpus_per_node spans nodes; nodes_per_worker 2 also splits
#: a TP-4/TP-8 worker over two nodes
SHAPES = ((4, 1), (4, 2), (8, 1), (8, 2), (16, 2))

DIMENSIONS: dict[str, Sequence[Any]] = {
    "stack": STACKS,
    "container": CONTAINERS,
    "shape": SHAPES,
    "workers": (1, 2),
    "telemetry": (True, False),
    "opentela": (True, False),
    # new: the run submits its own job (a dry-run shows <job id>); job: adopts JOB_ID
    "allocation": ("new", "job"),
    # router_impl: smg (workers registered through its API) or sglang-router (on its command line)
    "router": ("smg", "sglang-router"),
    # plain: the playbook's settings; tuned: extra flags, worker env, policies, sidecar options
    "tuning": ("plain", "tuned"),
}

CONTAINER_VARS: dict[str, dict[str, Any]] = {
    "none": {"container_runtime": "none"},
    "pyxis-sqsh": {
        "container_runtime": "pyxis",
        "container_image": "/capstor/images/sglang-v0.5.9.sqsh",
        "container_mounts": ["/models:/models:ro", "/scratch:/scratch"],
        "container_workdir": "/scratch",
    },
    "pyxis-docker": {
        "container_runtime": "pyxis",
        "container_image": "docker://lmsysorg/sglang:v0.5.9-cu129",
        "container_import_dir": "/scratch/enroot",
        "container_mounts": ["/models:/models:ro"],
    },
    "edf": {"container_runtime": "edf", "container_edf": "/capstor/edf/sglang-v0.5.9.toml"},
    "apptainer": {
        "container_runtime": "apptainer",
        "container_image": "/capstor/images/sglang-v0.5.9.sif",
        "container_mounts": ["/models:/models:ro"],
    },
}


@dataclass(frozen=True)
class Config:
    stack: str
    container: str
    shape: tuple[int, int]
    workers: int = 1
    telemetry: bool = True
    opentela: bool = False
    allocation: str = "new"
    tuning: str = "plain"
    router: str = "smg"
    #: inventory: slurm (the matrix) or local (the embedded default's local scheduler)
    scheduler: str = "slurm"
    #: more -e arguments, after the generated ones (negative cases)
    extra: tuple[str, ...] = ()
    #: a negative case: the exit status and the fragments its error must contain
    expect_rc: int = 0
    expect_error: tuple[str, ...] = ()
    #: refused while allocating, before any task runs on the nodes
    refused_early: bool = False
    name: str = ""

    @property
    def mode(self) -> str:
        return self.stack.split("-")[0]

    @property
    def framework(self) -> str:
        return self.stack.split("-")[1]

    @property
    def tp(self) -> int:
        return self.shape[0]

    @property
    def nodes_per_worker(self) -> int:
        return self.shape[1]

    @property
    def id(self) -> str:
        if self.name:
            return self.name
        tp, span = self.shape
        return "-".join(
            [
                self.stack,
                f"tp{tp}x{span}n",
                f"w{self.workers}",
                self.container,
                "tel" if self.telemetry else "notel",
                "otela" if self.opentela else "nootela",
                "newjob" if self.allocation == "new" else "injob",
                self.tuning,
                *(["sglr"] if self.router == "sglang-router" else []),
            ]
        )

    # ------------------------------------------------------------------------------------
    def group(self, workers: int) -> dict[str, int]:
        spec = {"workers": workers, "tp": self.tp}
        if self.nodes_per_worker != math.ceil(self.tp / GPUS_PER_NODE):
            spec["nodes_per_worker"] = self.nodes_per_worker
        return spec

    @property
    def layout(self) -> dict[str, Any]:
        if self.mode == "pd":
            # decode: one worker of the same shape; prefill: `workers` of them
            return {"prefill": self.group(self.workers), "decode": self.group(1)}
        return {"workers": self.group(self.workers)}

    @property
    def concurrencies(self) -> list[int]:
        return [4, 16] if self.tuning == "tuned" else [1, 8, 32]

    @property
    def opentela_vars(self) -> dict[str, Any]:
        settings: dict[str, Any] = {"bootstrap_addr": BOOTSTRAP_ADDR}
        if self.tuning == "tuned":
            settings.update(health_path="/health", health_interval="10s", extra_args=["--log.level", "debug"])
        return settings

    def extra_vars(self) -> list[str]:
        """The ``-e`` arguments: one JSON mapping, then ``k=v`` switches (both CLI forms)."""
        data: dict[str, Any] = {"framework": self.framework, "layout": self.layout, **CONTAINER_VARS[self.container]}
        if self.opentela:
            data["opentela"] = self.opentela_vars
        if self.telemetry and self.tuning == "tuned":
            data["telemetry"] = {"exporter": "dcgm", "scrape_interval": "2s", "labels": {"team": "ml infra", "site": "a'b"}}
        if self.allocation == "job":
            data["allocation_job_id"] = JOB_ID
        if self.router != "smg":
            data["router_impl"] = self.router
        if self.tuning == "tuned":
            data.update(self._tuned())
        args = ["-e", json.dumps(data, sort_keys=True)]
        if not self.telemetry:
            args += ["-e", "telemetry=false"]
        if not self.opentela:
            args += ["-e", "opentela=false"]
        return [*args, *self.extra]

    def _tuned(self) -> dict[str, Any]:
        tuned: dict[str, Any] = {
            "worker_env": {"NCCL_DEBUG": "INFO", "NCCL_IB_HCA": "mlx5_0,mlx5_1", "HF_HOME": "/scratch/hf cache"},
            "trust_remote_code": True,
            "router_policy": "round_robin",
            "router_args": {"request-timeout-secs": 600},
            "benchmark": {"concurrencies": self.concurrencies, "isl": 2048, "osl": 128},
        }
        if self.framework == "vllm":
            tuned["vllm_args"] = {"max-model-len": 8192, "gpu-memory-utilization": 0.9}
        else:
            tuned["sglang_args"] = {
                "mem-fraction-static": 0.8,
                "chunked-prefill-size": 8192,
                # (not cuda-graph-max-bs: SGLang 0.5.2x replaced it with --cuda-graph-bs-decode)
                "max-running-requests": 256,
                "disable-radix-cache": True,
                "log-level": "info",
            }
        if self.mode == "pd":
            tuned.update(
                disaggregation_transfer_backend="nixl",
                disaggregation_ib_device="mlx5_0,mlx5_1",
                router_prefill_policy="cache_aware",
                router_decode_policy="power_of_two",
            )
        return tuned


# ----------------------------------------------------------------------------------------
# the covering array
# ----------------------------------------------------------------------------------------
def _valid(row: dict[str, Any]) -> bool:
    tp, span = row["shape"]
    return span * GPUS_PER_NODE >= tp and not (span > 1 and tp % span)


def _candidates(dimensions: dict[str, Sequence[Any]]) -> list[dict[str, Any]]:
    names = list(dimensions)
    rows = [dict(zip(names, values, strict=True)) for values in itertools.product(*(dimensions[n] for n in names))]
    return [r for r in rows if _valid(r)]


@functools.cache
def covering_rows(minimum: int = MIN_CONFIGS) -> tuple[tuple[tuple[str, Any], ...], ...]:
    """Greedy (AETG-like) covering array over :data:`DIMENSIONS`: pick, among all valid
    combinations, the row that covers most uncovered value pairs, until every pair is covered
    and there are ``minimum`` rows. Ties (and, once the pairs are covered, the choice itself)
    go to uncovered (stack, container, shape) triples, then to the value pairs used least so
    far, then to the first in product order: deterministic, balanced and decorrelated."""
    names = list(DIMENSIONS)
    candidates = _candidates(DIMENSIONS)
    combos = list(itertools.combinations(names, 2))
    pair_ids = [[(a, c[a], b, c[b]) for a, b in combos] for c in candidates]
    triples = [(c["stack"], c["container"], c["shape"]) for c in candidates]
    uncovered_pairs = {p for ids in pair_ids for p in ids}
    uncovered_triples = set(triples)
    usage = dict.fromkeys(uncovered_pairs, 0)
    rows: list[dict[str, Any]] = []
    chosen: set[int] = set()
    while uncovered_pairs or len(rows) < minimum:
        best, best_score = -1, (-1, -1, 0)
        for index in range(len(candidates)):
            if index in chosen:
                continue
            new_pairs = sum(p in uncovered_pairs for p in pair_ids[index]) if uncovered_pairs else 0
            score = (new_pairs, int(triples[index] in uncovered_triples), -sum(usage[p] for p in pair_ids[index]))
            if score > best_score:
                best, best_score = index, score
        if best < 0:
            break
        chosen.add(best)
        rows.append(candidates[best])
        uncovered_pairs.difference_update(pair_ids[best])
        uncovered_triples.discard(triples[best])
        for p in pair_ids[best]:
            usage[p] += 1
    return tuple(tuple(row.items()) for row in rows)


def matrix_configs() -> list[Config]:
    return [Config(**dict(row)) for row in covering_rows()]


def uncovered_pairs(configs: Iterable[Config], dimensions: dict[str, Sequence[Any]] = DIMENSIONS) -> list[str]:
    """The value pairs (of valid combinations) that no configuration covers."""
    names = list(dimensions)
    combos = list(itertools.combinations(names, 2))
    required = {(a, c[a], b, c[b]) for c in _candidates(dimensions) for a, b in combos}
    seen = {(a, getattr(c, a), b, getattr(c, b)) for c in configs for a, b in combos}
    return sorted(f"{a}={va} x {b}={vb}" for a, va, b, vb in required - seen)


# ----------------------------------------------------------------------------------------
# negative cases: refused at render time with exit 2 and a clear message
# ----------------------------------------------------------------------------------------
NEGATIVE_CONFIGS: list[Config] = [
    Config(
        "pd-vllm", "none", (8, 1), name="refused-vllm-with-pd",
        expect_rc=2, expect_error=("framework vllm cannot run prefill workers", "P/D disaggregation needs sglang"),
    ),
    Config(
        "agg-sglang", "none", (16, 1), name="refused-tp16-on-one-node",
        extra=("-e", json.dumps({"layout": {"workers": {"workers": 1, "tp": 16, "nodes_per_worker": 1}}})),
        expect_rc=2, expect_error=("TP-16 worker does not fit on 1 node(s) of 8 GPU(s)",), refused_early=True,
    ),
    Config(
        "pd-sglang", "pyxis-sqsh", (8, 1), scheduler="local", name="refused-pyxis-with-local-scheduler",
        expect_rc=2, expect_error=("container_runtime pyxis runs through srun", "connection local"),
    ),
    Config(
        "agg-sglang", "none", (8, 1), opentela=True, name="refused-opentela-bad-bootstrap-addr",
        extra=("-e", json.dumps({"opentela": {"bootstrap_addr": "10.1.2.3:43905"}})),
        expect_rc=2, expect_error=("opentela.bootstrap_addr must be the multiaddr", "10.1.2.3:43905"),
    ),
]


# ----------------------------------------------------------------------------------------
# role bugs found by the matrix (reported; xfail(strict=True) until fixed)
# ----------------------------------------------------------------------------------------
ALL_CHECKS = frozenset({"renders", "shell", "placeholders", "worker_flags", "router", "containers", "node_python", "sidecars", "refused"})


@dataclass(frozen=True)
class RoleBug:
    key: str
    reason: str
    applies: Callable[[Config], bool]
    checks: frozenset[str] = field(default=ALL_CHECKS)


#: Role bugs the matrix found, each an xfail(strict=True) while open. C1 (container-up
#: conditions), R2 (router/benchmark python inside containers), SW1 (unquoted script paths)
#: and I1 (example inventory) are fixed; keep the mechanism for the next one.
ROLE_BUGS: list[RoleBug] = []


def role_bugs(config: Config, check: str) -> list[RoleBug]:
    return [b for b in ROLE_BUGS if check in b.checks and b.applies(config)]
