"""runbook_lib.phases.cutover.guard and .execute: the guardrails' pure parts (lag, errant GTIDs), the knobs,
where a scope is served, and a switch's record in the run's figures."""
from __future__ import annotations

import json

import pytest

from runbook_lib.checks.channels import TO_AURORA, TO_SOURCE
from runbook_lib.core import record as run_record
from runbook_lib.core.errors import NotCaughtUp, ParameterError, SwitchRolledBack
from runbook_lib.mysql.gtid import GtidSet
from runbook_lib.phases.cutover import execute, guard
from runbook_lib.phases.cutover.checks import Account, Move

S = "3E11FA47-71CA-11E1-9E33-C80AA9429562".lower()
A = "6d7c0f8a-0000-11f1-8000-000000000002"
T = "aaaaaaaa-0000-11f1-8000-000000000003"
CRM = Account("crm_app", "%")


def test_lag_rows_take_the_worse_of_seconds_behind_and_catch_up_time_and_fail_on_null():
    behind = [{TO_AURORA: 0, TO_SOURCE: 0}, {TO_AURORA: 1, TO_SOURCE: None}]
    rows = guard.lag_rows(behind, {TO_AURORA: 0.2, TO_SOURCE: 0.1}, 1.0)
    to_aurora, to_source = rows
    assert to_aurora.item == "lag source → aurora ≤ 1 s" and to_aurora.status == "pass"
    assert to_aurora.aurora == "Seconds_Behind_Source max 1; caught up in 0.20 s"
    assert to_source.status == "fail" and "NULL in 1 of 2 samples" in to_source.source
    slow = guard.lag_rows([{TO_AURORA: 0, TO_SOURCE: 0}], {TO_AURORA: 2.5, TO_SOURCE: None}, 1.0)
    assert [r.status for r in slow] == ["fail", "fail"] and slow[1].source.endswith("did not catch up")


def test_errant_gtids_are_those_that_began_elsewhere_or_were_purged_before_the_other_side_got_them():
    mine = GtidSet.parse(f"{S}:1-10,{A}:1-5,{T}:1-2")
    theirs = GtidSet.parse(f"{S}:1-8,{A}:1-5")
    foreign, purged = guard.errant(mine, theirs, S, GtidSet.parse(f"{S}:1-9"))
    assert foreign == GtidSet.parse(f"{T}:1-2")                  # from a third server: never replicates
    assert purged == GtidSet.parse(f"{S}:9")                     # own, missing there, no longer in the logs
    assert guard.errant(theirs, mine, A, GtidSet()) == (GtidSet(), GtidSet())   # nothing there the other lacks


def test_knobs_are_checked_before_anything_runs():
    guard.check_knobs(lag_limit_s=1, switch_timeout_s=30.0, dry_run=False)
    for bad in ({"lag_limit_s": 0}, {"switch_timeout_s": True}, {"switch_timeout_s": "30"}, {"dry_run": "yes"}):
        knobs = {"lag_limit_s": 1.0, "switch_timeout_s": 30.0, "dry_run": False, **bad}
        with pytest.raises(ParameterError):
            guard.check_knobs(**knobs)


def test_where_a_scope_is_served():
    move = Move("crm", "cutover", ("app_crm",), (CRM,))
    assert execute.served_on(move, {"source": {CRM: False}, "aurora": {CRM: True}}) == "source"
    assert execute.served_on(move, {"source": {CRM: True}, "aurora": {CRM: None}}) == "neither side"
    assert execute.served_on(move, {"source": {CRM: False}, "aurora": {CRM: False}}) == "both sides"


def test_switches_are_appended_to_the_run_figures(tmp_path, monkeypatch):
    run_record.append("switches", {"outcome": "nothing outside a run"})
    monkeypatch.setenv(run_record.FIGURES_ENV, str(tmp_path))
    run_record.append("switches", {"outcome": "dry run"})
    run_record.append("switches", {"outcome": "switched"})
    kept = json.loads((tmp_path / "figures" / "switches.json").read_text())
    assert [k["outcome"] for k in kept] == ["dry run", "switched"]


def test_errors_say_what_failed_what_was_undone_and_where_the_scope_is():
    e = SwitchRolledBack("cutover:crm", "timed out at 'wait on source'", ["locked crm_app@% on aurora"], "source")
    assert "ROLLED BACK: timed out at 'wait on source'" in str(e) and "Undone: locked crm_app@% on aurora" in str(e)
    assert "served on source as before" in str(e)
    w = NotCaughtUp("source", f"{A}:3-7", 60, cause="IO Yes, SQL No; applier (SQL) error 1666: impossible")
    assert "within 60s; still missing" in str(w) and "its channel reports: IO Yes, SQL No; applier (SQL) error 1666" in str(w)
