"""paramiko, imported without invoke.

paramiko's ``config`` module imports invoke (fabric's task runner: asyncio, unittest.mock,
...) at import time, only to run ``Match exec`` lines of an ssh config. That is about 40% of
importing paramiko, paid by every SSH run. Here paramiko is imported with invoke held back
and given a stand-in that imports invoke the first time a ``Match exec`` line runs.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any

__all__ = ["load"]


class _InvokeOnUse:
    """Stands for the ``invoke`` module in ``paramiko.config`` until it is used."""

    def __getattr__(self, name: str) -> Any:
        return getattr(importlib.import_module("invoke"), name)


def load() -> ModuleType:
    """``import paramiko``, without importing invoke (see the module docstring)."""
    already = sys.modules.get("paramiko")
    if already is not None:
        return already
    held = "invoke" not in sys.modules
    if held:
        sys.modules["invoke"] = None  # type: ignore[assignment]  # `import invoke` raises ImportError
    try:
        import paramiko
        import paramiko.config
    finally:
        if held and sys.modules.get("invoke", ...) is None:
            del sys.modules["invoke"]
    if paramiko.config.invoke is None:
        paramiko.config.invoke = _InvokeOnUse()
    return paramiko
