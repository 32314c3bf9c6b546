"""runbook_lib.lab.faults, runbook_lib.phases.troubleshooting.diagnosis and runbook_lib.phases.troubleshooting.repair against real servers.

The module builds a lab instance of its own (``<RUNBOOK_TEST_LAB>-faults``, port base
$RUNBOOK_TEST_FAULTS_PORT_BASE, default RUNBOOK_TEST_PORT_BASE + 16) and sets up two-way GTID
replication directly with labroot: GTIDs on the source (online), Aurora a clone of it with GTIDs and a
binary log, auto_increment offsets 2/1, Aurora's channel through the stand-in's procedures as its admin,
the source's with CHANGE REPLICATION SOURCE.  Each test breaks replication one way, checks what the
diagnosis says, fixes it through the library with the fix approved, and checks that both directions run
and the data agree.  The notebook runs of the same fixes are in tests/notebooks/test_09_troubleshooting.py.
"""
from __future__ import annotations

import pytest

from runbook_lib.checks import channels
from runbook_lib.checks.consistency import comparison as consistency
from runbook_lib.context import session
from runbook_lib.core import errors
from runbook_lib.lab import faults
from runbook_lib.phases.troubleshooting import diagnosis as ts
from runbook_lib.phases.troubleshooting import repair
from tests.support import (
    aurora_from_clone,
    own_lab,
    params_variant,
    prepare_source,
    query,
    replica_running,
    start_channel,
    wait_for,
)

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def flab(tmp_path_factory):
    """(lab name, servers, params_file) with replication running both ways, set up with labroot."""
    from runbook_lib.lab import inspect
    with own_lab("faults") as (state, servers):
        src, aur = servers["onprem"], servers["aurora"]
        prepare_source(src)
        password = state.passwords["replicator"]
        query(src, "CREATE USER 'replicator'@'%%' IDENTIFIED BY %s", (password,))
        query(src, "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'replicator'@'%'")
        aurora_from_clone(state, servers)
        admin = {"user": "admin", "password": state.passwords["aurora_admin"]}
        query(aur, "CALL mysql.rds_set_external_source_with_auto_position("
                   "'127.0.0.1', %s, 'replicator', %s, 0)", (src.port, password), **admin)
        query(aur, "CALL mysql.rds_set_binlog_source_ssl(1)", **admin)    # ssl_encryption is not implemented
        query(aur, "CALL mysql.rds_start_replication", **admin)
        start_channel(src, aur.port, password, connect_retry=2)
        wait_for("both channels running", lambda: replica_running(src) and replica_running(aur))
        params = params_variant(inspect.write_params(state, tmp_path_factory.mktemp("faults") / "lab.yaml"),
                                approvals=[])
        yield state.name, servers, params


def open_rb(params, approve=()):
    return session.open_session(str(params), list(approve), quiet=True)


def fix_through_library(params, approve, **knobs):
    """What notebook 09 does, cell by cell."""
    with open_rb(params, approve) as rb:
        diagnosis = ts.diagnose(rb)
        outcomes = repair.apply_all(rb, repair.plan_fixes(rb, diagnosis, fix=knobs.get("fix", "auto")))
        repair.require_fixed(rb, diagnosis, settle=10)
        comparison = repair.compare_affected(rb, diagnosis, fix=knobs.get("fix", "auto"))
        rows = repair.plan_row_repairs(rb, diagnosis, comparison, fix=knobs.get("fix", "auto"))
        outcomes += repair.apply_all(rb, rows)
        return diagnosis, outcomes, repair.verify(rb, diagnosis)


def assert_healthy(params) -> None:
    with open_rb(params) as rb:
        channels.require_running(rb, channels.directions(rb, settle=10))
        result = consistency.compare(rb.source(), rb.aurora(), rb.params.app_schemas)
        assert result.ok, result.to_frame().to_string()


# --- tests -------------------------------------------------------------------------------------

def test_break_refuses_a_lab_without_running_replication(flab):
    name, servers, _ = flab
    query(servers["aurora"], "STOP REPLICA IO_THREAD")
    try:
        with pytest.raises(errors.LabError, match="replication into aurora is not running"):
            faults.break_lab("conflict", name, say=lambda *_: None)
    finally:
        query(servers["aurora"], "START REPLICA IO_THREAD")
    with pytest.raises(errors.LabError, match="not a fault"):
        faults.break_lab("meteor", name)
    wait_for("running again", lambda: replica_running(servers["aurora"]))


