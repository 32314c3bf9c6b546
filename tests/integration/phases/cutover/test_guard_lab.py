"""Guarded cut-overs and causes named, against real servers (issue 13 items 2 and 3).

The module builds a lab of its own (``<RUNBOOK_TEST_LAB>-guard``, port base + 52) replicating both ways
as tests.support sets it up (the scopes' data and accounts copied to Aurora unlogged, Aurora's binary
log retention set as phases 2 and 5 set it).  In file order: a passing cut-over through ``runbook run``
(its record in summary.json), a dry run that changes nothing on the servers, a fallback and then a
cut-over whose switch really fails half-way (the source held under FLUSH TABLES WITH READ LOCK, so
its applier cannot execute Aurora's replicated unlock before the switch's time runs out) and is rolled
back; last, the settings that drift (``binlog_format=STATEMENT`` persisted on the source,
``auto_increment_offset`` changed) make phase 06 fail naming the setting and the applier's error.
"""
from __future__ import annotations

import json
import threading
import time

import nbformat
import pymysql
import pytest

from runbook_lib.context import session
from runbook_lib.core.errors import NotCaughtUp, SwitchRolledBack
from runbook_lib.phases.cutover import execute, guard
from runbook_lib.phases.cutover import steps as cutover
from runbook_lib.run import runner
from tests.integration.phases.cutover.test_cutover_lab import two_way_lab
from tests.notebooks.conftest import outputs_text
from tests.support import params_variant, query, settle, wait_for

pytestmark = pytest.mark.lab

QUIET = {"progress": False, "say": lambda *_: None}
FAST = {"write_window_seconds": 0.5, "catch_up_timeout_seconds": 20.0}


@pytest.fixture(scope="module")
def glab(tmp_path_factory):
    """(state, servers, params file) of a lab replicating both ways, the scopes on both sides."""
    with two_way_lab("guard", tmp_path_factory, persona_rows=500) as (state, servers, params):
        query(servers["aurora"], "CALL mysql.rds_set_configuration('binlog retention hours', 48)")   # as phase 5
        query(servers["onprem"], "SET PERSIST binlog_expire_logs_seconds = 604800")                 # as phase 2
        yield state, servers, params


def locked(glab, user: str = "crm_app") -> dict[str, str]:
    settle(glab[1])
    return {name: query(inst, "SELECT account_locked AS l FROM mysql.user WHERE User = %s AND Host = '%%'",
                        (user,))[0]["l"] for name, inst in glab[1].items()}


def server_state(glab) -> dict:
    """What a switch could change, read with labroot: GTIDs executed, every account's lock, persisted settings."""
    return {name: (query(inst, "SELECT @@GLOBAL.gtid_executed AS g")[0]["g"],
                   query(inst, "SELECT User, Host, account_locked FROM mysql.user ORDER BY User, Host"),
                   query(inst, "SELECT * FROM performance_schema.persisted_variables ORDER BY 1"))
            for name, inst in glab[1].items()}


def can_log_in(glab, side: str) -> bool:
    state, servers, _ = glab
    try:
        servers[side].connect(user="crm_app", password=state.passwords["apps"], database="app_crm").close()
        return True
    except pymysql.err.OperationalError as e:
        assert e.args[0] == 3118, e                       # ER_ACCOUNT_HAS_BEEN_LOCKED, nothing else
        return False


def switch(glab, direction: str, *, timeout: float = 20.0, dry_run: bool = False):
    with session.open_session(params_variant(glab[2], approvals=[]), [f"{direction}:crm"], quiet=True) as rb:
        move = cutover.prepare(rb, "crm", direction)
        checks = guard.guardrails(rb, move, lag_limit_s=2.0, write_window=0.5, catch_up_timeout=20)
        checks.show()
        execute.require(rb, checks, dry_run=dry_run)
        planned = cutover.plan_switch(rb, move, timeout=timeout)
        return planned, execute.run(rb, planned, checks, dry_run=dry_run, rollback_timeout=30)


