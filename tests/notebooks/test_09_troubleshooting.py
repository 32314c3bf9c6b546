"""Notebook 09_troubleshooting on the lab after phases 1-8 (``pipeline.through("08_cutover")``): each lab
fault is injected with runbook_lib.lab.faults and fixed by the notebook with its fix approved; then
both directions must run and the data agree.  Also: a run without approvals only diagnoses and changes
nothing, a second run plans nothing, and a bad knob fails in the first cell that needs it.
"""
from __future__ import annotations

import pytest
from papermill.exceptions import PapermillExecutionError

from runbook_lib.lab import faults
from tests.notebooks.conftest import outputs_text
from tests.support import gtids, last_output, query, replica_status, wait_for

pytestmark = [pytest.mark.lab, pytest.mark.notebooks]

STEM = "09_troubleshooting"
SCHEMAS = ("app_crm", "app_billing", "tenant_acme", "tenant_globex")


def checksums(lab, name: str) -> dict:
    server = lab.instances[name]
    tables = query(server, "SELECT CONCAT(TABLE_SCHEMA, '.', TABLE_NAME) AS t FROM information_schema.TABLES "
                           "WHERE TABLE_SCHEMA IN %s AND TABLE_TYPE = 'BASE TABLE'", (SCHEMAS,))
    out = {}
    for row in tables:
        out[row["t"]] = query(server, f"CHECKSUM TABLE {row['t']}")[0]["Checksum"]
    return out


def assert_healthy(lab) -> None:
    """Both channels run, both sides have the same transactions and the same data."""
    for name in ("onprem", "aurora"):
        s = replica_status(lab.instances[name])
        assert (s["Replica_IO_Running"], s["Replica_SQL_Running"]) == ("Yes", "Yes"), (name, s["Last_Error"])
    wait_for("both sides equal", lambda: gtids(lab.instances["onprem"]) == gtids(lab.instances["aurora"]), 60)
    assert checksums(lab, "onprem") == checksums(lab, "aurora")


def inject(lab, fault: str) -> faults.FaultReport:
    return faults.break_lab(fault, lab.state.name, say=lambda *_: None)


def test_healthy_lab_plans_nothing(pipeline, lab):
    pipeline.through("08_cutover")          # the latest phase there is; 06 is not written yet
    wait_for("both sides equal", lambda: gtids(lab.instances["onprem"]) == gtids(lab.instances["aurora"]), 60)
    before = {n: gtids(lab.instances[n]) for n in ("onprem", "aurora")}
    text = outputs_text(pipeline.run(STEM))
    assert "PASS: both replication channels run without errors" in text
    assert "Nothing to fix: both channels run." in text and "PASS: both channels run" in text
    assert {n: gtids(lab.instances[n]) for n in ("onprem", "aurora")} == before


def test_without_approval_it_only_diagnoses(pipeline, lab):
    pipeline.through("08_cutover")
    inject(lab, "duplicate-key")
    before = {n: gtids(lab.instances[n]) for n in ("onprem", "aurora")}
    failing = replica_status(lab.instances["aurora"])["Last_SQL_Error"]
    with pytest.raises(PapermillExecutionError) as exc:
        pipeline.run(STEM)                   # the yaml approves no fix:<channel>
    assert exc.value.ename == "NotApplied" and "fix:aurora" in exc.value.evalue
    text = last_output(pipeline, STEM)
    assert "row-conflict" in text and "persona.PRIMARY" in text and "Write_rows on app_crm.persona" in text
    assert "SKIPPED: step 'fix:aurora' not approved" in text
    assert {n: gtids(lab.instances[n]) for n in ("onprem", "aurora")} == before
    assert replica_status(lab.instances["aurora"])["Last_SQL_Error"] == failing


def test_duplicate_key_fixed_by_the_notebook(pipeline, lab):
    pipeline.through("08_cutover")
    if replica_status(lab.instances["aurora"]).get("Last_SQL_Errno") != 1062:    # run alone: inject it here
        inject(lab, "duplicate-key")
    text = outputs_text(pipeline.run(STEM, approve=["fix:aurora"]))
    assert "APPLIED: step 'fix:aurora'" in text and "PASS: both channels run; data agree" in text
    assert "write the source's 1 row(s) back, binary-logged" in text
    assert_healthy(lab)
    again = outputs_text(pipeline.run(STEM, approve=["fix:aurora"]))           # a second run changes nothing
    assert "No plan: nothing to fix here." in again


def test_conflict_fixed_by_the_notebook(pipeline, lab):
    pipeline.through("08_cutover")
    inject(lab, "conflict")
    with pytest.raises(PapermillExecutionError) as exc:          # one approval fixes one side only
        pipeline.run(STEM, approve=["fix:aurora"])
    assert exc.value.ename == "NotApplied" and "fix:source" in exc.value.evalue
    text = outputs_text(pipeline.run(STEM, approve=["fix:aurora", "fix:source"]))
    assert "PASS: both channels run; data agree" in text
    assert_healthy(lab)


def test_stopped_io_fixed_by_the_notebook(pipeline, lab):
    pipeline.through("08_cutover")
    inject(lab, "stopped-io")
    text = outputs_text(pipeline.run(STEM, approve=["fix:aurora"], tables=["tenant_acme.orders"]))
    assert "CALL mysql.rds_stop_replication" in text and "PASS: both channels run; data agree" in text
    assert query(lab.instances["aurora"],
                 "SELECT COUNT(*) AS n FROM tenant_acme.orders WHERE sku = 'fault-io'")[0]["n"] >= 1
    assert_healthy(lab)


def test_purged_binlogs_fixed_by_the_notebook(pipeline, lab):
    pipeline.through("08_cutover")
    inject(lab, "purged-binlogs")
    text = outputs_text(pipeline.run(STEM, approve=["fix:source"]))
    assert "purged-binlogs" in text and "SET GLOBAL gtid_purged = '+" in text
    assert "not binary-logged" in text and "PASS: both channels run; data agree" in text
    assert_healthy(lab)


def test_bad_knob_fails_in_the_first_cell_that_needs_it(pipeline, lab):
    pipeline.through("08_cutover")
    before = {n: gtids(lab.instances[n]) for n in ("onprem", "aurora")}
    with pytest.raises(PapermillExecutionError) as exc:
        pipeline.run(STEM, fix="yolo")
    assert exc.value.ename == "ParameterError" and "'fix'" in exc.value.evalue
    assert "show_options" in exc.value.source
    with pytest.raises(PapermillExecutionError) as exc:
        pipeline.run(STEM, pipeline.params_file(aurora_port=lab.state.port_base + 50))
    assert exc.value.ename == "ConnectionFailed" and "diagnose" in exc.value.source
    assert {n: gtids(lab.instances[n]) for n in ("onprem", "aurora")} == before
