"""Split-brain guard: which tables received writes from BOTH sides, read from the binary logs.

Every transaction's GTID names the server it was first committed on (its uuid), and with
``log_replica_updates`` (the default since 8.0, and required here) each side's binary log holds its
own transactions and the ones it applied from the other side.  So counting, per table, the
transactions whose GTID is the source's and those whose GTID is Aurora's tells who writes where;
a table with both counts above zero is written on both sides: the situation native replication
cannot reconcile (the AWS blog's "split brain").

How the window is bounded, and why:

* Only ``SHOW BINARY LOGS`` and ``SHOW BINLOG EVENTS ... FROM pos LIMIT n`` are used: plain SQL
  that needs REPLICATION SLAVE, which Aurora's master user has.  No file access to the server,
  no ``mysqlbinlog`` program, no replication-protocol client.
* ``SHOW BINLOG EVENTS`` prints no timestamps, so the window cannot be "the last N minutes" over
  SQL (that would need ``mysqlbinlog --read-from-remote-server`` and its binary on the DBA's
  machine).  The window is a stretch of binary log instead, chosen one of two ways:

  - since a :class:`BinlogMark` (file and position read with ``SHOW BINARY LOG STATUS`` at a
    moment, e.g. when a cut-over's checks began): exactly the transactions committed since then;
  - otherwise the newest whole binary log files, newest first, until ``window_bytes`` is reached
    (at least the current file).  Bytes, not events, bound the server's reading cost, and whole
    files because ``SHOW BINLOG EVENTS FROM`` only accepts event boundaries: a file cannot be
    entered in the middle without reading it from its start.

* Both servers' logs are read and transactions are counted once per GTID, so a direction that
  lags or is stopped still shows every write that either side has.  Pages of ``page_events``
  events continue from the previous page's ``End_log_pos`` (never ``LIMIT offset``, which would
  make the server re-read the file for each page).

Row-based events only (the runbook requires ``binlog_format=ROW``): a transaction's tables are its
``Table_map`` events.  Statements logged as text (DDL, account changes) name no table here.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from runbook_lib.core.display import show_table
from runbook_lib.core.errors import NotApplied, ParameterError
from runbook_lib.mysql.gtid import GtidSet
from runbook_lib.mysql.status import ReplicaStatus

if TYPE_CHECKING:  # pragma: no cover
    from runbook_lib.mysql.connection import Server

SIDES = ("source", "aurora")
OTHER_SIDE = {"source": "aurora", "aurora": "source"}
FRAME_COLUMNS = ["table", "writes from source", "writes from aurora", "verdict"]
BOTH, SOURCE_ONLY, AURORA_ONLY = "✖ written on both sides", "source only", "aurora only"
#: Schemas whose writes are the servers' own bookkeeping, not an application's.
IGNORED_SCHEMAS = ("mysql", "sys", "performance_schema", "information_schema")
DEFAULT_WINDOW_BYTES = 64 * 2**20
DEFAULT_PAGE_EVENTS = 10_000

_GTID_INFO = re.compile(r"GTID_NEXT\s*=\s*'(?P<gtid>[^']+)'", re.IGNORECASE)
_TABLE_MAP_INFO = re.compile(r"\((?P<table>[^()]+)\)\s*$")
_ROW_EVENT = re.compile(r"^(Write|Update|Delete|Partial_update)_rows(_v1)?$")


# --- reading events (pure) --------------------------------------------------------------------

@dataclass(frozen=True)
class Transaction:
    """One transaction of a binary log: its GTID ('' when anonymous), and the tables it changed rows in."""

    gtid: str
    tables: frozenset[str]

    @property
    def uuid(self) -> str:
        return self.gtid.split(":", 1)[0].lower() if self.gtid else ""


def transactions(events: Iterable[Mapping[str, Any]]) -> Iterator[Transaction]:
    """Group rows of ``SHOW BINLOG EVENTS`` into transactions that changed rows of some table.

    A transaction begins at a ``Gtid`` (or ``Anonymous_Gtid``) event; its tables are those of its
    ``Table_map`` events that precede a row event.  Transactions without row events (DDL, account
    statements, empty transactions used to skip a GTID) are not yielded.
    """
    gtid: str | None = None
    mapped: dict[str, str] = {}
    tables: set[str] = set()

    def finish() -> Transaction | None:
        return Transaction(gtid or "", frozenset(tables)) if gtid is not None and tables else None

    for event in events:
        kind = str(event.get("Event_type", ""))
        info = str(event.get("Info") or "")
        if kind.startswith(("Gtid", "Anonymous_Gtid")):
            done = finish()
            if done:
                yield done
            m = _GTID_INFO.search(info)
            gtid = m.group("gtid").strip() if m and not kind.startswith("Anonymous") else ""
            if gtid.upper() == "ANONYMOUS":
                gtid = ""
            mapped, tables = {}, set()
        elif gtid is None:
            continue                       # events of a transaction that began before the window
        elif kind == "Table_map":
            m = _TABLE_MAP_INFO.search(info)
            if m:
                table_id = info.split()[1] if info.startswith("table_id:") else m.group("table")
                mapped[table_id] = m.group("table")
        elif _ROW_EVENT.match(kind):
            table_id = info.split()[1] if info.startswith("table_id:") else ""
            if table_id in mapped:
                tables.add(mapped[table_id])
            else:                          # an unexpected Info format: count every mapped table
                tables.update(mapped.values())
        elif kind == "Xid" or (kind == "Query" and info.strip().upper().startswith("COMMIT")):
            done = finish()
            if done:
                yield done
            gtid, mapped, tables = None, {}, set()
    done = finish()
    if done:
        yield done


# --- who wrote what (pure) ----------------------------------------------------------------------

@dataclass(frozen=True)
class Origins:
    """Which server uuids are the source's and which are Aurora's."""

    source: frozenset[str]
    aurora: frozenset[str]

    def side(self, uuid: str) -> str:
        uuid = uuid.lower()
        return "source" if uuid in self.source else "aurora" if uuid in self.aurora else ""


@dataclass(frozen=True)
class TableWrites:
    """Transactions that changed one table, by the side they originated on."""

    table: str
    source: int
    aurora: int

    @property
    def both(self) -> bool:
        return self.source > 0 and self.aurora > 0

    @property
    def verdict(self) -> str:
        return BOTH if self.both else SOURCE_ONLY if self.source else AURORA_ONLY


@dataclass(frozen=True)
class Tally:
    """Per-table counts plus what could not be attributed."""

    tables: tuple[TableWrites, ...]
    transactions: int
    anonymous: int = 0
    unknown_uuids: tuple[str, ...] = ()


def named(table: str, names: Sequence[str]) -> bool:
    """Whether 'schema.table' is one of ``names`` ('schema' or 'schema.table')."""
    return table in names or table.split(".", 1)[0] in names


def tally(txns: Iterable[Transaction], origins: Origins, *, ignore: Sequence[str] = ()) -> Tally:
    """Count each GTID once (it may be read from both servers' logs) per table and side.

    ``ignore`` holds 'schema' or 'schema.table' names to leave out (besides :data:`IGNORED_SCHEMAS`),
    e.g. a heartbeat table that each side writes on purpose.  Anonymous transactions have no origin
    and are only counted; uuids of neither side are listed in ``unknown_uuids``.
    """
    seen: set[str] = set()
    counts: dict[str, dict[str, int]] = {}
    anonymous, unknown = 0, set()
    for txn in txns:
        if not txn.gtid:
            anonymous += 1
            continue
        if txn.gtid in seen:
            continue
        seen.add(txn.gtid)
        side = origins.side(txn.uuid)
        if not side:
            unknown.add(txn.uuid)
            continue
        for table in txn.tables:
            if not (named(table, IGNORED_SCHEMAS) or named(table, ignore)):
                per = counts.setdefault(table, {"source": 0, "aurora": 0})
                per[side] += 1
    rows = sorted((TableWrites(t, c["source"], c["aurora"]) for t, c in counts.items()),
                  key=lambda r: (not r.both, r.table))
    return Tally(tuple(rows), len(seen), anonymous, tuple(sorted(unknown)))


# --- reading the servers ------------------------------------------------------------------------

@dataclass(frozen=True)
class BinlogMark:
    """A position in one server's binary log, read at a moment (the start of a window)."""

    role: str
    file: str
    position: int

    def __str__(self) -> str:
        return f"{self.file}:{self.position}"


@dataclass(frozen=True)
class BinlogWindow:
    """What was read on one server: from where to where, how many events."""

    role: str
    first: str
    last: str
    events: int
    files: int
    note: str = ""     # e.g. 'older logs not read'

    def text(self) -> str:
        note = f", {self.note}" if self.note else ""
        return f"{self.role} {self.first} .. {self.last} ({self.files} file(s), {self.events:,} events{note})"


def mark(server: Server) -> BinlogMark:
    """The current end of ``server``'s binary log."""
    row = server.query_one(server.dialect.show_binary_log_status())
    if not row or not row.get("File"):
        raise NotApplied(f"the binary log on {server.role}",
                         "source_binlog" if server.role == "source" else "parameter_group")
    return BinlogMark(server.role, str(row["File"]), int(row["Position"]))


def marks(source: Server, aurora: Server) -> dict[str, BinlogMark]:
    return {"source": mark(source), "aurora": mark(aurora)}


def files_to_read(logs: Sequence[tuple[str, int]], since: BinlogMark | None,
                  window_bytes: int) -> tuple[list[tuple[str, int]], str]:
    """[(file, start position)] to read from ``logs`` [(name, size)], and a note on the window.  Pure."""
    names = [name for name, _ in logs]
    if since is not None:
        if since.file in names:
            i = names.index(since.file)
            return [(since.file, since.position)] + [(n, 4) for n in names[i + 1:]], ""
        later = [n for n in names if n > since.file]
        return [(n, 4) for n in later], f"{since.file} was purged: the window starts later than the mark"
    chosen: list[tuple[str, int]] = []
    total = 0
    for name, size in reversed(logs):
        if chosen and total + size > window_bytes:
            break
        chosen.insert(0, (name, 4))
        total += size
    return chosen, "older logs not read" if len(chosen) < len(logs) else ""


def _events(server: Server, file: str, start: int, page: int, counter: list[int]) -> Iterator[dict]:
    position = start
    while True:
        rows = server.query("SHOW BINLOG EVENTS IN %s FROM %s LIMIT %s", (file, position, page))
        counter[0] += len(rows)
        yield from rows
        if len(rows) < page:
            return
        position = int(rows[-1]["End_log_pos"])


def read_binlog(server: Server, *, since: BinlogMark | None = None, window_bytes: int = DEFAULT_WINDOW_BYTES,
                page_events: int = DEFAULT_PAGE_EVENTS) -> tuple[list[Transaction], BinlogWindow]:
    """The row-changing transactions of ``server``'s binary log in the window (see the module doc)."""
    logs = [(str(r["Log_name"]), int(r["File_size"])) for r in server.query("SHOW BINARY LOGS")]
    files, note = files_to_read(logs, since, window_bytes)
    counter, found = [0], []
    for name, start in files:
        found.extend(transactions(_events(server, name, start, page_events, counter)))
    end = mark(server)
    first = f"{files[0][0]}:{files[0][1]}" if files else str(end)
    return found, BinlogWindow(server.role, first, str(end), counter[0], len(files), note)


def origins_from(own: Mapping[str, str], received: Mapping[str, GtidSet],
                 executed: Mapping[str, GtidSet]) -> Origins:
    """Which uuids are each side's (pure).  ``own``: each side's ``@@server_uuid``; ``received[side]``:
    what the other side's channel retrieved from ``side``; ``executed``: each side's gtid_executed.

    A side's uuids are its own, those the other side received from it, and those of transactions
    only it has executed (not arrived yet on the other side): after an Aurora failover the new writer is another DB instance with its own
    ``server_uuid`` (the lab's stand-in plays it so), and its predecessors' uuids are still Aurora's.
    A uuid claimed by both (received from both) has no origin.  An earlier writer's uuid whose
    transactions all arrived before the channel's Retrieved_Gtid_Set was reset (RESET REPLICA) has
    none either: it is listed among the unknown uuids, never counted for the wrong side.
    """
    low = {side: uuid.lower() for side, uuid in own.items()}
    uuids = {side: {low[side]} | set(received[side].uuids())
             | set((executed[side] - executed[OTHER_SIDE[side]]).uuids()) for side in SIDES}
    unclear = (uuids["source"] & uuids["aurora"]) - set(low.values())
    return Origins(frozenset(uuids["source"] - unclear - {low["aurora"]}),
                   frozenset(uuids["aurora"] - unclear - {low["source"]}))


def origins_of(source: Server, aurora: Server) -> Origins:
    """Each side's uuids (:func:`origins_from`), read from both servers: ``@@server_uuid``,
    the Retrieved_Gtid_Set of each channel, ``gtid_executed``."""
    servers = {"source": source, "aurora": aurora}
    received = {side: GtidSet() for side in SIDES}
    for replica, sender in ((source, "aurora"), (aurora, "source")):
        for row in replica.query(replica.dialect.show_replica_status()):
            received[sender] = received[sender] | ReplicaStatus.from_row(row).retrieved_gtid_set
    executed = {side: GtidSet.parse(str(srv.scalar("SELECT @@GLOBAL.gtid_executed") or ""))
                for side, srv in servers.items()}
    return origins_from({side: srv.identity.server_uuid for side, srv in servers.items()}, received, executed)


@dataclass(frozen=True)
class SplitBrainReport:
    """Tables written in the window, by origin, and the warning to show."""

    tally: Tally
    windows: tuple[BinlogWindow, ...]
    scope: tuple[str, ...] = ()               # 'schema' or 'schema.table': marked in the table and warning
    ignored: tuple[str, ...] = ()
    title: str = "split-brain guard"

    @property
    def both(self) -> list[str]:
        """Tables that received writes from both sides in the window."""
        return [t.table for t in self.tally.tables if t.both]

    def to_frame(self) -> pd.DataFrame:
        def mine(table: str) -> bool:
            return named(table, self.scope)
        rows = sorted(self.tally.tables, key=lambda t: (not t.both, not mine(t.table), t.table))
        return pd.DataFrame([{"table": t.table + (" (scope)" if mine(t.table) else ""),
                              "writes from source": t.source, "writes from aurora": t.aurora,
                              "verdict": t.verdict} for t in rows], columns=FRAME_COLUMNS)

    def warning(self) -> str:
        window = "; ".join(w.text() for w in self.windows)
        if self.both:
            in_scope = [t for t in self.both if named(t, self.scope)]
            scope = f" ({len(in_scope)} in this scope: {', '.join(in_scope)})" if in_scope else ""
            return (f"WARNING: {self.title}: {len(self.both)} table(s) received writes from BOTH "
                    f"sides{scope}: "
                    f"{', '.join(self.both)}. Native replication does not resolve conflicts: make sure each "
                    f"application writes on one side only, and compare these tables. Window: {window}")
        return (f"OK: {self.title}: no table received writes from both sides "
                f"({len(self.tally.tables)} table(s) written, {self.tally.transactions:,} transactions). "
                f"Window: {window}")

    def notes(self) -> list[str]:
        out = []
        if self.tally.anonymous:
            out.append(f"{self.tally.anonymous} anonymous transaction(s) (written before GTIDs were on) "
                       "have no origin and are not counted")
        if self.tally.unknown_uuids:
            out.append("transactions from servers that are neither side were not counted: "
                       + ", ".join(self.tally.unknown_uuids))
        if self.ignored:
            out.append(f"not counted: {', '.join(self.ignored)}")
        return out

    def show(self) -> None:
        """The table (tables written on both sides first), its notes, and the warning line."""
        show_table(self.to_frame())
        for note in self.notes():
            print(f"note: {note}")
        print(self.warning())

    def writes_by_side(self, names: Sequence[str]) -> dict[str, int]:
        """Transactions per side that changed a table of ``names`` ('schema' or 'schema.table')."""
        return {side: sum(getattr(t, side) for t in self.tally.tables if named(t.table, names))
                for side in SIDES}

    def figures(self) -> dict:
        return {"tables_written": len(self.tally.tables), "both_sides": self.both,
                "transactions": self.tally.transactions, "window": [w.text() for w in self.windows]}


def guard(source: Server, aurora: Server, *, since: Mapping[str, BinlogMark] | None = None,
          window_bytes: int = DEFAULT_WINDOW_BYTES, scope: Sequence[str] = (),
          ignore: Sequence[str] = (), title: str = "split-brain guard",
          page_events: int = DEFAULT_PAGE_EVENTS) -> SplitBrainReport:
    """Read both binary logs (since ``since[role]``, else the newest ``window_bytes`` of each) and count.

    ``scope`` ('schema' or 'schema.table') is marked in the table and the warning; ``ignore`` (the
    same forms) is left out, e.g. a heartbeat table written on both sides by design.
    """
    if isinstance(window_bytes, bool) or not isinstance(window_bytes, int) or window_bytes < 1:
        raise ParameterError("window_bytes", f"must be a positive number of bytes, not {window_bytes!r}")
    found: list[Transaction] = []
    windows = []
    for server in (source, aurora):
        txns, window = read_binlog(server, since=(since or {}).get(server.role), window_bytes=window_bytes,
                                   page_events=page_events)
        found.extend(txns)
        windows.append(window)
    counted = tally(found, origins_of(source, aurora), ignore=ignore)
    return SplitBrainReport(counted, tuple(windows), tuple(scope), tuple(ignore), title)
