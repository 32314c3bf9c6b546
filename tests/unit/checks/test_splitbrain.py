"""runbook_lib.checks.splitbrain: binary log events -> transactions -> per-table writes by origin (pure parts)."""
from __future__ import annotations

import dataclasses

import pytest

from runbook_lib.checks import splitbrain as sb

SRC = "ba51547c-e772-11f1-8806-02fc00000001"
AUR = "be986fe0-e772-11f1-9838-02fc00000001"
ORIGINS = sb.Origins(frozenset({SRC}), frozenset({AUR}))


def ev(kind: str, info: str = "", pos: int = 0) -> dict:
    """One row of SHOW BINLOG EVENTS as MySQL 9.7 printed it (Log_name, Pos, ... left as they matter)."""
    return {"Log_name": "binlog.000001", "Pos": pos, "Event_type": kind, "Server_id": 1,
            "End_log_pos": pos + 1, "Info": info}


def gtid(uuid: str, n: int) -> dict:
    return ev("Gtid", f"SET @@SESSION.GTID_NEXT= '{uuid}:{n}'")


def rows_txn(uuid: str, n: int, *tables: str, kind: str = "Write_rows") -> list[dict]:
    out = [gtid(uuid, n), ev("Query", "BEGIN")]
    for i, table in enumerate(tables, 90):
        out += [ev("Table_map", f"table_id: {i} ({table})"), ev(kind, f"table_id: {i} flags: STMT_END_F")]
    return out + [ev("Xid", "COMMIT /* xid=81 */")]


# Recorded from a lab server: an account statement, then row changes from both origins.
RECORDED = [
    ev("Format_desc", "Server ver: 9.7.4-2, Binlog ver: 4"), ev("Previous_gtids", ""),
    gtid(AUR, 1), ev("Query", "ALTER USER 'crm_app'@'%' ACCOUNT LOCK /* xid=68 */"),
    *rows_txn(SRC, 1, "app_crm.segment"),
    *rows_txn(SRC, 2, "app_crm.persona", kind="Update_rows"),
    gtid(SRC, 3), ev("Query", "BEGIN"),
    ev("Table_map", "table_id: 93 (tenant_acme.orders)"), ev("Write_rows", "table_id: 93 flags: STMT_END_F"),
    ev("Table_map", "table_id: 90 (app_crm.segment)"), ev("Delete_rows", "table_id: 90 flags: STMT_END_F"),
    ev("Xid", "COMMIT /* xid=85 */"),
    *rows_txn(AUR, 2, "app_crm.persona", kind="Update_rows"),
]


def test_transactions_from_recorded_events():
    txns = list(sb.transactions(RECORDED))
    assert [(t.gtid, sorted(t.tables)) for t in txns] == [
        (f"{SRC}:1", ["app_crm.segment"]), (f"{SRC}:2", ["app_crm.persona"]),
        (f"{SRC}:3", ["app_crm.segment", "tenant_acme.orders"]), (f"{AUR}:2", ["app_crm.persona"])]
    assert txns[0].uuid == SRC and txns[-1].uuid == AUR


def test_transactions_edge_cases():
    anonymous = [ev("Anonymous_Gtid", "SET @@SESSION.GTID_NEXT= 'ANONYMOUS'"), ev("Query", "BEGIN"),
                 ev("Table_map", "table_id: 5 (a.t)"), ev("Write_rows", "table_id: 5 flags: STMT_END_F"),
                 ev("Query", "COMMIT")]
    tagged = [ev("Gtid_tagged", f"SET @@SESSION.GTID_NEXT= '{SRC}:tag_a:7'"),
              ev("Table_map", "table_id: 6 (b.u)"), ev("Update_rows", "table_id: 6 flags: STMT_END_F")]
    tail = [ev("Table_map", "table_id: 9 (c.v)"), ev("Write_rows", "table_id: 9 flags: STMT_END_F"), ev("Xid")]
    empty_skip = [gtid(AUR, 9), ev("Query", "BEGIN"), ev("Query", "COMMIT")]
    txns = list(sb.transactions(tail + anonymous + empty_skip + tagged))   # the window began mid-transaction
    assert [(t.gtid, t.tables) for t in txns] == [("", frozenset({"a.t"})),
                                                 (f"{SRC}:tag_a:7", frozenset({"b.u"}))]
    assert txns[1].uuid == SRC


def test_tally_counts_each_gtid_once_per_side_and_table():
    both_logs = list(sb.transactions(RECORDED)) + list(sb.transactions(RECORDED))   # read on both servers
    t = sb.tally(both_logs, ORIGINS)
    assert [(r.table, r.source, r.aurora, r.verdict) for r in t.tables] == [
        ("app_crm.persona", 1, 1, sb.BOTH), ("app_crm.segment", 2, 0, sb.SOURCE_ONLY),
        ("tenant_acme.orders", 1, 0, sb.SOURCE_ONLY)]
    assert t.transactions == 4 and t.anonymous == 0 and not t.unknown_uuids


