"""Where a long consistency check keeps its progress: two tables of the ``runbook`` schema, written on
the source and replicated to Aurora, so that either side can resume it.

* ``runbook.consistency_run``: one row per pass (``full`` or ``reverify``) of one scope (its schemas
  and tables): status ``running`` / ``done``, when, the binary log position of each side when the pass
  began (where the next re-verification starts reading), its verdict and the keys found differing.
* ``runbook.consistency_chunk``: one row per chunk a full pass has compared: its key bounds, the rows
  on each side and whether they matched.  A pass that was interrupted continues after its last chunk
  and checks its differing chunks again.

Like pt-table-checksum's ``--replicate`` table (which it creates unless told not to), the tables are
the check's own bookkeeping and are created when missing; nothing else is written.  Keys are kept as
JSON arrays of the key's values (their text for types JSON cannot hold: dates, decimals, bytes).
"""
from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from runbook_lib.checks.splitbrain import BinlogMark

if TYPE_CHECKING:  # pragma: no cover
    from runbook_lib.mysql.connection import Server

FULL, REVERIFY = "full", "reverify"
RUNNING, DONE = "running", "done"
TABLES = ("runbook.consistency_chunk", "runbook.consistency_run")     # never compared: written while comparing
MAX_KEYS_KEPT = 10_000          # differing keys kept per pass (what the next re-verification checks again)

DDL = (
    "CREATE DATABASE IF NOT EXISTS runbook",
    "CREATE TABLE IF NOT EXISTS runbook.consistency_run (run_id CHAR(32) NOT NULL PRIMARY KEY, "
    "scope_hash CHAR(40) NOT NULL, scope TEXT NOT NULL, kind VARCHAR(16) NOT NULL, status VARCHAR(16) NOT NULL, "
    "started DATETIME(6) NOT NULL, finished DATETIME(6) NULL, source_mark VARCHAR(255) NOT NULL, "
    "aurora_mark VARCHAR(255) NOT NULL, verdict VARCHAR(32) NULL, differing JSON NULL, "
    "KEY by_scope (scope_hash, started)) ENGINE=InnoDB",
    "CREATE TABLE IF NOT EXISTS runbook.consistency_chunk (run_id CHAR(32) NOT NULL, table_name VARCHAR(200) NOT NULL, "
    "chunk INT NOT NULL, lower_key JSON NULL, upper_key JSON NULL, source_rows BIGINT NOT NULL, "
    "aurora_rows BIGINT NOT NULL, same TINYINT NOT NULL, seconds DOUBLE NOT NULL, "
    "PRIMARY KEY (run_id, table_name, chunk)) ENGINE=InnoDB",
)


def scope_text(schemas: Sequence[str], tables: Sequence[str]) -> str:
    """What a pass compares, as one text: its schemas, and its tables when only some are compared."""
    return "schemas " + ",".join(sorted(schemas)) + ("; tables " + ",".join(sorted(tables)) if tables else "")


def scope_parts(text: str) -> tuple[set[str], set[str]]:
    """(schemas, tables) of a :func:`scope_text`."""
    parts = dict(p.split(" ", 1) for p in text.split("; ") if " " in p)
    return ({s for s in parts.get("schemas", "").split(",") if s},
            {t for t in parts.get("tables", "").split(",") if t})


def key_json(key: tuple | None) -> str | None:
    """A key as JSON (None stays NULL: an open bound)."""
    return None if key is None else json.dumps([_plain(v) for v in key])


def key_from_json(text: str | None) -> tuple | None:
    return None if text is None else tuple(json.loads(text))


def _plain(value: Any) -> Any:
    if isinstance(value, (datetime, date, dtime)):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    return value


def mark_text(mark: BinlogMark) -> str:
    return f"{mark.file}:{mark.position}"


def mark_from_text(role: str, text: str) -> BinlogMark:
    file, _, position = text.rpartition(":")
    return BinlogMark(role, file, int(position))


@dataclass(frozen=True)
class Run:
    """One pass as the ledger holds it."""

    run_id: str
    scope: str
    kind: str
    status: str
    marks: dict[str, BinlogMark]
    verdict: str | None
    differing: dict[str, list[tuple]]        # table -> keys found differing (capped)

    @property
    def done(self) -> bool:
        return self.status == DONE


@dataclass(frozen=True)
class ChunkRow:
    table: str
    chunk: int
    lower: tuple | None
    upper: tuple | None
    source_rows: int
    aurora_rows: int
    same: bool


