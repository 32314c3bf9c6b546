"""The failed transaction: what its error text says, and its events in the relay or binary log.

:func:`parse_error` reads an applier or receiver error message (GTID, row event, table, duplicate
key, handler error, binary log position, missing GTIDs); :func:`read_events` finds the transaction's
events in the replica's relay log from the applier's position on, else in the writer's binary log
file the error names, with ``SHOW RELAYLOG EVENTS`` / ``SHOW BINLOG EVENTS`` (REPLICATION SLAVE is
enough, which Aurora's master user has), reading at most :data:`MAX_EVENTS` events.  Reads only;
:mod:`runbook_lib.phases.troubleshooting.diagnosis` builds its diagnosis on it.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runbook_lib.core.errors import QueryFailed
from runbook_lib.mysql.gtid import GtidSet

if TYPE_CHECKING:  # pragma: no cover
    from runbook_lib.mysql.connection import Server

__all__ = ["MAX_EVENTS", "ROW_EVENT_TYPE", "ErrorFacts", "TxEvent", "parse_error", "read_events", "short_error",
           "transaction_events"]

MAX_EVENTS = 20_000          # events read while looking for a transaction (relay log + binary log)
_PAGE = 500

_GTID = re.compile(r"transaction '(?P<gtid>[^']+)'")
_ROWS_EVENT = re.compile(r"Could not execute (?P<event>\w+?)(?:_v1)? event on table (?P<table>[^;\s]+);")
_DUPLICATE = re.compile(r"Duplicate entry '(?P<key>.*)' for key '(?P<name>[^']+)'")
_NOT_FOUND = re.compile(r"Can't find record in '(?P<table>[^']+)'")
_HANDLER = re.compile(r"handler error (?P<handler>HA_ERR_\w+)")
_SOURCE_LOG = re.compile(r"source log (?P<file>[^\s,;]+), end_log_pos (?P<pos>\d+)")
_MISSING = re.compile(r"missing transactions are '(?P<gtids>[^']*)'")
_TABLE_MAP = re.compile(r"\((?P<table>[^()]+)\)\s*$")
_NEXT_GTID = re.compile(r"GTID_NEXT\s*=\s*'(?P<gtid>[^']+)'", re.IGNORECASE)
ROW_EVENT_TYPE = re.compile(r"^(Write|Update|Delete|Partial_update)_rows(_v1)?$")


@dataclass(frozen=True)
class ErrorFacts:
    """What an applier or receiver error message says (pure parse; '' when it does not say)."""

    gtid: str = ""
    event: str = ""              # 'Write_rows', 'Update_rows', 'Delete_rows'
    table: str = ""              # 'schema.table'
    key: str = ""                # the duplicate key value, as MySQL prints it
    key_name: str = ""           # 'persona.PRIMARY'
    handler: str = ""            # 'HA_ERR_FOUND_DUPP_KEY', 'HA_ERR_KEY_NOT_FOUND', 'HA_ERR_END_OF_FILE'
    source_log: str = ""         # the originating binary log file of the transaction
    end_log_pos: int = 0
    missing: str = ""            # 1236: the GTIDs the source no longer has


def parse_error(message: str) -> ErrorFacts:
    """Read GTID, row event, table, duplicate key, handler error, binary log position, missing GTIDs."""
    def group(pattern: re.Pattern, name: str) -> str:
        m = pattern.search(message or "")
        return m.group(name) if m else ""
    event, table = group(_ROWS_EVENT, "event"), group(_ROWS_EVENT, "table")
    if not table and _NOT_FOUND.search(message or ""):
        table = group(_NOT_FOUND, "table")
    pos = group(_SOURCE_LOG, "pos")
    return ErrorFacts(gtid=group(_GTID, "gtid"), event=event, table=table, key=group(_DUPLICATE, "key"),
                      key_name=group(_DUPLICATE, "name"), handler=group(_HANDLER, "handler"),
                      source_log=group(_SOURCE_LOG, "file"), end_log_pos=int(pos) if pos else 0,
                      missing=group(_MISSING, "gtids"))


@dataclass(frozen=True)
class TxEvent:
    """One event of the failed transaction: its type, the table it maps or changes, the server's text."""

    event: str
    table: str
    info: str


