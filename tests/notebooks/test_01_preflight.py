"""Notebook 01_preflight on the lab: real findings on the unprepared source, and it changes nothing."""
from __future__ import annotations

import socket

import pytest
from papermill.exceptions import PapermillExecutionError

from tests.notebooks.conftest import outputs_text

pytestmark = [pytest.mark.lab, pytest.mark.notebooks]

STATE_SQL = """SELECT @@global.gtid_mode AS gtid_mode, @@global.enforce_gtid_consistency AS enforce,
    @@global.auto_increment_increment AS inc, @@global.auto_increment_offset AS off,
    @@global.log_bin_trust_function_creators AS trust, @@global.binlog_expire_logs_seconds AS expire,
    @@global.server_id AS server_id, @@global.binlog_format AS fmt, @@global.sync_binlog AS sync,
    @@global.gtid_executed AS gtids"""


def source_state(lab) -> dict:
    """Everything preflight could change on the source: settings, persisted settings, the binlog position."""
    with lab.root("onprem") as conn, conn.cursor() as cur:
        cur.execute(STATE_SQL)
        state = dict(cur.fetchone())
        cur.execute("SELECT variable_name, variable_value FROM performance_schema.persisted_variables "
                    "ORDER BY 1")
        state["persisted"] = [tuple(r.values()) for r in cur.fetchall()]
        cur.execute("SHOW BINARY LOG STATUS")
        status = cur.fetchone()
        state["binlog"] = (status["File"], status["Position"])
        cur.execute("SELECT COUNT(*) AS n FROM mysql.user")
        state["accounts"] = cur.fetchone()["n"]
    return state


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def failed_cell(pipeline, stem: str, params_file, **parameters) -> PapermillExecutionError:
    with pytest.raises(PapermillExecutionError) as caught:
        pipeline.run(stem, params_file, **parameters)
    return caught.value


def test_preflight_shows_the_unprepared_sources_findings_and_changes_nothing(lab, pipeline):
    before = source_state(lab)
    assert before["gtid_mode"] == "OFF", "the lab source must still be unprepared for this test"
    nb = pipeline.through("01_preflight")["01_preflight"]
    text = outputs_text(nb)
    assert source_state(lab) == before
    verdict = [line for line in text.splitlines() if line.startswith("PASS: preflight: all")]
    assert verdict, "no final verdict line"
    for warned in ("Aurora version for the source", "gtid_mode", "enforce_gtid_consistency",
                   "log_bin_trust_function_creators", "auto-increment (now)", "binlog retention (now)",
                   "tables without a primary key", "functions and procedures", "triggers", "accounts"):
        assert warned in verdict[0], warned
    for finding in ("lab rehearsal only", "restored in phase 4", "does not exist yet",
                    "increment 1, offset 1", "binlog_expire_logs_seconds=14400", "1: app_billing.payment_log",
                    "FUNCTION app_billing.tax_for", "app_billing.invoice_before_insert", "crm_app@%",
                    "billing_app@%", "account 123456789012"):
        assert finding in text, finding


def test_a_wrong_source_port_fails_in_the_first_server_cell(lab, pipeline):
    before = source_state(lab)
    port = free_port()
    err = failed_cell(pipeline, "01_preflight", pipeline.params_file(source_port=port))
    assert "preflight.gather(rb)" in err.source
    assert err.ename == "ConnectionFailed"
    assert f"[source] cannot connect to 127.0.0.1:{port}: connection refused" in err.evalue
    assert source_state(lab) == before


def test_a_wrong_source_password_fails_in_the_first_server_cell(lab, pipeline, monkeypatch):
    before = source_state(lab)
    monkeypatch.setenv("RUNBOOK_TEST_WRONG_PASSWORD", "not-the-password")   # the kernel inherits it
    err = failed_cell(pipeline, "01_preflight",
                      pipeline.params_file(source_admin_password="env:RUNBOOK_TEST_WRONG_PASSWORD"))
    assert "preflight.gather(rb)" in err.source
    assert err.ename == "AuthenticationFailed"
    assert "[source] access denied for user 'dba'" in err.evalue
    assert "not-the-password" not in err.evalue
    assert source_state(lab) == before
