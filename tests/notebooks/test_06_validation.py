"""Notebook 06_validation on the lab, after phases 1-5: what it shows and what it does on the servers.

Order matters: a run without approvals first (the heartbeat table is missing, so the lag cell stops
with NotApplied and nothing changes), a wrong port, then the approved run of the pipeline (its data
comparison is recorded as a full pass, which phase 8's gate starts from), its second run (throttled on
lag), an interrupted pass continued, a re-verification brought forward from it, and a row changed on one side only (it must be found, with its
key, and then repaired)."""
from __future__ import annotations

import json

import pytest
from papermill.exceptions import PapermillExecutionError

from tests.notebooks.conftest import outputs_text
from tests.support import gtids, last_output, last_run, query, settle

pytestmark = [pytest.mark.lab, pytest.mark.notebooks]

STEM = "06_validation"
SHORT = {"lag_seconds": 3.0, "watch_seconds": 2.0}


def nbformat_cells(cells):
    """A notebook of just ``cells`` (for :func:`outputs_text`)."""
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.cells = list(cells)
    return nb


def has_heartbeat(lab, name: str) -> bool:
    return bool(query(lab.instances[name], "SELECT 1 FROM information_schema.TABLES "
                                           "WHERE TABLE_SCHEMA = 'runbook' AND TABLE_NAME = 'heartbeat'"))


def app_counts(lab, name: str) -> dict:
    server = lab.instances[name]
    tables = [r["t"] for r in query(server, "SELECT CONCAT(TABLE_SCHEMA, '.', TABLE_NAME) AS t FROM "
                                            "information_schema.TABLES WHERE TABLE_SCHEMA IN ('app_crm', "
                                            "'app_billing', 'tenant_acme', 'tenant_globex')")]
    return {t: query(server, f"SELECT COUNT(*) AS n FROM {t}")[0]["n"] for t in tables}


def passes(lab, name: str) -> list[dict]:
    """The consistency passes recorded on a side, oldest first."""
    return query(lab.instances[name], "SELECT run_id, kind, status, verdict FROM runbook.consistency_run "
                                      "ORDER BY started")


def failing(pipeline, params_file, **parameters) -> str:
    with pytest.raises(PapermillExecutionError) as e:
        pipeline.run(STEM, params_file, **{**SHORT, **parameters})
    return f"{e.value.ename}: {e.value.evalue}"


def test_without_approval_the_lag_cell_stops_and_nothing_changes(pipeline, lab):
    pipeline.through("05_replication")
    before = {n: gtids(lab.instances[n]) for n in ("onprem", "aurora")}
    assert not has_heartbeat(lab, "onprem")
    error = failing(pipeline, pipeline.params_file(approvals=[]))
    assert "NotApplied" in error and "runbook.heartbeat" in error and "replication" in error
    text = last_output(pipeline, STEM)
    assert "PASS: bi-directional replication" in text and "SKIPPED: step 'replication' not approved" in text
    assert {n: gtids(lab.instances[n]) for n in ("onprem", "aurora")} == before
    assert not has_heartbeat(lab, "onprem") and not has_heartbeat(lab, "aurora")


