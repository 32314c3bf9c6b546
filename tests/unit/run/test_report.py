"""runbook_lib.run.report: the key figures read from a run's summary, and a report.html that opens with
them, carries the failover plots inline and fetches nothing."""
from __future__ import annotations

import base64
import io
import re

import nbformat

from runbook_lib.run import report

SUMMARY = {
    "environment": "lab", "verdict": "ok",
    "phases": [{"name": "06_validation", "status": "ok", "seconds": 31.5},
               {"name": "07_failover_test", "status": "ok", "seconds": 80.2}],
    "failover": {"verdict": "converged", "rows_lost": {"source": 0, "aurora": 0}, "recovery_seconds": 4.81,
                 "convergence_seconds": 7.02},
    "lag": {"threshold_s": 1.0, "directions": {
        "source → aurora": {"heartbeat_p50_s": 0.004, "heartbeat_p95_s": 0.01, "heartbeat_p99_s": 0.02},
        "aurora → source": {"heartbeat_p50_s": 0.005, "heartbeat_p95_s": 0.012, "heartbeat_p99_s": 1.5}}},
    "consistency": {"tables_compared": 8, "tables_differ": ["app_crm.persona"], "rows_compared": 52184},
    "cutover": {"scope": "crm", "from": "source", "to": "aurora", "verdict": "switched", "write_pause_s": 1.234},
    "cleanup": {"before": {"channel @ aurora": "running", "group @ aws": "in use", "bucket @ s3": "absent"},
                "after": {"channel @ aurora": "absent", "group @ aws": "in use", "bucket @ s3": "absent"}},
}


def test_key_figures_read_every_phase_s_record():
    rows = {figure: (value, status) for figure, value, status in report.key_figures(SUMMARY)}
    assert rows["rows lost in the failover test (per side)"] == ("source: 0, aurora: 0", "ok")
    assert rows["recovery: request → Aurora writes again"][0] == "4.81 s"
    assert rows["convergence: request → both directions caught up"][0] == "7.02 s"
    assert rows["lag source → aurora: p50 / p99 (heartbeat)"] == ("4 ms / 20 ms", "")
    assert rows["lag aurora → source: p50 / p99 (heartbeat)"] == ("5 ms / 1500 ms", "failed")   # over 1 s
    assert rows["rows compared"][0] == "52,184 in 8 tables"
    assert rows["tables differing"] == ("1: app_crm.persona", "failed")
    assert rows["cut-over 'crm' (source → aurora)"] == ("switched; write pause 1.23 s", "ok")
    assert rows["clean-up removed"][0] == "channel @ aurora"


def test_a_run_that_stopped_early_says_what_was_not_measured():
    rows = {figure: value for figure, value, _ in report.key_figures({"verdict": "failed", "phases": []})}
    assert rows["failover test"] == "not run" and rows["replication lag"] == "not measured"
    assert rows["cut-overs"] == "none" and rows["clean-up"] == "not run"


def test_several_cut_overs_each_get_a_row():
    summary = {"cutovers": [{"scope": "crm", "from": "source", "to": "aurora", "outcome": "rolled back"},
                            {"scope": "billing", "from": "aurora", "to": "source", "outcome": "done",
                             "write_pause_seconds": 0.5}]}
    rows = [(f, v) for f, v, _ in report.key_figures(summary) if f.startswith("cut-over '")]
    assert rows == [("cut-over 'crm' (source → aurora)", "rolled back; write pause not recorded"),
                    ("cut-over 'billing' (aurora → source)", "done; write pause 0.50 s")]


def test_a_cut_over_row_says_how_its_same_data_gate_compared_and_how_long_it_took():
    summary = {"switches": [{"scope": "crm", "from": "source", "to": "aurora", "outcome": "switched",
                             "write_pause_s": 0.2, "same_data_check_kind": "reverify",
                             "same_data_check_seconds": 0.084}]}
    rows = {f: v for f, v, _ in report.key_figures(summary)}
    assert rows["cut-over 'crm' (source → aurora)"] == ("switched; write pause 0.20 s; same-data check reverify "
                                                        "in 0.08 s")


def _png(size: tuple[float, float]) -> str:
    from matplotlib.figure import Figure
    fig = Figure(figsize=size, dpi=100)
    fig.add_subplot().plot([0, 1], [0, 1])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode()


def executed_failover_notebook(path, size: tuple[float, float] = (2, 1)) -> None:
    """A stand-in for an executed 07_failover_test: its plot cells with PNG outputs (``size`` inches at
    100 dpi), an Apply widget."""
    nb = nbformat.v4.new_notebook()
    for source in ("failover_plots.show(failover_plots.counts_figure(result))",
                   "failover_plots.show(failover_plots.lag_figure(result))"):
        cell = nbformat.v4.new_code_cell(source)
        cell.outputs = [nbformat.v4.new_output("display_data", {"image/png": _png(size), "text/plain": "<Image>"})]
        nb.cells.append(cell)
    gate = nbformat.v4.new_code_cell("rb.gate.apply(plan, apply)")
    gate.outputs = [nbformat.v4.new_output("stream", name="stdout", text="SKIPPED: step 'x' not approved\n"),
                    nbformat.v4.new_output("display_data", {report.WIDGET_VIEW: {"model_id": "abc", "version_major": 2,
                                                                                 "version_minor": 0},
                                                            "text/plain": "Button(description='Apply')"})]
    nb.cells.append(gate)
    nb.cells.append(nbformat.v4.new_markdown_cell("$x^2$ and some `code`"))
    nbformat.write(nb, path)


def test_the_report_opens_with_the_verdict_figures_and_plots_and_fetches_nothing(tmp_path):
    nb = tmp_path / "07_failover_test.ipynb"
    executed_failover_notebook(nb)
    page = report.write_html(tmp_path, [nb], SUMMARY).read_text()
    page = page.replace("'", '"')
    summary = page.index('<section class="runbook-summary">')
    plot = page.index('<img alt="Failover test:', summary)
    assert summary < page.index("Run PASSED") < page.index("Key figures") < plot
    assert plot < page.index('class="runbook-notebook"')                                   # then the phases
    assert page.count('<img alt="Failover test:') == 2
    assert 'SKIPPED: step "x" not approved' in page and "Button(description" not in page
    assert "@media print" in page
    assert '"rows_lost"' not in page                       # raw JSON stays in summary.json
    fetched = re.findall(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//[^"'\s>]+""", page)
    assert fetched == []
    assert not re.search(r"@import|url\(\s*['\"]?https?:", page)


def test_key_figures_show_each_guarded_switch_with_its_write_pause():
    """The guarded cut-over appends every switch to section 'switches' (outcome, write_pause_s)."""
    summary = {"switches": [
        {"step": "cutover:crm", "scope": "crm", "from": "source", "to": "aurora", "outcome": "switched",
         "write_pause_s": 0.054},
        {"step": "fallback:crm", "scope": "crm", "from": "aurora", "to": "source", "outcome": "rolled back",
         "write_pause_s": 6.015}],
        "cutover": {"scope": "crm", "from": "source", "to": "aurora", "verdict": "switched"}}
    rows = [r for r in report.key_figures(summary) if r[0].startswith("cut-over")]
    assert rows == [("cut-over 'crm' (source → aurora)", "switched; write pause 0.05 s", "ok"),
                    ("cut-over 'crm' (aurora → source)", "rolled back; write pause 6.01 s", "")]
