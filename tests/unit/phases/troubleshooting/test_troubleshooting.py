"""Pure logic of runbook_lib.phases.troubleshooting.diagnosis and runbook_lib.phases.troubleshooting.repair: error texts as MySQL 9.7 printed them
in the lab, relay log events, the choice of fix, the side kept, and the repair statements."""
from __future__ import annotations

from decimal import Decimal

import pytest

from runbook_lib.checks.channels import TO_AURORA, TO_SOURCE
from runbook_lib.checks.consistency.chunks import Column, TableShape
from runbook_lib.core.errors import ParameterError, RunbookError
from runbook_lib.mysql.gtid import GtidSet
from runbook_lib.mysql.status import ReplicaStatus
from runbook_lib.phases.troubleshooting import diagnosis as ts
from runbook_lib.phases.troubleshooting import failed_transaction, repair, row_sync

SRC = "38cb7491-e775-11f1-ac1e-02fc00000001"
AUR = "6dd868c2-e775-11f1-bc87-02fc00000001"
DUPLICATE = (f"Worker 1 failed executing transaction '{SRC}:5' at source log binlog.000005, end_log_pos 2303; "
             "Could not execute Write_rows event on table app_crm.persona; Duplicate entry '20102' for key "
             "'persona.PRIMARY', Error_code: 1062; handler error HA_ERR_FOUND_DUPP_KEY; the event's source log "
             "binlog.000005, end_log_pos 2303")
NOT_FOUND = (f"Worker 1 failed executing transaction '{AUR}:2' at source log binlog.000001, end_log_pos 1357; "
             "Could not execute Update_rows event on table app_billing.payment_log; Can't find record in "
             "'payment_log', Error_code: 1032; handler error HA_ERR_END_OF_FILE; the event's source log "
             "binlog.000001, end_log_pos 1357")
COORDINATOR = ("Coordinator stopped because there were error(s) in the worker(s). The most recent failure being: "
               f"Worker 1 failed executing transaction '{SRC}:5' at source log binlog.000005, end_log_pos 2303. "
               "See error log and/or performance_schema.replication_applier_status_by_worker table for more "
               "details about this failure or others, if any.")
PURGED = ("Got fatal error 1236 from source when reading data from binary log: 'Cannot replicate because the "
          "source purged required binary logs. Replicate the missing transactions from elsewhere, or provision a "
          f"new replica from backup. ... The GTID set sent by the replica is '{SRC}:1-7', and the missing "
          f"transactions are '{AUR}:3-4'.'")


def test_parse_duplicate_key() -> None:
    f = failed_transaction.parse_error(DUPLICATE)
    assert (f.gtid, f.event, f.table, f.key, f.key_name) == (f"{SRC}:5", "Write_rows", "app_crm.persona", "20102",
                                                              "persona.PRIMARY")
    assert (f.handler, f.source_log, f.end_log_pos) == ("HA_ERR_FOUND_DUPP_KEY", "binlog.000005", 2303)


def test_parse_not_found_coordinator_and_purged() -> None:
    f = failed_transaction.parse_error(NOT_FOUND)
    assert (f.gtid, f.event, f.table, f.key, f.handler) == (f"{AUR}:2", "Update_rows", "app_billing.payment_log",
                                                            "", "HA_ERR_END_OF_FILE")
    assert failed_transaction.parse_error(COORDINATOR).gtid == f"{SRC}:5" and failed_transaction.parse_error(COORDINATOR).table == ""
    assert failed_transaction.parse_error(PURGED).missing == f"{AUR}:3-4"
    assert failed_transaction.parse_error("") == failed_transaction.ErrorFacts()


def test_short_error_drops_what_other_columns_say() -> None:
    assert failed_transaction.short_error(DUPLICATE) == ("Could not execute Write_rows event on table app_crm.persona; Duplicate "
                                         "entry '20102' for key 'persona.PRIMARY', Error_code: 1062; handler error "
                                         "HA_ERR_FOUND_DUPP_KEY")
    assert failed_transaction.short_error(COORDINATOR) == COORDINATOR        # nothing left: keep the server's words
    assert failed_transaction.short_error(PURGED).startswith("'Cannot replicate because the source purged")