# --- the guarded switch -----------------------------------------------------------------------------

def test_a_passing_cutover_through_runbook_run_is_recorded_in_summary_json(glab, tmp_path):
    assert locked(glab) == {"onprem": "N", "aurora": "N"}
    params = params_variant(glab[2], notebook_parameters={"08_cutover": FAST})
    result = runner.run(params, only="08", run_dir=tmp_path, **QUIET)
    assert result.ok
    summary = json.loads((result.run_dir / "summary.json").read_text())
    (record,) = summary["switches"]
    assert record["step"] == "cutover:crm" and record["outcome"] == "switched"
    assert record["approved_by"].startswith("approvals in the parameters file: cutover:crm")
    assert 0 < record["write_pause_s"] < 30 and record["at"].startswith("20")
    assert record["guardrails"]["lag source → aurora ≤ 1 s"] == "pass"
    assert record["guardrails"]["the way back: replication aurora → source runs without error"] == "pass"
    assert record["guardrails"]["errant GTIDs (on one side only, never to replicate)"] == "pass"
    assert record["guardrails"]["the scope's tables are identical on both sides"] == "pass"
    assert record["guardrails"]["setting: binlog_format"] == "pass"
    assert locked(glab) == {"onprem": "Y", "aurora": "N"}                  # checked on the servers


def test_a_dry_run_changes_nothing_even_when_approved(glab, tmp_path):
    before = server_state(glab)
    knobs = {**FAST, "direction": "fallback", "dry_run": True}           # fallback:crm is approved in the yaml
    result = runner.run(params_variant(glab[2], notebook_parameters={"08_cutover": knobs}), only="08",
                        run_dir=tmp_path, **QUIET)
    assert result.ok
    time.sleep(1)
    assert server_state(glab) == before                                   # checked on both servers
    (record,) = json.loads((result.run_dir / "summary.json").read_text())["switches"]
    assert record["outcome"] == "dry run" and record["write_pause_s"] is None and record["done"] == []
    assert record["guardrails"]["the way back: replication source → aurora runs without error"] == "pass"
    text = outputs_text(nbformat.read(result.run_dir / "08_cutover.ipynb", as_version=4))
    assert "PLAN fallback:crm" in text and "DRY RUN: nothing was changed" in text and "APPLIED" not in text


def test_a_cutover_that_fails_half_way_is_rolled_back_to_the_side_it_started_from(glab, tmp_path, monkeypatch):
    _, servers, _ = glab
    planned, outcome = switch(glab, "fallback")                 # the scope back on the source first
    assert outcome.status == "applied"
    assert locked(glab) == {"onprem": "N", "aurora": "Y"}
    monkeypatch.setenv("RUNBOOK_RUN_DIR", str(tmp_path))
    held, release = threading.Event(), threading.Event()

    def hold_the_source() -> None:              # a real lock on a real server: the source's applier waits
        with servers["onprem"].connect() as conn, conn.cursor() as cur:
            cur.execute("FLUSH TABLES WITH READ LOCK")
            held.set()
            release.wait(30)
            cur.execute("UNLOCK TABLES")

    with session.open_session(params_variant(glab[2], approvals=[]), ["cutover:crm"], quiet=True) as rb:
        move = cutover.prepare(rb, "crm", "cutover")
        checks = guard.guardrails(rb, move, lag_limit_s=2.0, write_window=0.5, catch_up_timeout=20)
        execute.require(rb, checks)
        planned = cutover.plan_switch(rb, move, timeout=3.0)
        assert [(a.role, a.kind) for a in planned.actions] == [
            ("aurora", "unlock"), ("source", "wait"), ("source", "lock"), ("source", "kill")]
        holder = threading.Thread(target=hold_the_source)
        holder.start()
        try:
            assert held.wait(10)
            threading.Timer(6.0, release.set).start()           # after the switch's 3 s have run out
            with pytest.raises(SwitchRolledBack) as exc:
                execute.run(rb, planned, checks, rollback_timeout=30)
        finally:
            release.set()
            holder.join()
    text = str(exc.value)
    assert "timed out at 'wait on source'" in text and "served on source as before" in text
    assert "the applier is: Waiting for global read lock" in text       # the cause, as the channel says it
    assert "locked crm_app@% on aurora (replicates)" in text
    assert locked(glab) == {"onprem": "N", "aurora": "Y"}      # as it started: served on the source
    assert can_log_in(glab, "onprem") and not can_log_in(glab, "aurora")
    (record,) = json.loads((tmp_path / "figures" / "switches.json").read_text())
    assert record["outcome"] == "rolled back" and record["done"][0] == "unlocked crm_app@% on aurora"
    assert record["undone"] and record["write_pause_s"] >= 3.0 and "timed out" in record["cause"]


