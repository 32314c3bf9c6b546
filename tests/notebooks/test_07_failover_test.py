"""Notebook 07 on the lab: the failover test, run headless with papermill after phases 1-6.

Short runs (15 s at 5,000 rows/s per side, the failover at 5 s).  Checked on the servers and the
endpoint, not only in the notebook's output: without approval nothing is written and the cluster
keeps its writer; with it the writer changes, every acknowledged row is on both sides with its
side's ids, and the run summary holds the failover figures; a second run changes nothing.
"""
from __future__ import annotations

import json

import pytest
from papermill.exceptions import PapermillExecutionError

from tests.notebooks.conftest import outputs_text
from tests.support import last_output, query

pytestmark = [pytest.mark.lab, pytest.mark.notebooks, pytest.mark.slow]

NB = "07_failover_test"
SHORT = {"batch_rows": 1000, "interval_seconds": 0.2, "duration_seconds": 15, "failover_at_seconds": 5,
         "sample_hz": 4, "converge_timeout_seconds": 60}
TABLES = ("failover_rows", "failover_runs")


def failover_tables(lab, side: str) -> set[str]:
    rows = query(lab.instances[side], "SELECT TABLE_NAME AS t FROM information_schema.TABLES "
                                      "WHERE TABLE_SCHEMA = 'runbook' AND TABLE_NAME IN %s", (TABLES,))
    return {r["t"] for r in rows}


def writer(lab) -> str:
    import yaml
    cluster_id = yaml.safe_load(lab.params_file.read_text())["aurora_cluster_id"]
    cluster = lab.aws("rds").describe_db_clusters(DBClusterIdentifier=cluster_id)["DBClusters"][0]
    return next(m["DBInstanceIdentifier"] for m in cluster["DBClusterMembers"] if m["IsClusterWriter"])


def runs(lab) -> list[dict]:
    return query(lab.instances["onprem"], "SELECT run_id, verdict FROM runbook.failover_runs ORDER BY run_id")


def run_failing(pipeline, params, **parameters) -> str:
    with pytest.raises(PapermillExecutionError) as exc:
        pipeline.run(NB, params, **parameters)
    return f"{exc.value.ename}: {exc.value.evalue}"


def test_without_approval_nothing_is_written_and_no_failover_happens(lab, pipeline):
    pipeline.through("06_validation")
    before = writer(lab)
    error = run_failing(pipeline, pipeline.params_file(approvals=[]), **SHORT)
    assert "NotApplied" in error and "failover_test" in error
    assert "SKIPPED: step 'failover_test' not approved" in last_output(pipeline, NB)
    assert failover_tables(lab, "onprem") == failover_tables(lab, "aurora") == set()
    assert writer(lab) == before


def test_bad_knob_is_named_and_nothing_happens(lab, pipeline):
    before = writer(lab)
    error = run_failing(pipeline, None, **{**SHORT, "failover_at_seconds": 20})
    assert "ParameterError" in error and "failover_at_seconds" in error
    assert failover_tables(lab, "onprem") == set() and writer(lab) == before


@pytest.fixture(scope="module")
def ran(lab, pipeline, tmp_path_factory):
    """Notebook 07 approved, cleanup not (the rows stay to be checked): (nb, figures, writer before)."""
    approvals = [a for a in pipeline.params["approvals"] if not a.startswith("cleanup")]
    run_dir = tmp_path_factory.mktemp("run")
    before = writer(lab)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RUNBOOK_RUN_DIR", str(run_dir))
        nb = pipeline.run(NB, pipeline.params_file(approvals=approvals), **SHORT)
    pipeline.done[NB] = nb           # later phases' through() need not run it again
    return nb, json.loads((run_dir / "figures" / "failover.json").read_text()), before


def test_07_converges_with_nothing_lost_and_shows_three_plots(ran):
    nb, figures, _ = ran
    text = outputs_text(nb)
    assert "CONVERGED: run" in text and "NOT CONVERGED" not in text
    pngs = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(pngs) == 3
    assert figures["verdict"] == "converged"
    assert figures["rows_lost"] == {"source": 0, "aurora": 0}
    assert figures["rows_acknowledged"] == {"source": 75_000, "aurora": 75_000}
    assert figures["write_rate_rows_per_s"]["source"] >= 0.7 * 5000     # a shared machine loses some pace
    assert 0 < figures["recovery_seconds"] <= figures["convergence_seconds"] < 60
    assert figures["errors"]["aurora"]["connection"] >= 1 and figures["errors"]["aurora"]["read_only"] >= 1


def test_the_cluster_failed_over_and_every_row_is_on_both_sides(lab, ran):
    _, figures, before = ran
    assert figures["failover"]["from"] == before and writer(lab) == figures["failover"]["to"] != before
    run_id = figures["run_id"]
    for side in ("onprem", "aurora"):
        rows = {r["origin"]: r for r in query(
            lab.instances[side], "SELECT origin, COUNT(*) AS n, MIN(seq) AS lo, MAX(seq) AS hi, "
                                 "SUM(MOD(id, 2) = IF(origin = 'source', 0, 1)) AS own_parity "
                                 "FROM runbook.failover_rows WHERE run_id = %s GROUP BY origin", (run_id,))}
        for origin, acked in figures["rows_acknowledged"].items():
            assert (rows[origin]["n"], rows[origin]["lo"], rows[origin]["hi"]) == (acked, 1, acked)
            assert rows[origin]["own_parity"] == acked          # source ids even, aurora ids odd
    assert [r["verdict"] for r in runs(lab)] == ["converged"]


def test_a_second_run_changes_nothing(lab, pipeline, ran):
    _, figures, _ = ran
    approvals = [a for a in pipeline.params["approvals"] if not a.startswith("cleanup")]
    count = query(lab.instances["onprem"], "SELECT COUNT(*) AS n FROM runbook.failover_rows")[0]["n"]
    nb = pipeline.run(NB, pipeline.params_file(approvals=approvals), **SHORT)
    text = outputs_text(nb)
    assert "nothing to do (step 'failover_test')" in text and f"CONVERGED: run {figures['run_id']}," in text
    assert len(runs(lab)) == 1 and writer(lab) == figures["failover"]["to"]
    assert query(lab.instances["onprem"], "SELECT COUNT(*) AS n FROM runbook.failover_rows")[0]["n"] == count


def test_approved_cleanup_empties_the_rows_and_keeps_the_record(lab, pipeline, ran):
    nb = pipeline.run(NB, None, **SHORT)                     # the lab's approvals include cleanup:*
    assert "APPLIED: step 'cleanup:failover_rows'" in outputs_text(nb)
    assert query(lab.instances["onprem"], "SELECT COUNT(*) AS n FROM runbook.failover_rows")[0]["n"] == 0
    assert len(runs(lab)) == 1
    again = pipeline.run(NB, None, **SHORT)
    assert "nothing to do (step 'cleanup:failover_rows')" in outputs_text(again)
