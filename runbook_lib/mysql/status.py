"""One replication channel's status as a frozen value.

:meth:`ReplicaStatus.from_row` reads a row of SHOW SLAVE STATUS (5.7, Aurora 2, 8.0 before 8.0.22)
or SHOW REPLICA STATUS (8.0.22+, 8.4, 9.x, Aurora 3) as PyMySQL returns it, or as text from the
``mysql`` client (``'NULL'``, numbers as strings).  The column names for both spellings come from
:data:`runbook_lib.mysql.dialect.STATUS_COLUMNS`.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import pandas as pd

from runbook_lib.mysql.dialect import STATUS_COLUMNS
from runbook_lib.mysql.gtid import GtidSet

if TYPE_CHECKING:
    from runbook_lib.mysql.connection import Server

#: Rows of :func:`side_by_side`, in order.
SIDE_BY_SIDE_ROWS = ("IO thread", "SQL thread", "last IO error", "last SQL error", "seconds behind",
                     "retrieved GTID set", "executed GTID set", "auto position", "source")


def _get(row: Mapping[str, Any], field: str) -> Any:
    for column in STATUS_COLUMNS[field]:
        if column in row:
            value = row[column]
            return None if value == "NULL" else value
    raise ValueError(f"not a replica status row: none of {STATUS_COLUMNS[field]} in its columns")


def _int(value: Any) -> int:
    return int(value) if value not in (None, "") else 0


def _text(value: Any) -> str:
    return "" if value is None else str(value)


@dataclass(frozen=True)
class ReplicaStatus:
    """A replica's view of one channel (this server replicating *from* ``source_host``)."""

    channel: str
    source_host: str
    source_port: int
    source_user: str
    source_uuid: str
    source_server_id: int
    io_running: str               # 'Yes' / 'No' / 'Connecting'
    sql_running: str              # 'Yes' / 'No'
    io_state: str
    sql_state: str
    last_io_errno: int
    last_io_error: str
    last_io_error_timestamp: str  # as the server prints it ('YYMMDD hh:mm:ss'), '' if none
    last_sql_errno: int
    last_sql_error: str
    last_sql_error_timestamp: str
    seconds_behind: int | None    # None while the server shows NULL (a thread not running)
    retrieved_gtid_set: GtidSet
    executed_gtid_set: GtidSet
    auto_position: bool
    connect_retry: int
    ssl_allowed: bool

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ReplicaStatus:
        """Build from one row dict of SHOW SLAVE STATUS or SHOW REPLICA STATUS."""
        seconds = _get(row, "seconds_behind")
        return cls(
            channel=_text(_get(row, "channel")),
            source_host=_text(_get(row, "source_host")),
            source_port=_int(_get(row, "source_port")),
            source_user=_text(_get(row, "source_user")),
            source_uuid=_text(_get(row, "source_uuid")),
            source_server_id=_int(_get(row, "source_server_id")),
            io_running=_text(_get(row, "io_running")),
            sql_running=_text(_get(row, "sql_running")),
            io_state=_text(_get(row, "io_state")),
            sql_state=_text(_get(row, "sql_state")),
            last_io_errno=_int(_get(row, "last_io_errno")),
            last_io_error=_text(_get(row, "last_io_error")),
            last_io_error_timestamp=_text(_get(row, "last_io_error_timestamp")),
            last_sql_errno=_int(_get(row, "last_sql_errno")),
            last_sql_error=_text(_get(row, "last_sql_error")),
            last_sql_error_timestamp=_text(_get(row, "last_sql_error_timestamp")),
            seconds_behind=None if seconds in (None, "") else int(seconds),
            retrieved_gtid_set=GtidSet.parse(_text(_get(row, "retrieved_gtid_set"))),
            executed_gtid_set=GtidSet.parse(_text(_get(row, "executed_gtid_set"))),
            auto_position=_int(_get(row, "auto_position")) == 1,
            connect_retry=_int(_get(row, "connect_retry")),
            ssl_allowed=_text(_get(row, "ssl_allowed")) == "Yes",
        )

    @classmethod
    def read(cls, server: Server, channel: str = "") -> ReplicaStatus | None:
        """The status of *channel* on *server*, or None when it has no such replication channel."""
        rows = server.query(server.dialect.show_replica_status())
        for row in rows:
            status = cls.from_row(row)
            if status.channel == channel:
                return status
        return None

    @property
    def running(self) -> bool:
        """Both the IO (receiver) and SQL (applier) threads run."""
        return self.io_running == "Yes" and self.sql_running == "Yes"

    @property
    def errors(self) -> list[tuple[str, int, str]]:
        """``(thread, errno, message)`` for each thread that reports an error ('io' / 'sql')."""
        out = []
        if self.last_io_errno:
            out.append(("io", self.last_io_errno, self.last_io_error))
        if self.last_sql_errno:
            out.append(("sql", self.last_sql_errno, self.last_sql_error))
        return out

    @property
    def state(self) -> str:
        """'running', 'connecting' (IO thread retrying), 'error' (a thread stopped on error) or 'stopped'."""
        if (self.sql_running != "Yes" and self.last_sql_errno) or \
                (self.io_running == "No" and self.last_io_errno):
            return "error"
        if self.running:
            return "running"
        if self.io_running == "Connecting" and self.sql_running == "Yes":
            return "connecting"
        return "stopped"

    def to_frame(self) -> pd.DataFrame:
        """Every field as a row: columns ``field``, ``value`` (text)."""
        return pd.DataFrame({"field": [f.name for f in fields(self)],
                             "value": [_cell(getattr(self, f.name)) for f in fields(self)]})


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _error_cell(errno: int, message: str) -> str:
    return f"{errno}: {message}" if errno else ""


def _column(status: ReplicaStatus | None) -> list[str]:
    if status is None:
        return ["no replication channel"] + [""] * (len(SIDE_BY_SIDE_ROWS) - 1)
    io = status.io_running + (f" ({status.io_state})" if status.io_state else "")
    sql = status.sql_running + (f" ({status.sql_state})" if status.sql_state else "")
    source = f"{status.source_host}:{status.source_port}"
    if status.source_uuid:
        source += f" ({status.source_uuid})"
    return [io, sql, _error_cell(status.last_io_errno, status.last_io_error),
            _error_cell(status.last_sql_errno, status.last_sql_error), _cell(status.seconds_behind),
            str(status.retrieved_gtid_set), str(status.executed_gtid_set), _cell(status.auto_position), source]


def side_by_side(statuses: Mapping[str, ReplicaStatus | None]) -> pd.DataFrame:
    """Fixed rows (:data:`SIDE_BY_SIDE_ROWS`) in column ``item``, then one column per direction."""
    data: dict[str, list[str]] = {"item": list(SIDE_BY_SIDE_ROWS)}
    for direction, status in statuses.items():
        data[direction] = _column(status)
    return pd.DataFrame(data)
