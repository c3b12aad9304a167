"""The run's last lines: where its metrics are and one query that shows its series.

The telemetry role records its store in ``<run>/telemetry.json`` (URL, data directory,
a query by the run's ``slurm_job_id`` label). The per-run VictoriaMetrics stops with the
run, so the lines also say how to serve the kept data again.
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path


def metrics_lines(run_dir: Path) -> list[str]:
    """Nothing when the run had no local store (telemetry off, skipped, or remote-write)."""
    try:
        info = json.loads((run_dir / "telemetry.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(info, dict) or not info.get("url"):
        return []
    url, query = str(info["url"]).rstrip("/"), str(info.get("query") or "")
    data_dir = _short(str(info.get("data_dir", "")))
    binary = str(info.get("victoria_metrics_bin") or "victoria-metrics")
    listen = url.split("://", 1)[-1]
    return [
        f"metrics: {url} (VictoriaMetrics on {info.get('store_host')}, until the run ends)",
        f"  query: curl -s {url}/api/v1/query --data-urlencode {shlex.quote('query=' + query)}",
        f"  later: {binary} -storageDataPath={shlex.quote(data_dir)} -httpListenAddr={listen}",
    ]


def _short(path: str) -> str:
    """A path under the working directory, relative to it (what a person types next)."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return rel if not rel.startswith("..") else path