def test_unreachable_aurora_fails_in_its_first_cell(pipeline, lab):
    before = gtids(lab.instances["onprem"])
    error = failing(pipeline, pipeline.params_file(aurora_port=1))
    assert "ConnectionFailed" in error and "127.0.0.1:1" in error
    nb = last_run(pipeline, STEM)
    failed = [c for c in nb.cells if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert failed[0].source.startswith("settings_results = validation_settings.check")   # its first server cell
    assert gtids(lab.instances["onprem"]) == before and not has_heartbeat(lab, "onprem")


def test_a_bad_knob_is_named_before_anything_runs(pipeline, lab):
    before = gtids(lab.instances["onprem"])
    error = failing(pipeline, None, metric_period_s=45)
    assert "ParameterError" in error and "metric_period_s" in error
    error = failing(pipeline, None, lag_seconds=0)
    assert "ParameterError" in error and "lag_seconds" in error
    error = failing(pipeline, None, check_mode="again")
    assert "ParameterError" in error and "check_mode" in error and "auto, fresh, resume" in error
    nb = last_run(pipeline, STEM)
    failed = [c for c in nb.cells if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert "validation.check_knobs" in failed[0].source
    assert gtids(lab.instances["onprem"]) == before and not has_heartbeat(lab, "onprem")


@pytest.fixture(scope="module")
def approved(pipeline, lab, tmp_path_factory):
    """The pipeline's own run of 06 (lab approvals, default knobs), with a run folder for its figures."""
    run_dir = tmp_path_factory.mktemp("run")
    mp = pytest.MonkeyPatch()
    mp.setenv("RUNBOOK_RUN_DIR", str(run_dir))
    try:
        nb = pipeline.through(STEM)[STEM]
    finally:
        mp.undo()
    return nb, run_dir


def test_approved_run_validates_both_directions_lag_and_data(approved, lab):
    nb, run_dir = approved
    text = outputs_text(nb)
    for line in ("PASS: bi-directional replication", "PASS: replication errors", "PASS: replication lag",
                 "PASS: both sides hold the same data", "PASS: bi-directional replication validated"):
        assert line in text
    assert has_heartbeat(lab, "onprem") and has_heartbeat(lab, "aurora")
    labels = sorted(r["label"] for r in query(lab.instances["aurora"], "SELECT label FROM runbook.heartbeat"))
    assert labels == ["aurora", "onprem"]                      # both sides wrote, both rows replicated
    pngs = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(pngs) == 2                                      # the live view's plot, the lag plot
    # the live view, headless: its last panel, the plot, the summary table and its verdict line stay
    watch = next(c for c in nb.cells if c.cell_type == "code" and "watch.live(" in c.source)
    shown = outputs_text(nbformat_cells([watch]))
    assert "Live view of both directions" in shown and "runbook-watch-alert" in shown
    assert "threads_not_running" in shown and ("OK: no threshold crossed" in shown or "ALERT:" in shown)
    assert any("image/png" in o.get("data", {}) for o in watch.outputs)
    consistency = json.loads((run_dir / "figures" / "consistency.json").read_text())
    assert consistency["verdict"] == "same" and consistency["tables_differ"] == []
    assert consistency["tables_compared"] >= 8                 # 6 application tables + runbook.canary/heartbeat
    # the pass is recorded on the source and replicated: phase 8's gate re-verifies from it
    assert consistency["kind"] == "full" and not consistency["resumed"]
    settle(lab.instances)
    for side in ("onprem", "aurora"):
        assert passes(lab, side)[-1] == {"run_id": consistency["run_id"], "kind": "full", "status": "done",
                                         "verdict": "same"}
    assert f"pass {consistency['run_id'][:8]} (new, recorded in runbook.consistency_run)" in text
    assert "consistency" in text and "rows/s" in text          # the progress line
    lag = json.loads((run_dir / "figures" / "lag.json").read_text())
    assert set(lag["directions"]) == {"source → aurora", "aurora → source"}
    for stats in lag["directions"].values():
        assert stats["samples"] >= 20 and stats["heartbeat_p95_s"] < 1.0
    assert lag["verdict"].startswith("PASS")


def test_second_run_plans_nothing_and_changes_only_heartbeat_rows(approved, pipeline, lab):
    """... and its comparison, throttled on lag, is a new pass that leaves out the heartbeat table it writes."""
    before, recorded = {n: app_counts(lab, n) for n in ("onprem", "aurora")}, passes(lab, "onprem")
    nb = pipeline.run(STEM, **SHORT, check_lag_limit_s=1.0)
    text = outputs_text(nb)
    assert "heartbeat table for lag measurement: nothing to do (step 'replication')" in text
    assert "PASS: bi-directional replication validated" in text
    comparison = next(c for c in nb.cells if c.cell_type == "code" and "compare_data(" in c.source)
    shown = outputs_text(nbformat_cells([comparison]))
    assert "runbook.canary" in shown and "runbook.heartbeat" not in shown
    assert passes(lab, "onprem")[:-1] == recorded and passes(lab, "onprem")[-1]["status"] == "done"
    assert {n: app_counts(lab, n) for n in ("onprem", "aurora")} == before
    assert query(lab.instances["onprem"], "SELECT COUNT(*) AS n FROM runbook.heartbeat")[0]["n"] == 2


def test_an_interrupted_pass_is_continued(approved, pipeline, lab):
    """A pass left 'running' (a stopped kernel, say) is continued by the next run (check_mode auto), not
    started anew: its chunks are not read again."""
    latest = passes(lab, "onprem")[-1]["run_id"]
    chunks = ("SELECT table_name, chunk, seconds FROM runbook.consistency_chunk WHERE run_id = %s "
              "AND table_name LIKE 'app\\_%%' ORDER BY table_name, chunk")
    read = query(lab.instances["onprem"], chunks, (latest,))
    query(lab.instances["onprem"], "UPDATE runbook.consistency_run SET status = 'running', finished = NULL "
                                   "WHERE run_id = %s", (latest,))
    text = outputs_text(pipeline.run(STEM, **SHORT))
    assert f"pass {latest[:8]} (continued, recorded in runbook.consistency_run)" in text
    assert "PASS: bi-directional replication validated" in text
    assert passes(lab, "onprem")[-1]["run_id"] == latest and passes(lab, "onprem")[-1]["status"] == "done"
    assert read and query(lab.instances["onprem"], chunks, (latest,)) == read     # kept, not read again


def test_reverify_mode_reads_only_the_rows_written_since_and_is_recorded(approved, pipeline, lab,
                                                                         tmp_path_factory, monkeypatch):
    """check_mode 'reverify' brings the pass forward: only keys written since the latest finished pass are
    compared, and the re-verification is recorded for the next one (and phase 8's gate) to start from."""
    done = passes(lab, "onprem")[-1]
    query(lab.instances["onprem"], "UPDATE app_crm.persona SET score = score + 1 WHERE id IN (1, 3, 5)")
    settle(lab.instances, 30)
    run_dir = tmp_path_factory.mktemp("reverify-run")
    monkeypatch.setenv("RUNBOOK_RUN_DIR", str(run_dir))
    nb = pipeline.run(STEM, **SHORT, check_mode="reverify")
    text = outputs_text(nb)
    assert "PASS: bi-directional replication validated" in text
    assert "re-verification" in text and "changed keys compared" in text
    latest = passes(lab, "onprem")[-1]
    assert latest["kind"] == "reverify" and latest["status"] == "done" and latest["run_id"] != done["run_id"]
    consistency = json.loads((run_dir / "figures" / "consistency.json").read_text())
    assert consistency["kind"] == "reverify" and consistency["verdict"] == "same"


def test_a_row_changed_on_one_side_only_is_found_with_its_key(approved, pipeline, lab):
    key = query(lab.instances["aurora"], "SELECT MAX(id) DIV 3 AS k FROM app_crm.persona")[0]["k"]
    change = "UPDATE app_crm.persona SET last_name = CONCAT(last_name, %s) WHERE id = %s"
    with lab.root("aurora") as conn, conn.cursor() as cur:
        cur.execute("SET SESSION sql_log_bin = 0")
        cur.execute(change, ("!", key))
        try:
            error = failing(pipeline, None)
        finally:
            cur.execute("UPDATE app_crm.persona SET last_name = TRIM(TRAILING '!' FROM last_name) WHERE id = %s",
                        (key,))
    assert "CheckFailed" in error and "app_crm.persona" in error
    text = last_output(pipeline, STEM)
    assert "FAIL: 1 of" in text and f"{key} (changed, 1 row(s))" in text
