"""SGLang's ``launch_server`` flags, read from a wheel's source with ``ast`` (importing SGLang
needs torch), and recorded per version as ``tests/matrix/sglang_flags/<version>.json``.

Two layouts exist:

* up to 0.5.9: ``sglang/srt/server_args.py`` calls ``parser.add_argument("--flag", ...)``;
* later (0.5.2x): ``ServerArgs.add_cli_args`` calls ``add_cli_args_from_dataclass``, which
  derives flags from the ``A[T, "help"]`` / ``A[T, Arg(...)]`` fields of the namespace classes
  in ``sglang/srt/arg_groups/fields/*.py`` (listed in ``_INPUT_NAMESPACES``), plus a few
  manual ``add_argument`` calls. The rules mirror ``arg_groups/arg_utils.py``: the flag is
  ``cli_name`` or ``--field-name``, plus ``aliases``; ``no_cli`` skips the field; ``bool`` is
  ``store_true``; ``List[X]`` takes ``nargs`` or "+"; ``BooleanOptionalAction`` adds ``--no-X``.

Re-derive a recorded version (downloads the wheel, no dependencies)::

    python -m tests.matrix.sglang_flags.extract 0.5.23 [--wheel PATH]
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SERVER_ARGS = "sglang/srt/server_args.py"
FIELDS_DIR = "sglang/srt/arg_groups/fields/"

#: one flag: the first name of its argument (aliases share it), values it takes, deprecated
Flag = dict[str, Any]


def _nargs_of(node: ast.expr | None) -> int | str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str | int):
        return node.value
    return 1  # nargs=None (argparse's default) or computed: one value


def _add_argument_calls(tree: ast.AST) -> Iterator[tuple[list[str], Flag]]:
    """``parser.add_argument("--a", "--b", ...)`` calls: (names, spec)."""
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_argument"):
            continue
        names = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str) and a.value.startswith("--")]
        if not names:
            continue
        kw = {k.arg: k.value for k in node.keywords if k.arg}
        action = ast.unparse(kw["action"]).strip("'\"") if "action" in kw else ""
        nargs: int | str = 1
        if action in ("store_true", "store_false", "DeprecatedAction", "DeprecatedStoreTrueAction"):
            nargs = 0
        if "nargs" in kw:
            nargs = _nargs_of(kw["nargs"])
        yield names, {"canonical": names[0], "nargs": nargs, "deprecated": action.startswith("Deprecated")}


def _type_shape(node: ast.expr) -> tuple[str, ast.expr | None]:
    """('bool' | 'list' | 'scalar', element) of a field type, Optional[...] and `| None` removed."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        parts = [p for p in (node.left, node.right) if not (isinstance(p, ast.Constant) and p.value is None)]
        return _type_shape(parts[0]) if len(parts) == 1 else ("scalar", None)
    if isinstance(node, ast.Subscript):
        head = ast.unparse(node.value).split(".")[-1]
        if head == "Optional":
            return _type_shape(node.slice)
        if head in ("List", "list"):
            return "list", node.slice
        return "scalar", None
    if isinstance(node, ast.Name) and node.id == "bool":
        return "bool", None
    return "scalar", None


