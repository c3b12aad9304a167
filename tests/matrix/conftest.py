"""Fixtures of the rendering matrix: the Slurm inventory, the dry-runs (rendered in parallel
once per session), SGLang's real flag table and sglang-router's real argument parser.

Every dry-run is the real CLI in a subprocess (``python -m engine run PLAYBOOK -i INVENTORY
--dry-run --format json -e ...``) in a scratch directory, with ``SMLPLAY_RUNS_DIR`` there and
the repository's roles first on ``SMLPLAY_ROLES_PATH``. A dry-run executes nothing: with
``scheduler: slurm`` the allocation is a placeholder (``<job id>``, ``<node 1>``) and no
sbatch, srun or scancel runs.

Engine bugs that keep every configuration from rendering are detected once per session by
small reproducers (:data:`ENGINE_PROBES`, each matching only its bug's own signature); while
one is present the affected tests are marked xfail (not run) with its description instead of
failing one by one. Slurm's commands are on PATH as recorders for every dry-run, and the last
test checks none was called.

``SMLPLAY_MATRIX_ENGINE=/path/to/checkout`` renders with another checkout's ``engine``
package (the roles stay this repository's): to try an engine fix against the matrix.
"""

from __future__ import annotations

import concurrent.futures as cf
import importlib.metadata
import importlib.util
import json
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.matrix.checks import FlagSpec, sglang_flags_recorded
from tests.matrix.configs import GPUS_PER_NODE, Config

REPO = Path(__file__).resolve().parents[2]
ENGINE_ROOT = Path(os.environ.get("SMLPLAY_MATRIX_ENGINE") or REPO)
PD_PLAYBOOK = REPO / "playbooks" / "llama70b.yaml"
AGG_PLAYBOOK = REPO / "playbooks" / "llama70b-aggregated.yaml"
SGLANG_VERSION = "0.5.9"
#: the worker flags are checked against each: the simulator's version and the newest release
SGLANG_FLAG_VERSIONS = (SGLANG_VERSION, "0.5.23")
SLURM_COMMANDS = ("sbatch", "srun", "salloc", "squeue", "scontrol", "scancel", "sacct")

SLURM_INVENTORY = f"""\
# The matrix's cluster: a Slurm login node reached locally (no SSH), 8 GPUs per node.
all:
  hosts:
    login:
      connection: local
  children:
    scheduler:
      hosts:
        login: {{}}
  vars:
    scheduler: slurm
    slurm_partition: gpu
    slurm_account: llm
    node_address_from: nodeaddr
    gpus_per_node: {GPUS_PER_NODE}
    framework: sglang
    container_runtime: none
"""

# Built from llama70b.yaml when the repository has no aggregated playbook.
AGG_FALLBACK = """\
- {name: allocate the nodes, hosts: scheduler, vars_files: [VARS], roles: [allocate]}
- {name: containers on every node, hosts: nodes, vars_files: [VARS], roles: [container-up]}
- name: replicas
  hosts: workers
  vars_files: [VARS]
  roles: [{role: serving-worker, worker_role: regular, worker_group: workers}]
- {name: front door, hosts: router, vars_files: [VARS], roles: [router]}
- {name: telemetry on every node, hosts: nodes, vars_files: [VARS], roles: [telemetry]}
- {name: benchmark, hosts: bench, vars_files: [VARS], roles: [benchmark]}
"""


@dataclass
class Rendered:
    argv: list[str]
    rc: int
    stdout: str
    stderr: str

    @property
    def plan(self) -> dict[str, Any]:
        assert self.rc == 0, self.explain()
        return json.loads(self.stdout)

    def explain(self) -> str:
        return f"$ {' '.join(self.argv)}\nexit {self.rc}\n--- stderr ---\n{self.stderr[-4000:]}"


