"""One self-contained HTML page of a report: tables and the PNG plots embedded as data
URIs, no external request, to attach to a review."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from pathlib import Path

from engine.results.compare import BEST, COLUMNS, compare, fmt_value, run_header
from engine.results.schema import RunResult

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3} td.l,th.l{text-align:left}
td.best{font-weight:bold;color:#106b21}
img{max-width:100%;border:1px solid #ddd;margin:0.5em 0}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def render_html(runs: Sequence[RunResult], images: Mapping[str, Path], *, title: str) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<p>{len(runs)} run(s), {sum(len(r.points) for r in runs)} point(s)</p>",
        "<h2>Points</h2>",
        '<table id="points"><thead><tr><th class="l">run</th><th class="l">parameters</th>'
        + "".join(f"<th>{_e(m.label)}</th>" for m in COLUMNS)
        + "</tr></thead><tbody>",
    ]
    for run in runs:
        params = " ".join(f"{k}={v}" for k, v in run.deployment.params.items())
        for p in run.points:
            flat = p.flat()
            parts.append(
                f'<tr class="point" data-run="{_e(run.run_id)}"><td class="l">{_e(run.name)}</td><td class="l">{_e(params)}</td>'
                + "".join(f"<td>{_e(fmt_value(m, flat.get(m.key)))}</td>" for m in COLUMNS)
                + "</tr>"
            )
    parts.append("</tbody></table>")
    for run in runs:
        parts.append(f"<p>{_e(run_header(run))}</p>")
    rows = compare(runs)
    if rows:
        parts.append(f"<h2>Comparison ({BEST} better; deltas vs {_e(runs[0].name)})</h2>")
        parts.append('<table id="comparison"><thead><tr><th>conc</th><th class="l">metric</th>' + "".join(f"<th>{_e(r.name)}</th>" for r in runs) + "</tr></thead><tbody>")
        for row in rows:
            cells = []
            for i in range(len(runs)):
                text = fmt_value(row.metric, row.values[i])
                if i > 0 and row.deltas[i] is not None:
                    text += f" ({row.deltas[i]:+.1f}%)"
                best = row.best == i
                cells.append(f'<td{" class=best" if best else ""}>{_e(text)}{" " + BEST if best else ""}</td>')
            parts.append(f'<tr><td>{row.concurrency}</td><td class="l">{_e(row.metric.label)}</td>{"".join(cells)}</tr>')
        parts.append("</tbody></table>")
    parts.append("<h2>Plots</h2>")
    for name, path in images.items():
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        parts.append(f'<figure><img class="plot" alt="{_e(name)}" src="data:image/png;base64,{data}"><figcaption>{_e(name)}</figcaption></figure>')
    parts.append("</body></html>")
    return "\n".join(parts)
