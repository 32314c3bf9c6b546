"""Notebook 01_preflight on the lab: real findings on the unprepared source, and it changes nothing."""
from __future__ import annotations

import socket

import pytest
from papermill.exceptions import PapermillExecutionError

from tests.notebooks.conftest import outputs_text
from tests.support import source_state

pytestmark = [pytest.mark.lab, pytest.mark.notebooks]

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