class Workspace:
    """The scratch directory the dry-runs run in, with the inventory and playbooks."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.slurm_inventory = path / "slurm-inventory.yaml"
        self.slurm_inventory.write_text(SLURM_INVENTORY)
        if AGG_PLAYBOOK.exists():
            self.agg_playbook = AGG_PLAYBOOK
        else:
            self.agg_playbook = path / "llama70b-aggregated.yaml"
            self.agg_playbook.write_text(AGG_FALLBACK.replace("VARS", str(REPO / "playbooks" / "vars" / "llama70b.yaml")))
        # Slurm's commands, first on PATH: each records its call and fails (a dry-run runs none)
        self.slurm_log = path / "slurm-calls.log"
        fake_bin = path / "slurm-bin"
        fake_bin.mkdir()
        for name in SLURM_COMMANDS:
            tool = fake_bin / name
            tool.write_text(f'#!/bin/sh\necho "{name} $*" >> {shlex.quote(str(self.slurm_log))}\nexit 1\n')
            tool.chmod(0o755)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SMLPLAY_"))}
        self.env.update(
            SMLPLAY_RUNS_DIR=str(path / "runs"),
            SMLPLAY_ROLES_PATH=str(REPO / "roles"),
            PYTHONPATH=str(ENGINE_ROOT),
            PATH=f"{fake_bin}{os.pathsep}{os.environ.get('PATH', '')}",
            COLUMNS="200",
        )

    def slurm_calls(self) -> list[str]:
        return self.slurm_log.read_text().splitlines() if self.slurm_log.exists() else []

    def smlplay(self, *args: str, timeout: float = 120) -> Rendered:
        argv = [sys.executable, "-m", "engine", *args]
        proc = subprocess.run(argv, cwd=self.path, env=self.env, capture_output=True, text=True, timeout=timeout)
        return Rendered(argv[1:], proc.returncode, proc.stdout, proc.stderr)

    def dry_run(self, playbook: Path | str, inventory: Path | str, *extra: str) -> Rendered:
        return self.smlplay("run", str(playbook), "-i", str(inventory), "--dry-run", "--format", "json", *extra)

    def render(self, config: Config) -> Rendered:
        playbook = PD_PLAYBOOK if config.mode == "pd" else self.agg_playbook
        inventory = self.slurm_inventory if config.scheduler == "slurm" else REPO / "inventory" / "local.yaml"
        return self.dry_run(playbook, inventory, *config.extra_vars())


def _workers() -> int:
    return max(2, min(8, os.cpu_count() or 2))


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("matrix"))


@pytest.fixture(scope="session")
def rendered(request: pytest.FixtureRequest, workspace: Workspace) -> Iterator[dict[str, cf.Future[Rendered]]]:
    """Config id -> its dry-run, all configurations of this session rendered in parallel."""
    configs: dict[str, Config] = {}
    for item in request.session.items:
        cfg = getattr(item, "callspec", None) and item.callspec.params.get("cfg")
        skipped = any(m.kwargs.get("run") is False for m in item.iter_markers("xfail"))
        if isinstance(cfg, Config) and not skipped:
            configs.setdefault(cfg.id, cfg)
    with cf.ThreadPoolExecutor(max_workers=_workers(), thread_name_prefix="matrix") as pool:
        yield {cid: pool.submit(workspace.render, cfg) for cid, cfg in configs.items()}


@pytest.fixture
def render(rendered: dict[str, cf.Future[Rendered]], workspace: Workspace) -> Any:
    def get(cfg: Config) -> Rendered:
        future = rendered.get(cfg.id)
        return future.result() if future is not None else workspace.render(cfg)

    return get


# ----------------------------------------------------------------------------------------
# the real flag sets
# ----------------------------------------------------------------------------------------
def sglang_server_args_path() -> Path | None:
    """SGLang 0.5.9's ``srt/server_args.py`` from the installed wheel (found, not imported:
    importing it needs torch)."""
    spec = importlib.util.find_spec("sglang")
    if spec is None or not spec.submodule_search_locations:
        return None
    try:
        if importlib.metadata.version("sglang") != SGLANG_VERSION:
            return None
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "srt" / "server_args.py"
    return path if path.is_file() else None


@pytest.fixture(scope="session")
def sglang_flags() -> dict[str, dict[str, FlagSpec]]:
    """SGLang version -> its ServerArgs flags, as recorded from the wheels
    (``tests/matrix/sglang_flags/<version>.json``): the version the simulator speaks and the
    newest on PyPI. A rendered flag must exist, unchanged in arity, in every one."""
    tables = {v: sglang_flags_recorded(v) for v in SGLANG_FLAG_VERSIONS}
    for version, table in tables.items():
        assert len(table) > 300, f"only {len(table)} flags recorded for SGLang {version}"
    return tables


@pytest.fixture(scope="session")
def router_parser() -> dict[str, Any]:
    """Each router implementation's own command-line parsing: smg 1.13's and sglang-router
    0.3.2's ``launch_router.parse_router_args`` (argparse with ``RouterArgs.add_cli_args``,
    then ``RouterArgs.from_cli_args``)."""
    assert importlib.metadata.version("sglang-router") == "0.3.2"
    assert importlib.metadata.version("smg") == "1.13.0"
    from sglang_router.launch_router import parse_router_args as sglang_router_args
    from smg.launch_router import parse_router_args as smg_args

    return {"smg": smg_args, "sglang-router": sglang_router_args}


# ----------------------------------------------------------------------------------------
# engine bugs that break every configuration: detected, not assumed
# ----------------------------------------------------------------------------------------
PROBE_SLURM = """\
- hosts: scheduler
  roles: [allocate]
