"""Where roles and YAML files are found.

Roles are found on a search path: ``<playbook dir>/roles``, ``./roles``, every entry of
``$SMLPLAY_ROLES_PATH``, then the built-in roles shipped with the package. The first match
wins, so a team can shadow a built-in role with its own copy.
"""

from __future__ import annotations

import os
from pathlib import Path

YAML_SUFFIXES = (".yaml", ".yml")


def builtin_roles_dir() -> Path | None:
    """Roles shipped with the package (a wheel), or the source tree's ``roles/``."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "builtin_roles", here.parent / "roles"):
        if candidate.is_dir():
            return candidate
    return None


def default_roles_path(playbook_dir: Path | None = None) -> list[Path]:
    paths: list[Path] = []
    if playbook_dir is not None:
        paths.append(playbook_dir / "roles")
    paths.append(Path.cwd() / "roles")
    paths.extend(Path(p) for p in os.environ.get("SMLPLAY_ROLES_PATH", "").split(os.pathsep) if p)
    builtin = builtin_roles_dir()
    if builtin is not None:
        paths.append(builtin)
    unique: list[Path] = []
    for p in paths:
        if p.resolve() not in [u.resolve() for u in unique]:
            unique.append(p)
    return unique


def find_yaml(base: Path, stem: str = "main") -> Path | None:
    for suffix in YAML_SUFFIXES:
        candidate = base / f"{stem}{suffix}"
        if candidate.exists():
            return candidate
    return None