class Ledger:
    """The ledger of one scope on ``server`` (the source: writes there replicate to Aurora).  With
    ``record`` False it only reads (a check that must change nothing: the cut-over's): its writes do
    nothing and a missing table reads as no pass."""

    def __init__(self, server: Server, schemas: Sequence[str], tables: Sequence[str] = (), *,
                 record: bool = True) -> None:
        self.server, self.record = server, record
        self.schemas, self.tables = tuple(schemas), tuple(tables)
        self.scope = scope_text(schemas, tables)
        self.scope_hash = hashlib.sha1(self.scope.encode()).hexdigest()

    def ensure(self) -> None:
        if self.record:
            for ddl in DDL:
                self.server.execute(ddl)

    def exists(self) -> bool:
        return bool(self.server.scalar("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = "
                                       "'runbook' AND TABLE_NAME = 'consistency_run'"))

    def latest(self) -> Run | None:
        """The newest pass of this scope, finished or not."""
        row = self.server.query_one(
            "SELECT run_id, scope, kind, status, source_mark, aurora_mark, verdict, differing FROM "
            "runbook.consistency_run WHERE scope_hash = %s ORDER BY started DESC LIMIT 1", (self.scope_hash,))
        return None if row is None else self._run(row)

    def latest_covering(self, look_back: int = 50) -> Run | None:
        """The newest finished pass of this scope or of a wider one (all tables of more schemas): where a
        re-verification of this scope can start (the validation phase's pass covers a cut-over's scope)."""
        if not self.record and not self.exists():
            return None
        schemas, tables = scope_parts(self.scope)
        for row in self.server.query(
                "SELECT run_id, scope, scope_hash, kind, status, source_mark, aurora_mark, verdict, differing FROM "
                "runbook.consistency_run WHERE status = %s ORDER BY started DESC LIMIT %s", (DONE, look_back)):
            theirs, their_tables = scope_parts(str(row["scope"]))
            if row["scope_hash"] == self.scope_hash or (not their_tables and theirs >= schemas):
                return self._run(row)
        return None

    def _run(self, row: dict) -> Run:
        differing = json.loads(row["differing"]) if row["differing"] else {}
        return Run(str(row["run_id"]), str(row["scope"]), str(row["kind"]), str(row["status"]),
                   {"source": mark_from_text("source", row["source_mark"]),
                    "aurora": mark_from_text("aurora", row["aurora_mark"])},
                   row["verdict"], {t: [tuple(k) for k in keys] for t, keys in differing.items()})

    def begin(self, kind: str, marks: dict[str, BinlogMark]) -> str:
        run_id = uuid.uuid4().hex
        if not self.record:
            return run_id
        self.server.execute(
            "INSERT INTO runbook.consistency_run (run_id, scope_hash, scope, kind, status, started, source_mark, "
            "aurora_mark) VALUES (%s, %s, %s, %s, %s, UTC_TIMESTAMP(6), %s, %s)",
            (run_id, self.scope_hash, self.scope, kind, RUNNING, mark_text(marks["source"]),
             mark_text(marks["aurora"])))
        return run_id

    def chunk(self, run_id: str, row: ChunkRow, seconds: float) -> None:
        if not self.record:
            return
        self.server.execute(
            "REPLACE INTO runbook.consistency_chunk (run_id, table_name, chunk, lower_key, upper_key, source_rows, "
            "aurora_rows, same, seconds) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (run_id, row.table, row.chunk, key_json(row.lower), key_json(row.upper), row.source_rows,
             row.aurora_rows, int(row.same), round(seconds, 4)))

    def chunks(self, run_id: str) -> dict[str, list[ChunkRow]]:
        """``table -> chunks`` of a pass, in chunk order."""
        out: dict[str, list[ChunkRow]] = {}
        for r in self.server.query("SELECT table_name, chunk, lower_key, upper_key, source_rows, aurora_rows, same "
                                   "FROM runbook.consistency_chunk WHERE run_id = %s ORDER BY table_name, chunk",
                                   (run_id,)):
            out.setdefault(str(r["table_name"]), []).append(ChunkRow(
                str(r["table_name"]), int(r["chunk"]), key_from_json(r["lower_key"]), key_from_json(r["upper_key"]),
                int(r["source_rows"]), int(r["aurora_rows"]), bool(r["same"])))
        return out

    def finish(self, run_id: str, verdict: str, differing: dict[str, list[tuple]],
               marks: dict[str, BinlogMark] | None = None) -> None:
        """Mark a pass done: its verdict, the keys found differing per table (an empty list: the table
        differs as a whole), and where the next re-verification starts reading (``marks``, when given)."""
        if not self.record:
            return
        kept = {t: [[_plain(v) for v in k] for k in keys[:MAX_KEYS_KEPT]] for t, keys in differing.items()}
        sql, args = ("UPDATE runbook.consistency_run SET status = %s, finished = UTC_TIMESTAMP(6), verdict = %s, "
                     "differing = %s"), [DONE, verdict, json.dumps(kept)]
        if marks is not None:
            sql += ", source_mark = %s, aurora_mark = %s"
            args += [mark_text(marks["source"]), mark_text(marks["aurora"])]
        self.server.execute(sql + " WHERE run_id = %s", (*args, run_id))
