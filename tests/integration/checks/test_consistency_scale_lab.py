"""runbook_lib.checks.consistency.scan / .changes / .throttle against two real MySQL 9.7 servers replicating
both ways (the shared lab '<RUNBOOK_TEST_LAB>-bidir', as test_consistency_lab).

Differences are made as they happen: unlogged writes (sql_log_bin=0) and, for the re-verification,
the same rows written on both sides while replication is stopped (each side then applies the other's
row images: they end swapped).  Each test repairs what it broke."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from runbook_lib.checks import heartbeat
from runbook_lib.checks.consistency import changes, scan
from runbook_lib.checks.consistency.ledger import Ledger
from runbook_lib.checks.consistency.throttle import Throttle
from tests.support import REPO

pytestmark = pytest.mark.lab

TABLE = "app_crm.persona"
SMALL = {"target_seconds": 0.002, "max_chunk_rows": 500, "progress": False}     # many small chunks

KILLED = """
import sys
import bench
from runbook_lib.checks.consistency import scan
from runbook_lib.lab import control
ctx = bench.Context(control.load_state(sys.argv[1]))
scan.full_check(ctx.server("onprem"), ctx.server("aurora"), ["app_crm"], tables=["app_crm.persona"], mode="fresh",
                target_seconds=0.002, max_chunk_rows=500, progress=False)