def transaction_events(rows: Sequence[Mapping[str, Any]], gtid: str) -> tuple[TxEvent, ...] | None:
    """Pure: the events of transaction *gtid* among rows of SHOW RELAYLOG/BINLOG EVENTS, or None when
    it does not start there.  Row events are given the table of their ``Table_map``."""
    wanted, found, mapped, out = _canonical(gtid), False, {}, []
    for row in rows:
        kind, info = str(row.get("Event_type", "")), str(row.get("Info") or "")
        if kind.startswith("Gtid"):
            if found:
                return tuple(out)
            m = _NEXT_GTID.search(info)
            found = bool(m) and _canonical(m.group("gtid")) == wanted
            continue
        if not found:
            continue
        if kind == "Table_map":
            m = _TABLE_MAP.search(info)
            table = m.group("table") if m else ""
            mapped[info.split()[1] if info.startswith("table_id:") else table] = table
            out.append(TxEvent(kind, table, info))
        elif ROW_EVENT_TYPE.match(kind):
            table_id = info.split()[1] if info.startswith("table_id:") else ""
            out.append(TxEvent(kind, mapped.get(table_id, ""), info))
        else:
            out.append(TxEvent(kind, "", info))
        if kind == "Xid" or (kind == "Query" and info.strip().upper().startswith(("COMMIT", "ROLLBACK"))):
            return tuple(out)
    return tuple(out) if found else None


_NOISE = (re.compile(r"^Coordinator stopped because.*?The most recent failure being: "),
          re.compile(r"^Worker \d+ failed executing transaction '[^']*' at source log [^;]*?(; |\. See .*$)"),
          re.compile(r"[;,] the event's source log .*$"), re.compile(r"Got fatal error 1236 from source when "
                                                                     r"reading data from binary log: "))


def short_error(message: str) -> str:
    """Pure: an error text without what other columns already say (worker, GTID, positions)."""
    text = message or ""
    for pattern in _NOISE:
        text = pattern.sub("", text)
    return text.strip() or (message or "")


def _canonical(gtid: str) -> str:
    try:
        return str(GtidSet.parse(gtid))
    except ValueError:
        return gtid.strip().lower()



def _scan(server: Server, statement: str, file: str, start: int, gtid: str,
          budget: list[int]) -> tuple[TxEvent, ...] | None:
    position, seen, first = start, [], True
    while budget[0] > 0:
        rows = server.query(f"{statement} IN %s FROM %s LIMIT %s", (file, position, _PAGE))
        if not first and rows and int(rows[0]["Pos"]) == position:
            rows = rows[1:]                      # the page starts with the last event already seen
        first = False
        budget[0] -= len(rows)
        seen += rows
        found = transaction_events(seen, gtid)
        if not rows or (found and _complete(found)):
            return found
        position = int(rows[-1]["Pos"])
        if found is None:
            seen = seen[-1:]                     # not started yet: nothing before it is needed
    return transaction_events(seen, gtid)


def _complete(events: Sequence[TxEvent]) -> bool:
    last = events[-1]
    return last.event == "Xid" or (last.event == "Query" and last.info.strip().upper().startswith(
        ("COMMIT", "ROLLBACK")))


def _next_file(name: str) -> str:
    stem, _, number = name.rpartition(".")
    return f"{stem}.{int(number) + 1:0{len(number)}d}" if number.isdigit() else ""


def read_events(replica: Server, writer: Server, gtid: str, facts: ErrorFacts) -> tuple[tuple[TxEvent, ...], str]:
    """The failed transaction's events and where they were read: the replica's relay log from the
    applier's position on (next relay files too), else the writer's binary log file the error names."""
    if not gtid:
        return (), ""
    row = replica.query_one(replica.dialect.show_replica_status()) or {}
    budget = [MAX_EVENTS]
    file, pos = str(row.get("Relay_Log_File") or ""), int(row.get("Relay_Log_Pos") or 4)
    while file and budget[0] > 0:
        try:
            found = _scan(replica, "SHOW RELAYLOG EVENTS", file, pos, gtid, budget)
        except QueryFailed:
            break                                # no such relay log file (any more)
        if found:
            return found, f"{replica.role} relay log {file}"
        file, pos = _next_file(file), 4
    if facts.source_log:
        budget = [MAX_EVENTS]
        found = _scan(writer, "SHOW BINLOG EVENTS", facts.source_log, 4, gtid, budget)
        if found:
            return found, f"{writer.role} binary log {facts.source_log}"
    return (), ""
