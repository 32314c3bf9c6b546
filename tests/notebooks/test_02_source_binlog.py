"""Notebook 02_source_binlog on the lab: skipped without approval, stopped at WARN by a GTID-unsafe
application statement during the WARN window, applied with approval, idempotent, and a source without a
binary log is held back (NotApplied with the option-file lines) until it is restarted."""
from __future__ import annotations

import threading

import pytest
from papermill.exceptions import PapermillExecutionError

from runbook_lib.lab.gtid_drill import UNSAFE_STATEMENT, run_unsafe_app
from tests.notebooks.conftest import outputs_text
from tests.support import last_output, source_state

pytestmark = [pytest.mark.lab, pytest.mark.notebooks]

def test_without_approval_nothing_changes_and_the_check_cell_stops(lab, pipeline):
    before = source_state(lab)
    assert before["gtid_mode"] == "OFF", "the lab source must still be unprepared for this test"
    with pytest.raises(PapermillExecutionError) as caught:
        pipeline.run("02_source_binlog", pipeline.params_file(approvals=[]))
    err = caught.value
    assert err.ename == "NotApplied" and "source_binlog.verify" in err.source
    assert "gtid_mode=ON" in err.evalue and "approve and apply step 'source_binlog'" in err.evalue
    text = last_output(pipeline, "02_source_binlog")
    assert "SKIPPED: step 'source_binlog' not approved" in text
    assert "SET PERSIST gtid_mode = 'OFF_PERMISSIVE'" in text                   # the plan was shown
    assert source_state(lab) == before


def test_a_gtid_unsafe_statement_during_the_warn_window_stops_at_warn_and_is_named(lab, pipeline):
    stop = threading.Event()
    app = threading.Thread(target=run_unsafe_app, args=(lab.instances["onprem"], stop), daemon=True)
    app.start()
    try:
        with pytest.raises(PapermillExecutionError) as caught:
            pipeline.run("02_source_binlog")
    finally:
        stop.set()
        app.join(30)
    err = caught.value
    assert err.ename == "CheckFailed" and "enforce_gtid_consistency stays WARN" in err.evalue
    assert UNSAFE_STATEMENT in err.evalue                       # the application's statement, named
    assert "Statement violates GTID consistency: Updates to non-transactional tables" in err.evalue
    text = last_output(pipeline, "02_source_binlog")
    assert "hold enforce_gtid_consistency=WARN for 3 s" in text     # the plan says how long
    assert "FAIL: " in text and "GTID-unsafe statement(s) in 3 s" in text
    state = source_state(lab)
    assert (state["enforce"], state["gtid_mode"]) == ("WARN", "OFF")


def test_with_approval_the_source_gets_gtids_offsets_trust_and_retention(lab, pipeline):
    nb = pipeline.through("02_source_binlog")["02_source_binlog"]
    text = outputs_text(nb)
    assert "PASS: no GTID-unsafe statement in 3 s at enforce_gtid_consistency=WARN" in text
    assert "APPLIED: step 'source_binlog'" in text
    assert "PASS: source binary log: all 10 settings as wanted" in text
    params = pipeline.params
    state = source_state(lab)
    assert (state["gtid_mode"], state["enforce"]) == ("ON", "ON")
    assert (state["inc"], state["off"]) == (params["auto_increment_increment"],
                                            params["source_auto_increment_offset"])
    assert state["trust"] == 1 and state["expire"] == params["source_binlog_expire_seconds"]
    assert (state["server_id"], state["fmt"], state["sync"]) == (params["source_server_id"], "ROW", 1)
    # SET PERSIST: a restart keeps them
    assert state["persisted"]["gtid_mode"] == "ON" and state["persisted"]["enforce_gtid_consistency"] == "ON"
    assert state["persisted"]["auto_increment_offset"] == str(params["source_auto_increment_offset"])


def test_a_second_run_plans_nothing_and_changes_nothing(lab, pipeline):
    pipeline.through("02_source_binlog")
    before = source_state(lab)
    text = outputs_text(pipeline.run("02_source_binlog"))
    assert "nothing to do (step 'source_binlog')" in text
    assert "PASS: source binary log: all 10 settings as wanted" in text
    assert "APPLIED" not in text and "SKIPPED" not in text
    assert source_state(lab) == before


@pytest.mark.slow
def test_a_source_without_binary_log_needs_a_restart_with_the_printed_lines(lab, pipeline):
    pipeline.through("02_source_binlog")
    onprem = lab.instances["onprem"]
    overrides = onprem.read_overrides()
    try:
        onprem.stop()
        onprem.write_overrides({**overrides, "disable-log-bin": None})
        onprem.start()
        assert source_state(lab)["log_bin"] == 0
        with pytest.raises(PapermillExecutionError) as caught:
            pipeline.run("02_source_binlog")
        err = caught.value
        assert err.ename == "NotApplied" and "source_binlog.verify" in err.source
        assert "log_bin=ON" in err.evalue and "restart MySQL" in err.evalue
        assert "log-bin = mysql-bin" in err.evalue and "gtid_mode = ON" in err.evalue
        text = last_output(pipeline, "02_source_binlog")
        assert "A RESTART of the source is needed for log_bin" in text
    finally:
        onprem.stop()
        onprem.write_overrides(overrides)      # the DBA's restart with the binary log back on
        onprem.start()
    assert source_state(lab)["log_bin"] == 1
    text = outputs_text(pipeline.run("02_source_binlog"))
    assert "PASS: source binary log: all 10 settings as wanted" in text
