"""ReplicaStatus read from real SHOW SLAVE STATUS / SHOW REPLICA STATUS output (see tests/unit/data)."""
from __future__ import annotations

import json
import re
from typing import Any

import pytest

from runbook_lib.mysql.gtid import GtidSet
from runbook_lib.mysql.status import SIDE_BY_SIDE_ROWS, ReplicaStatus, side_by_side
from tests.support import UNIT_DATA

DATA = UNIT_DATA
N1 = "f5490ab2-e770-11f1-b41c-02fc00000001"
N2 = "f71d3ef7-e770-11f1-91dc-02fc00000001"
_FIELD = re.compile(r"^\s*([A-Za-z_]+): ?(.*)$")


def read_vertical(name: str) -> dict[str, Any]:
    """One row of the mysql client's vertical (\\G / -E) output, as text; a value may span lines."""
    row: dict[str, Any] = {}
    key = None
    for line in (DATA / name).read_text().splitlines():
        if line.startswith("#") or line.startswith("****") or not line.strip():
            continue
        m = _FIELD.match(line)
        if m:
            key = m.group(1)
            row[key] = m.group(2)
        else:
            assert key is not None, f"continuation line without a field: {line!r}"
            row[key] += "\n" + line
    return row


def read_pymysql(name: str) -> dict[str, Any]:
    text = "".join(line for line in (DATA / "show_replica_status_mysql97_pymysql.txt").read_text()
                   .splitlines(keepends=True) if not line.startswith("#"))
    return json.loads(text)[name]


def test_aurora2_blog_show_slave_status() -> None:
    s = ReplicaStatus.from_row(read_vertical("show_slave_status_aurora2_blog.txt"))
    assert s.source_host == "xx.xx.xx.xx" and s.source_port == 3306 and s.source_user == "rdsrepladmin"
    assert s.source_uuid == "9bfd6532-ea72-3141-b8c1-b2217ac70769"
    assert s.source_server_id == 2144297276
    assert (s.io_running, s.sql_running) == ("Yes", "Yes")
    assert s.io_state == "Waiting for master to send event"
    assert s.sql_state == "Slave has read all relay log; waiting for more updates"
    assert s.seconds_behind == 0
    assert s.retrieved_gtid_set == GtidSet("") and s.executed_gtid_set == GtidSet("")
    assert s.auto_position is False and s.ssl_allowed is True and s.connect_retry == 60
    assert s.channel == ""
    assert s.running and s.state == "running" and s.errors == []


def test_mysql97_running() -> None:
    s = ReplicaStatus.from_row(read_vertical("show_replica_status_mysql97_running.txt"))
    assert (s.source_host, s.source_port, s.source_user) == ("127.0.0.1", 29101, "repl")
    assert s.source_uuid == N1 and s.source_server_id == 1
    assert s.running and s.state == "running" and s.errors == []
    assert s.io_state == "Waiting for source to send event"
    assert s.seconds_behind == 0 and s.auto_position and s.ssl_allowed and s.connect_retry == 5
    assert s.retrieved_gtid_set == GtidSet(f"{N1}:1-8")
    assert s.executed_gtid_set == GtidSet(f"{N1}:1-8,{N2}:1-3")     # printed over two lines
    assert s.retrieved_gtid_set in s.executed_gtid_set
    assert s.last_io_error_timestamp == "" and s.last_sql_error_timestamp == ""


def test_mysql97_running_tagged() -> None:
    s = ReplicaStatus.from_row(read_vertical("show_replica_status_mysql97_running_tagged.txt"))
    assert s.retrieved_gtid_set == GtidSet(f"{N2}:cutover_1:1:runbook_heartbeat:1")
    assert f"{N2}:runbook_heartbeat:1" in s.executed_gtid_set
    assert s.state == "running"


@pytest.mark.parametrize("row", [
    read_vertical("show_replica_status_mysql97_sql_error.txt"),
    read_pymysql("sql_error"),
], ids=["mysql-client-text", "pymysql-row"])
def test_mysql97_sql_thread_stopped_on_duplicate_key(row: dict[str, Any]) -> None:
    s = ReplicaStatus.from_row(row)
    assert (s.io_running, s.sql_running) == ("Yes", "No")
    assert not s.running and s.state == "error"
    assert s.seconds_behind is None                      # NULL while the applier is stopped
    assert s.last_sql_errno == 1062 and f"'{N1}:9'" in s.last_sql_error
    assert s.last_sql_error_timestamp == "261123 19:08:51"
    assert [(t, n) for t, n, _ in s.errors] == [("sql", 1062)]
    assert s.retrieved_gtid_set - s.executed_gtid_set == GtidSet(f"{N1}:9")    # the transaction to look at


