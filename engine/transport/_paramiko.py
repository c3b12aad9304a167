"""paramiko, imported without what it imports only to use rarely.

- ``paramiko.config`` imports invoke (fabric's task runner: asyncio, unittest.mock, ...) at
  import time, only to run ``Match exec`` lines of an ssh config: about 40% of importing
  paramiko. invoke is held back, and a stand-in imports it the first time a ``Match exec``
  line runs.
- ``paramiko/__init__`` imports ``importlib.metadata`` (email, zipfile, csv: ~14 ms, a third
  of what is left) only to ask it paramiko's own version. That version is read from the
  ``METADATA`` file beside the package, where ``importlib.metadata`` would read it; when
  that file is not where pip puts it (an egg, a zip, a distribution's own layout),
  paramiko imports the real module as usual.

Every SSH run pays this import before its first connection.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from types import ModuleType
from typing import Any

__all__ = ["load"]


class _InvokeOnUse:
    """Stands for the ``invoke`` module in ``paramiko.config`` until it is used."""

    def __getattr__(self, name: str) -> Any:
        return getattr(importlib.import_module("invoke"), name)


class _OwnVersion(ModuleType):
    """Stands for ``importlib.metadata`` while paramiko imports: knows one version, and
    hands anything else to the real module."""

    def __init__(self, name: str, version: str) -> None:
        super().__init__("importlib.metadata")
        self._known = (name, version)

    def version(self, name: str) -> str:
        if name == self._known[0]:
            return self._known[1]
        return str(self._real().version(name))

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._real(), attr)

    def _real(self) -> ModuleType:
        if sys.modules.get("importlib.metadata") is self:
            del sys.modules["importlib.metadata"]
        return importlib.import_module("importlib.metadata")


def _installed_version(package: str) -> str | None:
    """``Version:`` of the one ``<package>-*.dist-info`` beside the package, else None."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.origin:
        return None
    site = os.path.dirname(os.path.dirname(spec.origin))
    try:
        infos = [n for n in os.listdir(site) if n.startswith(package + "-") and n.endswith(".dist-info")]
        if len(infos) != 1:
            return None
        with open(os.path.join(site, infos[0], "METADATA"), encoding="utf-8") as f:
            for line in f:
                if line.startswith("Version:"):
                    return line.split(":", 1)[1].strip() or None
                if not line.strip():  # the headers end at the first blank line
                    return None
    except OSError:
        return None
    return None


def load() -> ModuleType:
    """``import paramiko``, without importing invoke or importlib.metadata (see the module
    docstring)."""
    already = sys.modules.get("paramiko")
    if already is not None:
        return already
    held = "invoke" not in sys.modules
    if held:
        sys.modules["invoke"] = None  # type: ignore[assignment]  # `import invoke` raises ImportError
    stand_in: _OwnVersion | None = None
    if "importlib.metadata" not in sys.modules and (version := _installed_version("paramiko")) is not None:
        stand_in = sys.modules["importlib.metadata"] = _OwnVersion("paramiko", version)
    try:
        import paramiko
        import paramiko.config
    finally:
        if held and sys.modules.get("invoke", ...) is None:
            del sys.modules["invoke"]
        if stand_in is not None:
            if sys.modules.get("importlib.metadata") is stand_in:
                del sys.modules["importlib.metadata"]
            if importlib.__dict__.get("metadata") is stand_in:
                del importlib.metadata
    if paramiko.config.invoke is None:
        paramiko.config.invoke = _InvokeOnUse()
    return paramiko