- hosts: nodes
  tasks:
    - set_fact: {probe_fact: 1}
    - debug: {msg: after the fact}
"""
PROBE_ASSERT = """\
- hosts: localhost
  tasks:
    - assert: {that: 1 == 2, fail_msg: certainly false}
    - debug: {msg: unreachable}
"""
PROBE_MAYBE_FAIL = """\
- hosts: localhost
  tasks:
    - command: "true"
      register: r
    - fail: {msg: only if it failed}
      when: r.rc != 0
    - debug: {msg: after the maybe-failure}
"""


@dataclass(frozen=True)
class EngineProbe:
    key: str
    playbook: str
    inventory: str  # "slurm" or "implicit"
    extra: tuple[str, ...]
    description: str
    #: which tests it breaks: "matrix" (every check of every Slurm config), "refusals"
    #: (the negative cases and render-time checks), "plans" (every positive config)
    scope: str

    def present(self, result: Rendered) -> bool:
        """The bug's own signature only: any other failure of a probe is not this bug, and
        must not turn the matrix into xfails."""
        if self.key == "E1":
            return result.rc == 3 and "UnknownValue" in result.stderr
        if self.key == "E2":
            return result.rc == 0
        return result.rc == 0 and "after the maybe-failure" not in result.stdout


ENGINE_PROBES = [
    EngineProbe(
        "E1", PROBE_SLURM, "slurm", ("-e", json.dumps({"layout": {"workers": {"workers": 1, "tp": 8}}})),
        "engine bug: a dry-run with scheduler slurm dies at the first set_fact on an srun host "
        "(engine/transport/srun.py from_vars calls bool() on the placeholder <job id>/<node N>; "
        "runner._run_item opens a real transport for set_fact even in a dry-run)",
        "matrix",
    ),
    EngineProbe(
        "E2", PROBE_ASSERT, "implicit", (),
        "engine bug: an assert that fails whatever happens does not fail the dry-run "
        "(render_plan checks runner.hosts[h].failed, which nothing sets)",
        "refusals",
    ),
    EngineProbe(
        "E2b", PROBE_MAYBE_FAIL, "implicit", (),
        "engine bug: a `fail` whose `when` depends on the run ends the dry-run's plan there "
        "(the router's smoke-test check drops the telemetry and benchmark plays)",
        "plans",
    ),
]


def _probe(workspace: Workspace, probe: EngineProbe) -> tuple[EngineProbe, Rendered]:
    path = workspace.path / f"probe-{probe.key}.yaml"
    path.write_text(probe.playbook)
    if probe.inventory == "slurm":
        result = workspace.dry_run(path, workspace.slurm_inventory, *probe.extra)
    else:
        result = workspace.smlplay("run", str(path), "--dry-run", "--format", "json", *probe.extra)
    return probe, result


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    mine = [i for i in items if i.path.parent == Path(__file__).parent]
    if not mine:
        return
    with tempfile.TemporaryDirectory(prefix="matrix-probes-") as tmp, cf.ThreadPoolExecutor(len(ENGINE_PROBES)) as pool:
        workspace = Workspace(Path(tmp))
        results = list(pool.map(lambda p: _probe(workspace, p), ENGINE_PROBES))
    present = [(p, r) for p, r in results if p.present(r)]
    for item in mine:
        cfg = getattr(item, "callspec", None) and item.callspec.params.get("cfg")
        uses = set(getattr(item.function, "engine_scopes", ()))  # type: ignore[attr-defined]
        for probe, result in present:
            hit = probe.scope in uses
            if isinstance(cfg, Config):
                hit = (probe.scope == "matrix" and cfg.scheduler == "slurm" and not cfg.refused_early and "matrix" in uses) or (
                    probe.scope == "plans" and cfg.expect_rc == 0 and "plans" in uses
                ) or (probe.scope == "refusals" and cfg.expect_rc != 0 and "refusals" in uses)
            if hit:
                last = (result.stderr.strip().splitlines() or ["(no error)"])[-1]
                item.add_marker(pytest.mark.xfail(run=False, reason=f"{probe.key}: {probe.description}; probe: {last[:200]}"))
