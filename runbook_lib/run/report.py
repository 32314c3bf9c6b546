"""The run's archive: ``report.html``, one offline page a person reads, and the run's redacted parameters.

The page opens with the run's verdict, one table of key figures (:func:`key_figures`, read from the
figures the phases recorded with :func:`runbook_lib.core.record.record`, merged into ``summary.json``
by the runner), the failover test's row-count and lag plots (PNG, inline, taken from the executed
``07_failover_test`` notebook) and the phases' table; then every executed notebook.  Raw JSON stays in
``summary.json``.  Offline: no script, style sheet or font is fetched (nbconvert's ``lab`` template
without its require.js, MathJax, mermaid and widget loaders); widget outputs (the Apply buttons) are
left out, the line each printed stays.  A print style sheet puts the summary on its own page.
"""
from __future__ import annotations

import html
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

#: (marker in a cell of the failover notebook, the plot's title in the report)
FAILOVER_PLOTS = (("counts_figure(", "Failover test: rows on both sides"),
                  ("lag_figure(", "Failover test: lag of each direction"))
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_css -%}<style>{{ resources.runbook_css }}</style>{%- endblock html_head_css -%}
{%- block body_header -%}{{ super() }}{{ resources.runbook_summary }}{%- endblock body_header -%}
"""

CSS = """
.runbook-summary { font-family: system-ui, sans-serif; max-width: 1100px; margin: 0 auto 2em; }
.runbook-verdict { font-size: 1.5em; font-weight: bold; padding: .5em .8em; border-radius: 4px; color: #fff; }
.runbook-verdict.ok { background: #2e7d32; } .runbook-verdict.failed { background: #c62828; }
.runbook-verdict small { display: block; font-size: .6em; font-weight: normal; }
.runbook-summary table { border-collapse: collapse; margin: .8em 0; }
.runbook-summary th, .runbook-summary td { border: 1px solid #ccc; padding: 3px 10px; text-align: left;
  vertical-align: top; }
.runbook-summary th { background: #f3f3f3; }
.runbook-summary tr.failed td { background: #fde7e9; } .runbook-summary tr.ok td { background: #e6f4ea; }
.runbook-plot img { max-width: 100%; border: 1px solid #ddd; }
.runbook-notebook { margin-top: 2em; border-top: 2px solid #999; font-family: system-ui, sans-serif; }
@media print {
  @page { margin: 1.5cm; }
  .runbook-summary { page-break-after: always; }
  .runbook-notebook { page-break-before: always; border: none; }
  .jp-InputPrompt, .jp-OutputPrompt { display: none !important; }
  .jp-InputArea-editor { border: none !important; }
  img, tr, .runbook-plot { page-break-inside: avoid; break-inside: avoid; }
  img { max-width: 100% !important; }
  pre { white-space: pre-wrap !important; word-break: break-word; }
  .jp-OutputArea-output table { font-size: 8pt; }
  .runbook-verdict { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""


def redacted_parameters(params, params_file: Path) -> str:
    """The parameters of the run as YAML.  Secrets are references by construction;
    any resolved value that slipped in is replaced by the Redactor."""
    from runbook_lib.core.redact import redact

    body = yaml.safe_dump(params.redacted_dict(), sort_keys=False)
    return f"# parameters used by this run, from {params_file}\n" + redact(body)


# --- the key figures ---------------------------------------------------------------------------

def _sec(value: Any) -> str:
    return "—" if value is None else f"{float(value):.2f} s"


def _ms(value: Any) -> str:
    return "—" if value is None else f"{float(value) * 1000:.0f} ms"


def _cutovers(summary: dict) -> list[dict]:
    """Each cut-over's record: section 'switches' (every guarded switch, dry runs and roll-backs
    included, with its write pause: runbook_lib.phases.cutover.execute), else 'cutover' (one record,
    or a list of them) or 'cutovers'."""
    found: list[dict] = []
    for key in ("switches",) if summary.get("switches") else ("cutover", "cutovers"):
        value = summary.get(key)
        if isinstance(value, dict) and isinstance(value.get("records"), list):
            value = value["records"]
        found += [value] if isinstance(value, dict) else [v for v in value or () if isinstance(v, dict)]
    return found


def _pause(record: dict) -> str:
    """The write pause of a cut-over's record, whatever the phase called it ('write_pause_s', ...)."""
    for key, value in record.items():
        if "pause" in key and isinstance(value, (int, float)) and not isinstance(value, bool):
            return _sec(value)
    return "not recorded"


def key_figures(summary: dict) -> list[tuple[str, str, str]]:
    """Pure: (figure, value, status 'ok' / 'failed' / '') rows from the run's summary."""
    rows: list[tuple[str, str, str]] = []
    failover = summary.get("failover")
    if failover:
        lost = failover.get("rows_lost") or {}
        rows.append(("rows lost in the failover test (per side)", ", ".join(f"{k}: {v}" for k, v in lost.items())
                     or "—", "ok" if lost and not any(lost.values()) else "failed"))
        rows.append(("recovery: request → Aurora writes again", _sec(failover.get("recovery_seconds")),
                     "" if failover.get("recovery_seconds") is not None else "failed"))
        rows.append(("convergence: request → both directions caught up", _sec(failover.get("convergence_seconds")),
                     "" if failover.get("convergence_seconds") is not None else "failed"))
    else:
        rows.append(("failover test", "not run", ""))
    lag = summary.get("lag") or {}
    for direction, stats in (lag.get("directions") or {}).items():
        p99 = stats.get("heartbeat_p99_s", stats.get("heartbeat_p95_s"))
        rows.append((f"lag {direction}: p50 / p99 (heartbeat)", f"{_ms(stats.get('heartbeat_p50_s'))} / {_ms(p99)}",
                     "failed" if p99 is not None and lag.get("threshold_s") is not None and p99 > lag["threshold_s"]
                     else ""))
    if not lag:
        rows.append(("replication lag", "not measured", ""))
    consistency = summary.get("consistency")
    if consistency:
        differ = list(consistency.get("tables_differ") or [])
        rows.append(("rows compared", f"{consistency.get('rows_compared', 0):,} in "
                                      f"{consistency.get('tables_compared', 0)} tables", ""))
        rows.append(("tables differing", f"{len(differ)}" + (f": {', '.join(differ)}" if differ else ""),
                     "failed" if differ else "ok"))
    else:
        rows.append(("same data on both sides", "not compared", ""))
    for c in _cutovers(summary):
        where = f"{c.get('from', '?')} → {c.get('to', '?')}"
        outcome = str(c.get("outcome", c.get("verdict", "?")))
        gate = (f"; same-data check {c['same_data_check_kind']} in {_sec(c.get('same_data_check_seconds'))}"
                if c.get("same_data_check_kind") else "")
        rows.append((f"cut-over '{c.get('scope', '?')}' ({where})", f"{outcome}; write pause {_pause(c)}{gate}",
                     "ok" if outcome in ("done", "switched", "passed", "ok", "applied") else ""))
    if not _cutovers(summary):
        rows.append(("cut-overs", "none", ""))
    cleanup = summary.get("cleanup")
    if cleanup:
        before, after = cleanup.get("before") or {}, cleanup.get("after") or {}
        removed = [k for k, v in before.items() if v != "absent" and after.get(k) == "absent"]
        rows.append(("clean-up removed", ", ".join(removed) or "nothing", ""))
    else:
        rows.append(("clean-up", "not run", ""))
    return rows


# --- the first screen --------------------------------------------------------------------------

def _verdict(summary: dict) -> str:
    phases = summary.get("phases", [])
    passed = sum(p.get("status") == "ok" for p in phases)
    failed = [p for p in phases if p.get("status") == "failed"]
    ok = summary.get("verdict") == "ok"
    detail = f"{passed} of {len(phases)} phases passed"
    if failed:
        first = failed[0]
        detail += (f"; {first['name']} failed at cell {first.get('failed_cell')}: "
                   f"{str(first.get('error', '')).splitlines()[0][:300] if first.get('error') else ''}")
    return (f"<div class='runbook-verdict {'ok' if ok else 'failed'}'>Run {'PASSED' if ok else 'FAILED'}: "
            f"{html.escape(str(summary.get('environment', '')))}<small>{html.escape(detail)}</small></div>")


def _table(header: Iterable[str], rows: Iterable[tuple[str, ...]], cls: str) -> str:
    """A plain table; each row's last item is its status ('ok' / 'failed' / ''), a class, not a cell."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(f"<tr class='{html.escape(row[-1])}'>" + "".join(f"<td>{html.escape(str(v))}</td>"
                                                                   for v in row[:-1]) + "</tr>" for row in rows)
    return f"<table class='{cls}'><tr>{head}</tr>{body}</table>"


def failover_plots(notebooks: Iterable[Path]) -> list[tuple[str, str]]:
    """(title, base64 PNG) of the failover test's plots, from the executed notebook's outputs."""
    import nbformat
    found: list[tuple[str, str]] = []
    for path in notebooks:
        if not path.name.startswith("07_"):
            continue
        for cell in nbformat.read(path, as_version=4).cells:
            for marker, title in FAILOVER_PLOTS:
                pngs = [o["data"]["image/png"] for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
                if cell.cell_type == "code" and marker in cell.source and pngs:
                    found.append((title, "".join(pngs[0].split())))
    return found


def summary_html(summary: dict, plots: list[tuple[str, str]]) -> str:
    """The report's first screen: verdict, key figures, the failover plots, the phases."""
    figures = _table(("figure", "value"), key_figures(summary), "runbook-key-figures")
    pictures = "".join(f"<figure class='runbook-plot'><figcaption>{html.escape(t)}</figcaption>"
                       f"<img alt='{html.escape(t)}' src='data:image/png;base64,{png}'></figure>" for t, png in plots)
    phases = _table(("phase", "status", "seconds"), [(p["name"], p["status"], f"{p['seconds']}", p["status"])
                                                     for p in summary.get("phases", [])], "runbook-phases")
    return (f"<section class='runbook-summary'>{_verdict(summary)}<h2>Key figures</h2>{figures}"
            f"{pictures or '<p>No failover plot: phase 07_failover_test did not run.</p>'}"
            f"<h2>Phases</h2>{phases}<p>Every figure the phases recorded is in <code>summary.json</code>; "
            f"the parameters (secrets as references) in <code>parameters.yaml</code>.</p></section>")


# --- the whole page ----------------------------------------------------------------------------

def _merged(notebooks: list[Path]):
    import nbformat
    merged = nbformat.v4.new_notebook()
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        merged.cells.append(nbformat.v4.new_markdown_cell(
            f"<div class='runbook-notebook'>notebook {html.escape(path.name)}</div>"))
        for cell in nb.cells:
            # papermill's own bookkeeping cells say nothing to a reader of the report
            if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
                cell.source = "# parameters injected by the runner\n" + cell.source
            if cell.cell_type == "code":
                cell.outputs = [o for o in cell.outputs if WIDGET_VIEW not in o.get("data", {})]
            merged.cells.append(cell)
    merged.metadata["kernelspec"] = {"name": "aurora-fallback-runbook", "display_name": "Python 3",
                                     "language": "python"}
    merged.metadata["language_info"] = {"name": "python"}
    return merged


def write_html(run_dir: Path, notebooks: list[Path], summary: dict) -> Path:
    """``report.html``: the first screen (:func:`summary_html`), then the executed notebooks."""
    from jinja2 import DictLoader  # here, not at the top: every notebook imports the library, and
    from nbconvert import HTMLExporter  # nbconvert's import costs about 1.5 s

    exporter = HTMLExporter(template_name="lab", extra_loaders=[DictLoader({"runbook.html.j2": _TEMPLATE})],
                            template_file="runbook.html.j2")
    resources = {"runbook_css": CSS, "runbook_summary": summary_html(summary, failover_plots(notebooks))}
    body, _ = exporter.from_notebook_node(_merged(notebooks), resources=resources)
    out = run_dir / "report.html"
    out.write_text(body)
    return out