def test_tally_ignores_system_schemas_and_named_tables_and_reports_what_it_cannot_attribute():
    other = "11111111-2222-3333-4444-555555555555"
    txns = [sb.Transaction(f"{SRC}:1", frozenset({"mysql.rds_heartbeat2", "runbook.heartbeat", "x.y"})),
            sb.Transaction(f"{AUR}:1", frozenset({"runbook.heartbeat", "tenant.t"})),
            sb.Transaction(f"{other}:5", frozenset({"x.y"})), sb.Transaction("", frozenset({"x.y"}))]
    t = sb.tally(txns, ORIGINS, ignore=["runbook.heartbeat", "tenant"])
    assert [(r.table, r.source, r.aurora) for r in t.tables] == [("x.y", 1, 0)]
    assert t.anonymous == 1 and t.unknown_uuids == (other,)


def test_origins_side():
    assert ORIGINS.side(SRC.upper()) == "source" and ORIGINS.side(AUR) == "aurora" and ORIGINS.side("x") == ""


@pytest.mark.parametrize("since, window, expected, note", [
    (None, 10**9, [("b.000001", 4), ("b.000002", 4), ("b.000003", 4)], ""),
    (None, 350, [("b.000002", 4), ("b.000003", 4)], "older logs not read"),
    (None, 1, [("b.000003", 4)], "older logs not read"),                       # at least the current file
    (sb.BinlogMark("source", "b.000002", 777), 1, [("b.000002", 777), ("b.000003", 4)], ""),
    (sb.BinlogMark("source", "b.000001", 9), 1, [("b.000002", 4), ("b.000003", 4)], "was purged"),
])
def test_files_to_read(since, window, expected, note):
    logs = [("b.000002", 200), ("b.000003", 150)]
    if since is None or since.file != "b.000001":
        logs.insert(0, ("b.000001", 300))
    files, why = sb.files_to_read(logs, since, window)
    assert files == expected and note in why and (why == "") == (note == "")


def test_report_frame_warning_and_figures():
    t = sb.tally(list(sb.transactions(RECORDED)), ORIGINS)
    window = sb.BinlogWindow("source", "binlog.000001:4", "binlog.000001:2453", 26, 1)
    report = sb.SplitBrainReport(t, (window,), scope=("tenant_acme",))
    frame = report.to_frame()
    assert list(frame.columns) == sb.FRAME_COLUMNS
    assert list(frame["table"]) == ["app_crm.persona", "tenant_acme.orders (scope)", "app_crm.segment"]
    assert report.both == ["app_crm.persona"]
    assert report.warning().startswith("WARNING") and "app_crm.persona" in report.warning()
    assert "in this scope" not in report.warning()
    assert "binlog.000001:4 .. binlog.000001:2453 (1 file(s), 26 events)" in report.warning()
    assert report.figures()["both_sides"] == ["app_crm.persona"]
    quiet = sb.SplitBrainReport(sb.tally([], ORIGINS), (window,))
    assert quiet.warning().startswith("OK") and quiet.to_frame().empty
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.title = "x"  # type: ignore[misc]


def test_every_uuid_aurora_writers_used_is_aurora_after_a_failover():
    """Aurora failed over from A1 to A2 (another DB instance, its own server_uuid): A1's transactions
    are still Aurora's, whether they reached the source (received) or not (only Aurora has them)."""
    from runbook_lib.mysql.gtid import GtidSet
    a1, a2, old = "a1a1a1a1-0000-0000-0000-000000000001", "a2a2a2a2-0000-0000-0000-000000000002", \
        "0ddc0ddc-0000-0000-0000-000000000003"
    executed = {"source": GtidSet(f"{SRC}:1-50,{old}:1-9,{a1}:1-10,{a2}:1-3"),
                "aurora": GtidSet(f"{SRC}:1-40,{old}:1-9,{a1}:1-12,{a2}:1-3")}
    received = {"source": GtidSet(f"{SRC}:41-50"), "aurora": GtidSet(f"{a2}:1-3")}   # A1's channel history is gone
    origins = sb.origins_from({"source": SRC, "aurora": a2.upper()}, received, executed)
    assert origins.side(a1) == "aurora" and origins.side(a2) == "aurora" and origins.side(SRC) == "source"
    assert origins.side(old) == ""          # the history both sides had before: no origin
    received["aurora"] = GtidSet(f"{a1}:1-10,{a2}:1-3")                                # the channel saw A1 too
    executed["aurora"] = executed["source"]                                            # all caught up
    assert sb.origins_from({"source": SRC, "aurora": a2}, received, executed).side(a1) == "aurora"
