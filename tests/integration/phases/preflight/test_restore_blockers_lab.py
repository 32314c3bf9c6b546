"""What a restore from S3 refuses, found by preflight on a real MySQL 9.7 source (the lab drills of
runbook_lib.lab.drills), and Aurora's GTID position after a restore set on the Aurora stand-in.

The module builds a lab of its own (``<RUNBOOK_TEST_LAB>-restore``, ports $RUNBOOK_TEST_PORT_BASE+32
.. +34).  Each drill: the source fails exactly the row it is about, the row lists what the drill made,
and preflight changed nothing on the source (settings, persisted settings, binary log position,
GTIDs, accounts, tables).  The GTID position: the stand-in as a restore left it 'kept' (nothing
planned) and 'lost' (gtid_executed empty: Aurora 3.08 declares the position with mysql.rds_gtid_purged;
Aurora 3.03 has no such procedure and the plan stops with the steps).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pymysql
import pytest

from runbook_lib.context import session
from runbook_lib.core.errors import CheckFailed
from runbook_lib.lab import drills
from runbook_lib.lab.aurora_standin import install_aurora_standin
from runbook_lib.lab.aurora_wiring import forget_gtid_history
from runbook_lib.mysql.gtid import GtidSet
from runbook_lib.phases.backup_restore.backup import Backup
from runbook_lib.phases.backup_restore.gtid_position import plan_gtid_position
from runbook_lib.phases.preflight.steps import gather
from tests.support import gtids, lab_name, own_lab, params_variant, query

pytestmark = pytest.mark.lab

SECTION = "restore_s3"
TABLES_SQL = ("SELECT CONCAT(table_schema, '.', table_name) AS t, row_format AS f, create_options AS o "
              "FROM information_schema.tables WHERE table_schema NOT IN ('performance_schema', 'information_schema') "
              "ORDER BY 1")


@pytest.fixture(scope="module")
def rlab(tmp_path_factory):
    """(state, servers, params file) of a fresh lab: the unprepared source and the Aurora stand-in, whose
    AWS endpoint restores from S3 *without* the backup's GTID history (the session's lab keeps it)."""
    from runbook_lib.lab import inspect
    before = os.environ.get("RUNBOOK_LAB_RESTORE_GTIDS")
    os.environ["RUNBOOK_LAB_RESTORE_GTIDS"] = "lost"          # read by the endpoint process at its start
    try:
        with own_lab("restore", persona_rows=500) as (state, servers):
            os.environ.pop("RUNBOOK_LAB_RESTORE_GTIDS") if before is None else None
            params = inspect.write_params(state, tmp_path_factory.mktemp("restore") / "lab.yaml")
            yield state, servers, params
    finally:
        if before is None:
            os.environ.pop("RUNBOOK_LAB_RESTORE_GTIDS", None)
        else:
            os.environ["RUNBOOK_LAB_RESTORE_GTIDS"] = before


def source_snapshot(onprem) -> dict:
    """Everything preflight could change on the source, read as labroot."""
    snap = dict(query(onprem, "SELECT @@global.gtid_executed AS g, @@global.default_table_encryption AS e")[0])
    snap["persisted"] = query(onprem, "SELECT * FROM performance_schema.persisted_variables ORDER BY 1")
    snap["binlog"] = query(onprem, "SHOW BINARY LOG STATUS")
    snap["accounts"] = query(onprem, "SELECT user, host FROM mysql.user ORDER BY 1, 2")
    snap["tables"] = query(onprem, TABLES_SQL)
    return snap


def preflight_rows(params) -> dict:
    rb = session.open_session(str(params), [])
    try:
        return {r.item: r for r in gather(rb).checks(SECTION)}
    finally:
        rb.close()


def test_the_lab_source_passes_then_each_drill_fails_its_row_and_preflight_changes_nothing(rlab):
    state, servers, params = rlab
    onprem = servers["onprem"]
    clean = preflight_rows(params)
    assert {i for i, r in clean.items() if r.status == "fail"} == set(), clean
    assert clean["MySQL version: source ≤ Aurora engine"].status == "info"    # 9.7 source, Aurora 8.0 names
    assert clean["InnoDB page size"].status == "pass" and "innodb_log_files_in_group" not in clean
    expected = {"compressed-table": ("compressed tables or pages", "drill_restore.compressed (ROW_FORMAT=COMPRESSED)"),
                "page-compressed": ("compressed tables or pages", "drill_restore.paged (COMPRESSION='zlib')"),
                "outside-datadir": ("tablespaces outside the data directory", "drill_restore/far: /"),
                "table-encryption": ("encryption at rest (InnoDB)", "default_table_encryption=ON"),
                "percona-tables": ("Oracle MySQL source (not Percona Server)", "")}
    try:
        for name, (item, shown) in expected.items():
            drills.drill(name, lab_name("restore"), say=lambda _: None)
            before = source_snapshot(onprem)
            found = preflight_rows(params)
            assert source_snapshot(onprem) == before, f"preflight changed the source ({name})"
            assert {i for i, r in found.items() if r.status == "fail"} == {item}, (name, found)
            assert shown in str(found[item].source), (name, found[item])
            assert found[item].advice, name
            if name == "percona-tables":
                assert "compression_dictionary" in found[item].advice
            drills.mend(lab_name("restore"), say=lambda _: None)
    finally:
        drills.mend(lab_name("restore"), say=lambda _: None)
    assert {i for i, r in preflight_rows(params).items() if r.status == "fail"} == set()


def _backup(position: GtidSet, exact: bool = True) -> Backup:
    return Backup("t", "/nonexistent", "clone", "20261206T000000Z", str(position), exact, "u", "9.7.4", 1, 1)


def _admin(state, aurora, version: str) -> None:
    with aurora.connect(cursorclass=pymysql.cursors.Cursor) as conn:
        install_aurora_standin(conn, aurora_version=version, admin_password=state.passwords["aurora_admin"])


def test_gtid_position_kept_nothing_to_do_lost_declared_with_rds_gtid_purged(rlab):
    state, servers, params = rlab
    aurora = servers["aurora"]
    aurora.write_overrides({"log-bin": "binlog", "gtid_mode": "ON", "enforce_gtid_consistency": "ON"})
    aurora.stop()                              # as phase 3's parameter group has it (log-bin is static)
    aurora.start()
    query(aurora, "CREATE DATABASE IF NOT EXISTS restored")          # the restored data's GTID history
    query(aurora, "CREATE TABLE IF NOT EXISTS restored.t (id INT PRIMARY KEY)")
    query(aurora, "INSERT INTO restored.t VALUES (1), (2)")
    position = gtids(aurora)
    assert position.count() >= 3
    rb = session.open_session(str(params), ["restore"])
    try:
        kept = plan_gtid_position(rb, _backup(position))
        assert kept.plan.is_empty                                      # 'kept': nothing to approve
        with aurora.connect(cursorclass=pymysql.cursors.Cursor) as conn:
            forget_gtid_history(conn)                                  # 'lost', as the endpoint's restore does
        assert gtids(aurora) == GtidSet()
        lost = plan_gtid_position(rb, _backup(position))
        assert [s.shown() for s in lost.sqls] == [f"CALL mysql.rds_gtid_purged('+{position}')"]
        outcome = rb.gate.apply(lost.plan, lost.apply)
        assert outcome.status == "applied", outcome
        assert gtids(aurora) == position
        assert plan_gtid_position(rb, _backup(position)).plan.is_empty
        admin = pymysql.connect(host="127.0.0.1", port=aurora.port, user="admin",
                                password=state.passwords["aurora_admin"], autocommit=True)
        try:                  # refused: a set overlapping gtid_executed (MySQL's 3546), no set at all (1644)
            for arg, errno in ((f"+{position}", 3546), ("+", 1644)):
                with admin.cursor() as cur, pytest.raises(pymysql.MySQLError) as info:
                    cur.execute("CALL mysql.rds_gtid_purged(%s)", (arg,))
                assert info.value.args[0] == errno, info.value.args
        finally:
            admin.close()
        assert gtids(aurora) == position                               # both refusals changed nothing
    finally:
        rb.close()
    with aurora.connect(cursorclass=pymysql.cursors.Cursor) as conn:
        forget_gtid_history(conn)
    _admin(state, aurora, "3.03.1")                                    # no mysql.rds_gtid_purged before 3.04
    rb = session.open_session(str(params), ["restore"])
    try:
        with pytest.raises(CheckFailed) as stop:
            plan_gtid_position(rb, _backup(GtidSet.parse(f"{next(iter(position.intervals()))[0]}:1-5000")))
        assert "3.04" in stop.value.hint
        assert not query(aurora, "SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = "
                                 "'mysql' AND ROUTINE_NAME = 'rds_gtid_purged'")
    finally:
        rb.close()
        _admin(state, aurora, "3.08.0")


def test_phase_4_sets_the_position_a_restore_from_s3_lost(rlab, tmp_path):
    """End to end through the lab's AWS endpoint, which here restores without the GTID history: notebooks
    02-04 with their approvals; phase 4 finds Aurora's gtid_executed empty and declares the backup's
    position with mysql.rds_gtid_purged, and its checks pass."""
    from runbook_lib.run import runner
    state, servers, params = rlab
    run_params = params_variant(params, run_dir=str(tmp_path))
    result = runner.run(run_params, only="02-03", progress=False, say=lambda *_: None)
    assert result.ok, [(p.notebook, p.status, p.error) for p in result.phases]
    query(servers["onprem"], "INSERT INTO tenant_acme.orders (sku, qty, placed_at) VALUES ('t-gtid', 1, NOW())")
    result = runner.run(run_params, only="04", progress=False, say=lambda *_: None)
    assert result.ok, [(p.notebook, p.status, p.error) for p in result.phases]
    [record] = [json.loads(p.read_text()) for p in Path(state.backup_dir).glob("*.runbook.json")]
    assert gtids(servers["aurora"]) == GtidSet(record["gtid"]) == gtids(servers["onprem"]) != GtidSet()
    assert query(servers["aurora"], "SELECT @@global.gtid_purged AS p")[0]["p"]   # declared, not executed
    [nb] = list(result.run_dir.glob("*04_backup_restore*.ipynb"))
    text = nb.read_text()
    assert "CALL mysql.rds_gtid_purged(" in text and "APPLIED: step 'restore'" in text
    assert "PASS: restore: all" in text