EVENTS = [
    {"Pos": 4, "Event_type": "Format_desc", "Info": "Server ver: 9.7.4"},
    {"Pos": 848, "Event_type": "Gtid", "Info": f"SET @@SESSION.GTID_NEXT= '{SRC}:4'"},
    {"Pos": 927, "Event_type": "Query", "Info": "BEGIN"},
    {"Pos": 1012, "Event_type": "Table_map", "Info": "table_id: 114 (app_billing.payment_log)"},
    {"Pos": 1089, "Event_type": "Update_rows", "Info": "table_id: 114 flags: STMT_END_F"},
    {"Pos": 1175, "Event_type": "Xid", "Info": "COMMIT /* xid=2540 */"},
    {"Pos": 1206, "Event_type": "Gtid", "Info": f"SET @@SESSION.GTID_NEXT= '{SRC.upper()}:5'"},
    {"Pos": 1285, "Event_type": "Query", "Info": "BEGIN"},
    {"Pos": 1369, "Event_type": "Table_map", "Info": "table_id: 111 (app_crm.persona)"},
    {"Pos": 1451, "Event_type": "Write_rows", "Info": "table_id: 111 flags: STMT_END_F"},
    {"Pos": 1528, "Event_type": "Xid", "Info": "COMMIT /* xid=2557 */"},
]


def test_transaction_events() -> None:
    found = failed_transaction.transaction_events(EVENTS, f"{SRC}:5")
    assert [(e.event, e.table) for e in found] == [("Query", ""), ("Table_map", "app_crm.persona"),
                                                   ("Write_rows", "app_crm.persona"), ("Xid", "")]
    assert [e.event for e in failed_transaction.transaction_events(EVENTS, f"{SRC}:4")][-1] == "Xid"
    assert failed_transaction.transaction_events(EVENTS, f"{SRC}:9") is None
    assert failed_transaction.transaction_events(EVENTS[:8], f"{SRC}:5") == (failed_transaction.TxEvent("Query", "", "BEGIN"),)   # started, cut
    p = ts.Problem("aurora", TO_AURORA, "row-conflict", errno=1062, facts=failed_transaction.parse_error(DUPLICATE), events=found)
    assert p.tables == ("app_crm.persona",) and p.changed() == "Write_rows on app_crm.persona"
    assert p.key_text() == "20102 (persona.PRIMARY)" and p.step_id == "fix:aurora" and p.writer == "source"


def status(io: str = "Yes", sql: str = "Yes", io_errno: int = 0, sql_errno: int = 0, io_error: str = "",
           sql_error: str = "") -> ReplicaStatus:
    return ReplicaStatus.from_row({
        "Channel_Name": "", "Source_Host": "h", "Source_Port": 3306, "Source_User": "r", "Source_UUID": SRC,
        "Source_Server_Id": 1, "Replica_IO_Running": io, "Replica_SQL_Running": sql, "Replica_IO_State": "",
        "Replica_SQL_Running_State": "", "Last_IO_Errno": io_errno, "Last_IO_Error": io_error,
        "Last_IO_Error_Timestamp": "", "Last_SQL_Errno": sql_errno, "Last_SQL_Error": sql_error,
        "Last_SQL_Error_Timestamp": "", "Seconds_Behind_Source": None, "Retrieved_Gtid_Set": "",
        "Executed_Gtid_Set": "", "Auto_Position": 1, "Connect_Retry": 60, "Source_SSL_Allowed": "Yes"})


