"""The compact run view: a live region on a terminal, plain lines in pipes.

:func:`make_sink` picks what ``smlplay run`` draws with: JSON events (``--output json``),
the Ansible-style log (``-v``; ``-vv`` adds stdout/stderr), the live view on a terminal,
else plain compact lines. Everything heavy is imported here, on use.
"""

from __future__ import annotations

import os
import sys
from typing import Any


def make_sink(output: str = "text", verbosity: int = 0, *, stream: Any = None) -> Any:
    """The display for a run: ``close()`` it when the run is over (it stops a live region)."""
    if output == "json":
        from engine.display import JsonDisplay

        return JsonDisplay()
    if verbosity > 0:
        from engine.display import TextDisplay

        return TextDisplay(verbosity=verbosity - 1)
    stream = stream or sys.stdout
    if _is_terminal(stream):
        from engine.live.terminal import LiveDisplay

        return LiveDisplay()
    from engine.live.plain import PlainDisplay

    return PlainDisplay(stream)


def close_sink(sink: Any) -> None:
    close = getattr(sink, "close", None)
    if callable(close):
        close()


def _is_terminal(stream: Any) -> bool:
    if os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