# --- causes, not symptoms -------------------------------------------------------------------------

def test_a_persisted_binlog_format_statement_fails_phase_06_naming_it_and_the_applier_error(glab, tmp_path):
    state, servers, params = glab
    onprem, aurora = servers["onprem"], servers["aurora"]
    with onprem.connect() as conn, conn.cursor() as cur:       # MySQL refuses it while an applier runs (3747)
        for sql in ("STOP REPLICA SQL_THREAD", "SET PERSIST binlog_format = 'STATEMENT'", "START REPLICA SQL_THREAD"):
            cur.execute(sql)
    try:
        query(aurora, "INSERT INTO tenant_acme.orders (sku, qty, placed_at) VALUES ('fmt', 1, NOW())")
        wait_for("the source's applier to stop", lambda: query(
            onprem, "SHOW REPLICA STATUS")[0]["Last_SQL_Errno"] == 1666, 30)
        with pytest.raises(runner.PhaseFailed) as exc:
            runner.run(params, only="06", run_dir=tmp_path, **QUIET)
        error = exc.value.phase.error
        assert error.startswith("CheckFailed: settings and channels")
        assert "binlog_format (source: STATEMENT (wanted ROW))" in error
        assert "error 1666" in error and "BINLOG_FORMAT = STATEMENT" in error
        with session.open_session(params, [], quiet=True) as rb, pytest.raises(NotCaughtUp) as wait:
            from runbook_lib.checks import channels
            channels.wait_until_caught_up(rb.source(), channels.executed_gtids(rb.aurora()), 1)
        assert "applier worker 1 error 1666" in str(wait.value)
    finally:
        with onprem.connect() as conn, conn.cursor() as cur:
            for sql in ("STOP REPLICA SQL_THREAD", "SET PERSIST binlog_format = 'ROW'", "START REPLICA SQL_THREAD"):
                cur.execute(sql)
    settle(servers)                                            # the fix the row gives cures it


def test_a_changed_auto_increment_offset_fails_phase_06_naming_it(glab, tmp_path):
    _, servers, params = glab
    query(servers["onprem"], "SET PERSIST auto_increment_offset = 1")     # Aurora's: ids would collide
    try:
        with pytest.raises(runner.PhaseFailed) as exc:
            runner.run(params, only="06", run_dir=tmp_path, **QUIET)
        assert "auto_increment_offset (source: 1 (wanted 2))" in exc.value.phase.error
        with session.open_session(params, [], quiet=True) as rb:
            from runbook_lib.phases.cutover.checks import move_for
            checks = guard.guardrails(rb, move_for(rb.params, "billing", "cutover"), write_window=0.5,
                                      catch_up_timeout=20)
        row = next(r for r in checks.results if r.item == "setting: auto_increment_offset")
        assert row.status == "fail" and "SET PERSIST auto_increment_offset = 2" in row.advice
        assert not checks.ok
    finally:
        query(servers["onprem"], "SET PERSIST auto_increment_offset = 2")