@pytest.mark.parametrize(("s", "kind"), [
    (None, "missing"), (status(), "ok"), (status(io="No"), "stopped"), (status(sql="No"), "stopped"),
    (status(io="Connecting"), "connecting"), (status(sql="No", sql_errno=1062, sql_error=DUPLICATE), "row-conflict"),
    (status(sql="No", sql_errno=1032), "row-conflict"), (status(sql="No", sql_errno=1146), "sql-error"),
    (status(io="No", io_errno=13114, io_error=PURGED), "purged-binlogs"),
    (status(io="No", io_errno=1045, io_error="Access denied"), "io-error")])
def test_classify(s, kind) -> None:
    assert ts.classify(s)[0] == kind


def problem(kind: str, channel: str = "aurora", tables: tuple[str, ...] = ()) -> ts.Problem:
    events = tuple(failed_transaction.TxEvent("Update_rows", t, "") for t in tables)
    return ts.Problem(channel, TO_AURORA if channel == "aurora" else TO_SOURCE, kind, events=events)


def test_choose() -> None:
    assert [ts.choose(problem(k), "auto") for k in ("ok", "stopped", "connecting", "row-conflict", "sql-error",
                                                    "purged-binlogs", "io-error", "missing")] == \
        ["none", "restart", "restart", "repair", "manual", "purged", "manual", "manual"]
    assert ts.choose(problem("row-conflict"), "skip") == "skip"
    assert ts.choose(problem("sql-error"), "skip") == "skip"
    assert ts.choose(problem("row-conflict"), "restart") == "manual"
    assert ts.choose(problem("purged-binlogs"), "skip") == "manual"
    with pytest.raises(ParameterError, match="fix"):
        ts.choose(problem("ok"), "yolo")


def test_options_frame_marks_the_choice() -> None:
    d = ts.Diagnosis((problem("row-conflict", tables=("a.b",)), problem("ok", "source")))
    frame = ts.options_frame(d, "auto")
    assert list(frame.columns) == ts.OPTION_COLUMNS
    assert list(frame["option"]) == ["skip", "repair", "re-seed"]
    assert list(frame["chosen"]) == ["", "✔", ""]
    assert ts.options_frame(ts.Diagnosis((problem("ok"), problem("ok", "source")))).empty
    assert d.verdict_line().startswith("FAIL: channel aurora") and list(d.to_frame().columns) == ts.DIAGNOSIS_COLUMNS


def test_right_side_and_affected_tables() -> None:
    one = ts.Diagnosis((problem("row-conflict", "aurora", ("app.t",)), problem("ok", "source")))
    assert repair.right_side(one, "app.t", "writer", "auto") == "source"
    assert repair.right_side(one, "app.other", "writer", "auto") == ""
    assert repair.right_side(one, "app.t", "aurora", "auto") == "aurora"
    both = ts.Diagnosis((problem("row-conflict", "aurora", ("app.t",)), problem("row-conflict", "source", ("app.t",))))
    assert repair.right_side(both, "app.t", "writer", "auto") == "source"
    purged = ts.Diagnosis((problem("ok"), problem("purged-binlogs", "source")))
    assert repair.right_side(purged, "app.any", "writer", "auto") == "aurora"
    with pytest.raises(ParameterError, match="keep"):
        repair.right_side(one, "app.t", "mine", "auto")
    assert repair.affected_tables(one, "auto") == ("app.t",)
    assert repair.affected_tables(purged, "auto") == ()
    assert repair.affected_tables(one, "auto", ["x.y"]) == ("x.y",)


def test_still_in_the_diagnosed_state() -> None:
    p = ts.Problem("aurora", TO_AURORA, "row-conflict", errno=1062, facts=failed_transaction.parse_error(DUPLICATE))
    assert repair._still(p, status(sql="No", sql_errno=1062, sql_error=COORDINATOR))
    other = COORDINATOR.replace(f"{SRC}:5", f"{SRC}:6")
    assert not repair._still(p, status(sql="No", sql_errno=1062, sql_error=other))
    assert not repair._still(p, status())
    assert repair._still(problem("stopped"), status(io="No"))