"""


def unlogged(server, sql: str, args=()) -> None:
    server.execute("SET SESSION sql_log_bin = 0")
    try:
        server.execute(sql, args)
    finally:
        server.execute("SET SESSION sql_log_bin = 1")


def chunks_recorded(server, run_id: str) -> int:
    return int(server.scalar("SELECT COUNT(*) FROM runbook.consistency_chunk WHERE run_id = %s", (run_id,)))


def verdict(result) -> tuple:
    t = result.tables[0]
    return t.verdict, t.source_rows, t.aurora_rows, [(r.first, r.kind) for r in t.ranges], t.differing_rows


def test_a_check_killed_in_the_middle_resumes_to_the_same_verdict(two_way, servers) -> None:
    src, aur = servers
    lo, hi = (int(v) for v in src.query_one(f"SELECT MIN(id) + 10 AS a, MAX(id) - 10 AS b FROM {TABLE}").values())
    unlogged(aur, f"UPDATE {TABLE} SET score = score + 7 WHERE id IN (%s, %s)", (lo, hi))
    try:
        whole = scan.full_check(src, aur, ["app_crm"], tables=[TABLE], mode="fresh", **SMALL)
        assert verdict(whole)[0] == "differ" and whole.tables[0].chunks > 40, whole.to_frame()
        assert {(r.first, r.kind) for r in whole.tables[0].ranges} == {(str(lo), "changed"), (str(hi), "changed")}
        assert {(s.key, s.column) for s in whole.samples} == {(str(lo), "score"), (str(hi), "score")}
        ledger = Ledger(src, ["app_crm"], [TABLE])
        proc = subprocess.Popen([sys.executable, "-c", KILLED, two_way.state.name], cwd=REPO,
                                env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while (run := ledger.latest()).run_id == whole.run_id or chunks_recorded(src, run.run_id) < 10:
                assert proc.poll() is None and time.monotonic() < deadline, "the check ended before it was killed"
                time.sleep(0.01)
        finally:
            proc.kill()
            proc.wait()
        killed = ledger.latest()
        done_before = chunks_recorded(src, killed.run_id)
        assert not killed.done and done_before < whole.tables[0].chunks
        two_way.wait_caught_up()            # the progress replicated: aurora knows where the pass stopped
        assert Ledger(aur, ["app_crm"], [TABLE]).latest().run_id == killed.run_id
        assert chunks_recorded(aur, killed.run_id) == done_before
        resumed = scan.full_check(src, aur, ["app_crm"], tables=[TABLE], **SMALL)
        assert resumed.resumed and resumed.run_id == killed.run_id
        assert verdict(resumed) == verdict(whole)
        again = scan.full_check(src, aur, ["app_crm"], tables=[TABLE], **SMALL)    # after a finished pass: anew
        assert not again.resumed and again.run_id != killed.run_id and verdict(again) == verdict(whole)
    finally:
        unlogged(aur, f"UPDATE {TABLE} SET score = score - 7 WHERE id IN (%s, %s)", (lo, hi))


def _replication(two_way, run: bool) -> None:
    with two_way.server("onprem") as s:
        s.execute(s.dialect.start_replica() if run else s.dialect.stop_replica())
    with two_way.server("aurora") as s:
        s.execute(s.dialect.start_replication() if run else s.dialect.stop_replication())


def test_reverification_reads_only_the_rows_written_since_and_finds_the_conflicts(two_way, servers) -> None:
    src, aur = servers
    full = scan.full_check(src, aur, ["app_crm"], tables=[TABLE], mode="fresh", progress=False)
    assert full.ok, full.to_frame()
    base = int(src.scalar(f"SELECT MIN(id) FROM {TABLE}")) + 1000
    ids = [int(r["id"]) for r in src.query(f"SELECT id FROM {TABLE} WHERE id >= %s ORDER BY id LIMIT 60", (base,))]
    _replication(two_way, False)
    try:
        src.execute(f"UPDATE {TABLE} SET score = score + 1 WHERE id BETWEEN %s AND %s", (ids[0], ids[39]))
        aur.execute(f"UPDATE {TABLE} SET score = score + 2 WHERE id BETWEEN %s AND %s", (ids[30], ids[59]))
    finally:
        _replication(two_way, True)
    two_way.wait_caught_up()
    try:
        result = changes.reverify(src, aur, ["app_crm"], tables=[TABLE], progress=False)
        table = result.tables[0]
        assert result.kind == "reverify" and table.chunks == 60, result.to_frame()       # 60 keys written
        assert [(int(r.first), r.kind) for r in table.ranges] == [(k, "changed") for k in ids[30:40]]
        assert table.differing_rows == 10 and not result.ok
        assert {s.column for s in result.samples} == {"score"} and len(result.samples) == 5
        assert len(result.rounds) == 1 and result.rounds[0].changed == 60
        assert result.seconds < 5
    finally:
        src.execute(f"UPDATE {TABLE} SET score = 0 WHERE id BETWEEN %s AND %s", (ids[30], ids[39]))
        two_way.wait_caught_up()
    healed = changes.reverify(src, aur, ["app_crm"], tables=[TABLE], progress=False)
    assert healed.ok and healed.tables[0].chunks == 10, healed.to_frame()   # the repaired keys, checked again


def test_the_throttle_waits_while_a_direction_lags_and_says_why(two_way, servers) -> None:
    src, aur = servers
    src.execute(heartbeat.SCHEMA_DDL)
    src.execute(heartbeat.TABLE_DDL)
    two_way.wait_caught_up()
    monitor = heartbeat.HeartbeatMonitor(heartbeat.Side("source", "onprem", two_way.opener("onprem")),
                                         heartbeat.Side("aurora", "aurora", two_way.opener("aurora")))
    throttle = Throttle(lag_limit=0.5, monitor=monitor, max_wait=30)
    with two_way.server("aurora") as s:
        s.execute(s.dialect.stop_replication())
    restart = threading.Timer(2.0, lambda: _replication(two_way, True))
    said: list[str] = []
    monitor.start(30)
    try:
        time.sleep(1.0)
        restart.start()
        throttle.wait((src, aur), said.append)
    finally:
        restart.join()
        monitor.stop()
    assert throttle.pauses == 1 and throttle.waited >= 0.5
    assert any("source → aurora lag" in s and "> 0.5 s" in s for s in said), said
    assert said[-1] == ""