@pytest.mark.parametrize("row", [
    read_vertical("show_replica_status_mysql97_io_connecting.txt"),
    read_pymysql("io_connecting"),
], ids=["mysql-client-text", "pymysql-row"])
def test_mysql97_io_thread_retrying(row: dict[str, Any]) -> None:
    s = ReplicaStatus.from_row(row)
    assert (s.io_running, s.sql_running) == ("Connecting", "Yes")
    assert s.state == "connecting" and not s.running
    assert s.last_io_errno == 1045 and "Access denied for user 'repl'" in s.last_io_error
    assert s.errors[0][:2] == ("io", 1045)
    assert s.source_port == 29102 and s.source_uuid == N2 and s.seconds_behind is None


@pytest.mark.parametrize("row", [
    read_vertical("show_replica_status_mysql97_io_gave_up.txt"),
    read_pymysql("io_gave_up"),
], ids=["mysql-client-text", "pymysql-row"])
def test_mysql97_io_thread_gave_up(row: dict[str, Any]) -> None:
    s = ReplicaStatus.from_row(row)
    assert (s.io_running, s.sql_running) == ("No", "Yes")
    assert s.state == "error"
    assert s.last_io_errno == 1045 and "attempt 1/1" in s.last_io_error
    assert s.last_io_error_timestamp == "261123 19:12:27"


def test_stopped_without_error_is_stopped() -> None:
    row = read_vertical("show_replica_status_mysql97_running.txt")
    row.update(Replica_IO_Running="No", Replica_SQL_Running="No", Replica_IO_State="", Seconds_Behind_Source="NULL")
    s = ReplicaStatus.from_row(row)
    assert s.state == "stopped" and s.errors == [] and s.seconds_behind is None


def test_not_a_status_row() -> None:
    with pytest.raises(ValueError, match="not a replica status row"):
        ReplicaStatus.from_row({"File": "binlog.000001", "Position": 4})


def test_frozen() -> None:
    s = ReplicaStatus.from_row(read_vertical("show_replica_status_mysql97_running.txt"))
    with pytest.raises(AttributeError):
        s.io_running = "No"  # type: ignore[misc]


def test_to_frame() -> None:
    s = ReplicaStatus.from_row(read_pymysql("sql_error"))
    df = s.to_frame()
    assert list(df.columns) == ["field", "value"]
    values = dict(zip(df["field"], df["value"]))
    assert values["seconds_behind"] == "NULL"
    assert values["auto_position"] == "yes"
    assert values["last_sql_errno"] == "1062"
    assert values["executed_gtid_set"] == f"{N1}:1-8,{N2}:1-3"
    assert len(df) == 22


def test_side_by_side() -> None:
    to_aurora = ReplicaStatus.from_row(read_vertical("show_replica_status_mysql97_running.txt"))
    to_source = ReplicaStatus.from_row(read_vertical("show_replica_status_mysql97_io_gave_up.txt"))
    df = side_by_side({"source -> aurora": to_aurora, "aurora -> source": to_source, "unused": None})
    assert list(df.columns) == ["item", "source -> aurora", "aurora -> source", "unused"]
    assert tuple(df["item"]) == SIDE_BY_SIDE_ROWS
    by_item = df.set_index("item")
    assert by_item.loc["IO thread", "source -> aurora"] == "Yes (Waiting for source to send event)"
    assert by_item.loc["IO thread", "aurora -> source"] == "No"
    assert by_item.loc["last IO error", "aurora -> source"].startswith("1045: Error connecting to source")
    assert by_item.loc["last IO error", "source -> aurora"] == ""
    assert by_item.loc["seconds behind", "aurora -> source"] == "NULL"
    assert by_item.loc["seconds behind", "source -> aurora"] == "0"
    assert by_item.loc["source", "source -> aurora"] == f"127.0.0.1:29101 ({N1})"
    assert by_item.loc["IO thread", "unused"] == "no replication channel"