def shape(key: tuple[str, ...]) -> TableShape:
    return TableShape("app", "t", (Column("id", "int", "int", False), Column("v", "varchar", "varchar(9)", True),
                                   Column("d", "decimal", "decimal(9,2)", False)), key)


def test_row_statements_with_a_primary_key() -> None:
    have = [{"id": 1, "v": "a", "d": Decimal("1.00")}, {"id": 2, "v": "x", "d": Decimal("2.00")}]
    want = [{"id": 2, "v": None, "d": Decimal("2.00")}, {"id": 3, "v": "c", "d": Decimal("3.50")}]
    out = [s.shown() for s in row_sync.row_statements(shape(("id",)), have, want)]
    assert out == ["DELETE FROM `app`.`t` WHERE `id` = 1",
                   "UPDATE `app`.`t` SET `v` = NULL WHERE `id` = 2",
                   "INSERT INTO `app`.`t` (`id`, `v`, `d`) VALUES (3, 'c', 3.50)"]
    assert row_sync.row_statements(shape(("id",)), have, have) == []


def test_row_statements_without_a_key_match_every_column() -> None:
    row = {"id": 1, "v": "a", "d": Decimal("1.00")}
    other = {"id": 1, "v": "b", "d": Decimal("1.00")}
    out = [s.shown() for s in row_sync.row_statements(shape(()), [row, row], [other, row])]
    assert out == ["DELETE FROM `app`.`t` WHERE `id` <=> 1 AND `v` <=> 'a' AND `d` <=> 1.00 LIMIT 1",
                   "INSERT INTO `app`.`t` (`id`, `v`, `d`) VALUES (1, 'b', 1.00)"]


def test_each_gtid_of_a_set() -> None:
    assert sorted(repair._each(GtidSet.parse(f"{AUR}:3-4,{SRC}:9"))) == [f"{SRC}:9", f"{AUR}:3", f"{AUR}:4"]


class _Planned:
    """What repair's planners read of a server: who it is and its Dialect (no statement is run)."""

    def __init__(self, version: tuple[int, int, int], aurora: str) -> None:
        from runbook_lib.mysql.dialect import dialect_for
        from runbook_lib.mysql.identity import Flavor, ServerIdentity
        flavor = {"2": Flavor.AURORA2, "3": Flavor.AURORA3}[aurora[0]]
        self.identity = ServerIdentity(version, ".".join(map(str, version)), "", flavor, aurora, 1, AUR)
        self.dialect = dialect_for(self.identity, role="aurora")


class _Session:
    def __init__(self, aurora: _Planned) -> None:
        self._aurora = aurora

    def aurora(self) -> _Planned:
        return self._aurora


@pytest.mark.parametrize("aurora, calls", [("3.04.0", 1), ("3.08.0", 1), ("3.03.1", 3000), ("2.12.5", 3000)])
def test_purged_gtids_on_aurora_one_call_from_3_04(aurora, calls) -> None:
    """Aurora 3.04+: one mysql.rds_gtid_purged for the whole set; older: one skip per GTID (at most 1000)."""
    rb = _Session(_Planned((8, 0, 39) if aurora[0] == "3" else (5, 7, 44), aurora))
    missing = GtidSet.parse(f"{SRC}:1-3000")
    if calls > repair.MAX_AURORA_SKIPS:
        with pytest.raises(RunbookError, match="3.04"):
            repair._skip_acts(rb, "aurora", missing, f"declare {missing} applied")
        few = repair._skip_acts(rb, "aurora", GtidSet.parse(f"{SRC}:1-3"), "declare them applied")
        assert [s.shown().split("(")[0] for s in few[0].sqls] == ["CALL mysql.rds_skip_transaction_with_gtid"] * 3
        return
    acts = repair._skip_acts(rb, "aurora", missing, f"declare {missing} applied")
    assert [s.shown() for a in acts for s in a.sqls] == [f"CALL mysql.rds_gtid_purged('+{SRC}:1-3000')"]
