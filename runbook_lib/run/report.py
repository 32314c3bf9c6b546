"""The run's archive: one offline HTML report of every executed notebook, the
parameters used (secret values redacted), and figures recorded by the phases."""
from __future__ import annotations

import html
import json
from pathlib import Path

import yaml


def redacted_parameters(params, params_file: Path) -> str:
    """The parameters of the run as YAML.  Secrets are references by construction;
    any resolved value that slipped in is replaced by the Redactor."""
    from runbook_lib.core.redact import redact

    body = yaml.safe_dump(params.redacted_dict(), sort_keys=False)
    return f"# parameters used by this run, from {params_file}\n" + redact(body)


def _summary_markdown(summary: dict) -> str:
    lines = [f"# Runbook run: {summary.get('environment', '')}", "",
             f"**Verdict: {summary.get('verdict', '?').upper()}**", "",
             "| phase | status | seconds |", "|---|---|---|"]
    for p in summary.get("phases", []):
        lines.append(f"| {p['name']} | {p['status']} | {p['seconds']} |")
    for section in ("failover", "consistency"):
        if section in summary:
            lines += ["", f"### {section}", "", "```", json.dumps(summary[section], indent=2), "```"]
    return "\n".join(lines)


def write_html(run_dir: Path, notebooks: list[Path], summary: dict) -> Path:
    """Merge the executed notebooks (summary first) into ``report.html``, images inline."""
    import nbformat  # here, not at the top: every notebook imports this module, and nbformat's
    from nbconvert import HTMLExporter  # schema validation costs ~1.5 s of import time

    merged = nbformat.v4.new_notebook()
    merged.cells.append(nbformat.v4.new_markdown_cell(_summary_markdown(summary)))
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        merged.cells.append(nbformat.v4.new_markdown_cell(f"---\n<small>notebook {html.escape(path.name)}</small>"))
        for cell in nb.cells:
            # papermill's own bookkeeping cells say nothing to a reader of the report
            if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
                cell.source = "# parameters injected by the runner\n" + cell.source
            merged.cells.append(cell)
    merged.metadata["kernelspec"] = {"name": "aurora-fallback-runbook", "display_name": "Python 3",
                                     "language": "python"}
    merged.metadata["language_info"] = {"name": "python"}
    exporter = HTMLExporter(template_name="lab")
    body, _ = exporter.from_notebook_node(merged)
    out = run_dir / "report.html"
    out.write_text(body)
    return out
