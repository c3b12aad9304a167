"""The recorded SGLang flag tables (``sglang_flags/<version>.json``) and their extractor.

The 0.5.9 record is checked against the installed wheel's ``server_args.py``; the extractor's
dataclass layout (SGLang 0.5.2x) is checked on a small wheel built here; a flag that exists in
only one of the versions, or is deprecated in one, is an error naming that version, both in
:func:`parse_flags` and in a real dry-run.
"""

from __future__ import annotations

import json
import os
import textwrap
import zipfile
from pathlib import Path

import pytest

from tests.matrix.checks import (
    command_after,
    parse_flags,
    sglang_flags_from_source,
    sglang_flags_recorded,
)
from tests.matrix.conftest import (
    PD_PLAYBOOK,
    REPO,
    SGLANG_FLAG_VERSIONS,
    SGLANG_VERSION,
    Workspace,
    sglang_server_args_path,
)
from tests.matrix.sglang_flags.extract import flags_from_wheel

NEWEST = SGLANG_FLAG_VERSIONS[-1]


def test_the_0_5_9_record_is_the_installed_wheel() -> None:
    path = sglang_server_args_path()
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI checks the recorded flags against sglang=={SGLANG_VERSION}: pip install --no-deps sglang=={SGLANG_VERSION}")
        pytest.skip(f"sglang=={SGLANG_VERSION} is not installed")
    assert sglang_flags_from_source(path) == sglang_flags_recorded(SGLANG_VERSION)


def test_every_record_names_its_source() -> None:
    for version in SGLANG_FLAG_VERSIONS:
        data = json.loads((REPO / "tests" / "matrix" / "sglang_flags" / f"{version}.json").read_text())
        assert data["version"] == version and data["wheel"].startswith(f"sglang-{version}-")
        assert "sglang/srt/server_args.py" in data["sources"]
        assert data["regenerate"] == f"python -m tests.matrix.sglang_flags.extract {version}"
    newest = sglang_flags_recorded(NEWEST)
    assert newest["--tp-size"].canonical == newest["--tensor-parallel-size"].canonical
    assert newest["--enable-dp-attention"].deprecated  # 0.5.2x: use --attn-dp-size


def test_the_extractor_reads_dataclass_fields(tmp_path: Path) -> None:
    server_args = '''
        class ServerArgs:
            @staticmethod
            def add_cli_args(parser):
                add_cli_args_from_dataclass(parser, ServerArgs)
                parser.add_argument("--config", type=str)
                parser.add_argument("--old-flag", action=DeprecatedStoreTrueAction, new_flag="--x")
        _INPUT_NAMESPACES = [Parallel]
    '''
    fields = '''
        class Parallel(msgspec.Struct):
            _NS_PATH = "parallel"
            tp_size: A[int, Arg(help="TP.", aliases=["--tensor-parallel-size"])] = 1
            nnodes: A[int, "The number of nodes."] = 1
            trust: A[bool, "Trust."] = False
            devices: A[Optional[List[str]], "Devices."] = None
            pairs: A[List[str], Arg(help="Pairs.", nargs="*")] = []
            parsed: A[List[int], Arg(help="As one string.", type_parser=json_list_type)] = []
            overlap: A[bool, Arg(help="On or off.", action=argparse.BooleanOptionalAction)] = True
            renamed: A[str | None, Arg(help="x", cli_name="--other-name")] = None
            hidden: A[int, Arg(help="No CLI.", no_cli=True)] = 0
            rank: A[int, Derived(doc="set at run time")] = 0
    '''
    wheel = tmp_path / "sglang-9.9.9-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("sglang/srt/server_args.py", textwrap.dedent(server_args))
        zf.writestr("sglang/srt/arg_groups/fields/parallel.py", textwrap.dedent(fields))
    table, sources = flags_from_wheel(wheel)
    nargs = {name: (spec["nargs"], spec["canonical"], spec["deprecated"]) for name, spec in table.items()}
    assert nargs == {
        "--tp-size": (1, "--tp-size", False),
        "--tensor-parallel-size": (1, "--tp-size", False),
        "--nnodes": (1, "--nnodes", False),
        "--trust": (0, "--trust", False),
        "--devices": ("+", "--devices", False),
        "--pairs": ("*", "--pairs", False),
        "--parsed": (1, "--parsed", False),
        "--overlap": (0, "--overlap", False),
        "--no-overlap": (0, "--no-overlap", False),
        "--other-name": (1, "--other-name", False),
        "--config": (1, "--config", False),
        "--old-flag": (0, "--old-flag", True),
    }
    assert set(sources) == {"sglang/srt/server_args.py", "sglang/srt/arg_groups/fields/parallel.py"}


@pytest.fixture(scope="module")
def tables() -> dict[str, dict[str, object]]:
    return {v: sglang_flags_recorded(v) for v in SGLANG_FLAG_VERSIONS}  # type: ignore[misc]


def test_a_flag_of_one_version_only_is_an_error_naming_the_other(tables: dict) -> None:  # type: ignore[type-arg]
    old, new = (set(t) for t in tables.values())
    only_new = sorted(new - old)[0]
    _, errors = parse_flags(["--cuda-graph-max-bs", "256", only_new, "1", "--tp-size", "8"], tables)
    assert f"--cuda-graph-max-bs is not a flag of SGLang {NEWEST}'s ServerArgs (only in SGLang {SGLANG_VERSION})" in errors, errors
    assert f"{only_new} is not a flag of SGLang {SGLANG_VERSION}'s ServerArgs (only in SGLang {NEWEST})" in errors, errors
    assert not [e for e in errors if "--tp-size" in e]
    _, errors = parse_flags(["--enable-dp-attention"], tables)
    assert errors == [f"--enable-dp-attention is deprecated in SGLang {NEWEST}"]
    _, errors = parse_flags(["--tp-size", "8", "--tensor-parallel-size", "8"], tables)
    assert len(errors) == len(SGLANG_FLAG_VERSIONS) and all("same flag" in e for e in errors), errors


def test_a_rendered_flag_missing_from_the_newest_release_is_reported(workspace: Workspace, tables: dict) -> None:  # type: ignore[type-arg]
    result = workspace.dry_run(PD_PLAYBOOK, REPO / "inventory" / "local.yaml", "-e", json.dumps({"sglang_args": {"cuda-graph-max-bs": 256}}))
    assert result.rc == 0, result.explain()
    scripts = [s for _, s in _launch_scripts(result.plan)]
    assert scripts
    for text in scripts:
        _, errors = parse_flags(command_after(text, "-m engine.sim") or [], tables, ignore_prefix="--sim-")
        assert errors == [f"--cuda-graph-max-bs is not a flag of SGLang {NEWEST}'s ServerArgs (only in SGLang {SGLANG_VERSION})"], errors


def _launch_scripts(plan: dict) -> list[tuple[dict, str]]:  # type: ignore[type-arg]
    from tests.matrix.test_rendering_matrix import worker_scripts

    return worker_scripts(plan)