def test_duplicate_key_diagnosed_and_repaired_keeping_the_source(flab):
    name, servers, params = flab
    report = faults.break_lab("duplicate-key", name, say=lambda *_: None)
    assert "1062" in report.text()
    before = {n: query(i, "SELECT @@GLOBAL.gtid_executed AS g")[0]["g"] for n, i in servers.items()}
    with open_rb(params) as rb:                       # nothing approved: it reads, plans, changes nothing
        d = ts.diagnose(rb)
        aurora = d.get("aurora")
        assert (aurora.kind, aurora.errno, aurora.facts.key_name) == ("row-conflict", 1062, "persona.PRIMARY")
        assert d.get("source").ok and aurora.tables == ("app_crm.persona",)
        assert [e.event for e in aurora.events if e.table] == ["Table_map", "Write_rows"]
        assert "relay log" in aurora.events_from and aurora.gtid.split(":")[0] in before["onprem"]
        fixes = repair.plan_fixes(rb, d)
        assert [f.plan.step_id for f in fixes] == ["fix:aurora"]
        details = " ".join(s.detail for s in fixes[0].plan.steps)
        assert f"CALL mysql.rds_skip_transaction_with_gtid('{aurora.gtid}')" in details
        assert "CALL mysql.rds_stop_replication" in details and "CALL mysql.rds_start_replication" in details
        assert [o.status for o in repair.apply_all(rb, fixes)] == ["skipped"]
        with pytest.raises(errors.NotApplied) as exc:
            repair.require_fixed(rb, d, settle=0)
        assert exc.value.step == "fix:aurora"
    assert {n: query(i, "SELECT @@GLOBAL.gtid_executed AS g")[0]["g"] for n, i in servers.items()} == before
    key = int(aurora.facts.key)
    _diagnosis, outcomes, verification = fix_through_library(params, ["fix:aurora"])
    assert verification.ok and [o.status for o in outcomes] == ["applied", "applied"]
    rows = {n: query(i, "SELECT first_name, origin FROM app_crm.persona WHERE id = %s", (key,)) for n, i in servers.items()}
    assert rows["onprem"] == rows["aurora"] == [{"first_name": "Real", "origin": "source"}]
    assert_healthy(params)
    # the repair reached Aurora by replication: Aurora itself wrote nothing
    aurora_uuid = query(servers["aurora"], "SELECT @@server_uuid AS u")[0]["u"]
    assert aurora_uuid not in query(servers["aurora"], "SELECT @@GLOBAL.gtid_executed AS g")[0]["g"]


def test_conflict_stops_both_channels_and_both_fixes_make_them_agree(flab):
    name, servers, params = flab
    faults.break_lab("conflict", name, say=lambda *_: None)
    with open_rb(params) as rb:
        d = ts.diagnose(rb)
        assert [(p.channel, p.kind, p.errno) for p in d.problems] == [("aurora", "row-conflict", 1032),
                                                                     ("source", "row-conflict", 1032)]
        assert all(p.tables == ("app_billing.payment_log",) for p in d.problems)
        assert d.to_frame()["fix step"].tolist() == ["fix:aurora", "fix:source"]
    _diagnosis, _outcomes, verification = fix_through_library(params, ["fix:aurora", "fix:source"])
    assert verification.ok
    methods = {n: query(i, "SELECT method FROM app_billing.payment_log WHERE method LIKE '%%-fix'")
               for n, i in servers.items()}
    assert methods["onprem"] == methods["aurora"] == [{"method": "src-fix"}]    # both failed: the source's kept
    assert_healthy(params)


def test_stopped_io_is_restarted_with_aurora_procedures(flab):
    name, servers, params = flab
    faults.break_lab("stopped-io", name, say=lambda *_: None)
    with open_rb(params, ["fix:aurora"]) as rb:
        d = ts.diagnose(rb)
        assert (d.get("aurora").kind, d.get("aurora").io_running) == ("stopped", "No")
        fixes = repair.plan_fixes(rb, d)
        assert [s.action.split(" (")[0] for s in fixes[0].plan.steps] == ["stop replication", "start replication"]
        repair.apply_all(rb, fixes)
        repair.require_fixed(rb, d, settle=10)
        assert repair.verify(rb, d).ok
        assert repair.plan_fixes(rb, ts.diagnose(rb)) == []                   # a second run plans nothing
    wait_for("the row on Aurora", lambda: query(servers["aurora"], "SELECT 1 FROM tenant_acme.orders WHERE sku = 'fault-io'"))
    assert_healthy(params)


def test_purged_binlogs_declared_on_the_source_and_rows_copied(flab):
    name, servers, params = flab
    faults.break_lab("purged-binlogs", name, say=lambda *_: None)
    with open_rb(params) as rb:
        p = ts.diagnose(rb).get("source")
        assert p.kind == "purged-binlogs" and p.errno in (1236, 13114)
        aurora_uuid = query(servers["aurora"], "SELECT @@server_uuid AS u")[0]["u"]
        assert p.missing.startswith(aurora_uuid) and p.missing.count(":") == 1
    _diagnosis, outcomes, verification = fix_through_library(params, ["fix:source"])
    assert verification.ok and [o.step_id for o in outcomes] == ["fix:source", "fix:source"]
    for inst in servers.values():
        assert len(query(inst, "SELECT id FROM tenant_globex.orders WHERE sku LIKE 'fault-purged-%%'")) == 2
    assert_healthy(params)


def test_skip_alone_leaves_the_rows_different_and_says_so(flab):
    name, _servers, params = flab
    faults.break_lab("duplicate-key", name, say=lambda *_: None)
    with pytest.raises(errors.CheckFailed, match="app_crm.persona"):
        fix_through_library(params, ["fix:aurora"], fix="skip")
    # a second run with fix='repair' finds both channels running and repairs the row when told whose is right
    with open_rb(params, ["fix:aurora"]) as rb:
        d = ts.diagnose(rb)
        assert not d.failing
        comparison = repair.compare_affected(rb, d, tables=["app_crm.persona"])
        assert comparison.tables_differ == ["app_crm.persona"]
        assert repair.plan_row_repairs(rb, d, comparison) == []              # nobody said whose rows are right
        fixes = repair.plan_row_repairs(rb, d, comparison, keep="source")
        repair.apply_all(rb, fixes)
        assert repair.verify(rb, d, tables=["app_crm.persona"]).ok
    assert_healthy(params)