def _field_flags(cls: ast.ClassDef) -> Iterator[tuple[list[str], Flag]]:
    """The flags ``add_cli_args_from_dataclass`` derives from one namespace class."""
    for stmt in cls.body:
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
            continue
        ann = stmt.annotation
        if not (isinstance(ann, ast.Subscript) and ast.unparse(ann.value) in ("A", "Annotated") and isinstance(ann.slice, ast.Tuple)):
            continue
        raw, *meta = ann.slice.elts
        arg: dict[str, ast.expr] | None = None
        for m in meta:
            if isinstance(m, ast.Constant) and isinstance(m.value, str):
                arg = {}
                break
            if isinstance(m, ast.Call) and ast.unparse(m.func) == "Arg":
                arg = {k.arg: k.value for k in m.keywords if k.arg}
                break
        if arg is None:
            continue  # Derived / NS only: not a CLI input
        if isinstance(arg.get("no_cli"), ast.Constant) and arg["no_cli"].value is True:
            continue
        field = stmt.target.id
        cli = arg["cli_name"].value if isinstance(arg.get("cli_name"), ast.Constant) else "--" + field.replace("_", "-")
        aliases = [e.value for e in arg["aliases"].elts] if isinstance(arg.get("aliases"), ast.List) else []  # type: ignore[attr-defined]
        names = [cli, *aliases]
        action = ast.unparse(arg["action"]) if "action" in arg else ""
        nargs: int | str
        if action:
            nargs = 1
            kwargs = arg.get("action_kwargs")
            if isinstance(kwargs, ast.Dict):
                for k, v in zip(kwargs.keys, kwargs.values, strict=True):
                    if isinstance(k, ast.Constant) and k.value == "nargs":
                        nargs = _nargs_of(v)
            if action.endswith("BooleanOptionalAction"):
                nargs = 0
                negated = ["--no-" + n[2:] for n in names]
                yield negated, {"canonical": negated[0], "nargs": 0, "deprecated": False}
            elif action.strip("'\"") in ("store_true", "store_false"):
                nargs = 0
        else:
            shape, _ = _type_shape(raw)
            has_parser = "type_parser" in arg
            if shape == "bool":
                nargs = 0
            elif shape == "list" and not has_parser:
                nargs = _nargs_of(arg["nargs"]) if "nargs" in arg else "+"
            else:
                nargs = _nargs_of(arg["nargs"]) if "nargs" in arg else 1
        yield names, {"canonical": names[0], "nargs": nargs, "deprecated": action.startswith("Deprecated")}


def _namespaces(tree: ast.Module) -> list[str]:
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_INPUT_NAMESPACES" for t in stmt.targets):
            assert isinstance(stmt.value, ast.List)
            return [ast.unparse(e) for e in stmt.value.elts]
    return []


def flags_from_wheel(wheel: Path) -> tuple[dict[str, Flag], dict[str, str]]:
    """Every flag of the wheel's ServerArgs, and the sha256 of each source file read."""
    table: dict[str, Flag] = {}
    sources: dict[str, str] = {}

    def add(found: Iterator[tuple[list[str], Flag]]) -> None:
        for names, spec in found:
            for name in names:
                table[name] = spec

    with zipfile.ZipFile(wheel) as zf:
        def read(name: str) -> ast.Module:
            data = zf.read(name)
            sources[name] = hashlib.sha256(data).hexdigest()
            return ast.parse(data, filename=name)

        server_args = read(SERVER_ARGS)
        wanted = _namespaces(server_args)
        if wanted:
            classes: dict[str, ast.ClassDef] = {}
            for name in sorted(n for n in zf.namelist() if n.startswith(FIELDS_DIR) and n.endswith(".py")):
                for node in read(name).body:
                    if isinstance(node, ast.ClassDef):
                        classes[node.name] = node
            missing = [c for c in wanted if c not in classes]
            if missing:
                raise SystemExit(f"{wheel.name}: namespace classes not found under {FIELDS_DIR}: {missing}")
            for c in wanted:
                add(_field_flags(classes[c]))
        add(_add_argument_calls(server_args))  # manual registrations win, as in argparse
    return table, sources


def record(version: str, wheel: Path) -> Path:
    table, sources = flags_from_wheel(wheel)
    out = HERE / f"{version}.json"
    out.write_text(
        json.dumps(
            {
                "version": version,
                "wheel": wheel.name,
                "sources": sources,
                "regenerate": f"python -m tests.matrix.sglang_flags.extract {version}",
                "flags": dict(sorted(table.items())),
            },
            indent=1,
        )
        + "\n"
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("version")
    parser.add_argument("--wheel", type=Path, help="a downloaded sglang wheel (default: pip download it)")
    args = parser.parse_args(argv)
    if args.wheel:
        path = record(args.version, args.wheel)
    else:
        with tempfile.TemporaryDirectory(prefix="sglang-wheel-") as tmp:
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp, f"sglang=={args.version}"], check=True)
            wheel = next(Path(tmp).glob("sglang-*.whl"))
            path = record(args.version, wheel)
    print(f"{path}: {len(json.loads(path.read_text())['flags'])} flags")
    return 0


if __name__ == "__main__":
    sys.exit(main())
