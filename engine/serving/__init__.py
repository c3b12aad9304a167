"""What the serving roles know about an inference deployment, as plain functions.

Roles stay declarative YAML; the arithmetic they would otherwise do in Jinja lives here and
is exposed as filters (registered in :mod:`engine.filters`):

* :mod:`.placement`: workers of a role (prefill, decode, workers) over the nodes of its
  group: GPUs per worker, nodes per worker, ranks, ports.
* :mod:`.flags`: generated command-line flags merged with user flags, one winner per flag.
* :mod:`.profiling`: the ``profile:`` variable: which workers, torch or nsys, steps or window.
"""

from engine.serving.flags import merge_flags, render_flags
from engine.serving.placement import (
    WorkerGroup,
    allocation_layout,
    nodes_for,
    place_workers,
    ranks_on,
    worker_endpoints,
)
from engine.serving.profiling import nsys_prefix, profile_summary, profile_targets

__all__ = [
    "WorkerGroup",
    "allocation_layout",
    "merge_flags",
    "nodes_for",
    "nsys_prefix",
    "place_workers",
    "profile_summary",
    "profile_targets",
    "ranks_on",
    "render_flags",
    "worker_endpoints",
]
