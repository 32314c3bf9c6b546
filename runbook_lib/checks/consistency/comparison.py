"""Do both sides hold the same data?  Row counts and chunked checksums per table, both servers
compared at a common point of their GTID history.  Reads only (SELECT, one session setting).

:func:`compare` returns a frozen :class:`Comparison`: ``to_frame()`` (table, method, rows on each
side, chunks, chunks that differ, verdict, differing keys) and ``ranges_frame()`` (the primary-key
ranges that differ).

Fast: per table and side ONE pass over the rows computes every chunk's checksum: ``UNION ALL``-ed
primary-key range selects, each ``COUNT(*)`` and ``BIT_XOR`` of the row CRCs
(:meth:`~runbook_lib.checks.consistency.chunks.TableShape.row_crc`: every column, NULL and '' told
apart), ``segment_rows`` rows per statement;
both sides in parallel threads.  (Measured on MySQL 9.7, 1,000,000 rows: about 1.05-1.15x a bare
whole-table checksum scan; ``GROUP BY key DIV width`` cost 1.35x, its temporary table the
difference.)  Integer keys: chunk bounds from MIN/MAX; a differing chunk is split and checked again
until few rows are left, then compared row by row.  Other keys (composite, not integer): bounds
walked on the source (an extra index pass), a differing chunk compared row by row.  No primary
key: one whole-table checksum (with SUM as well as BIT_XOR: duplicate rows), said so.

Right on a live system: before each read both ``gtid_executed`` are read and each side waits
(``WAIT_FOR_EXECUTED_GTID_SET``) until it has executed their union, then reads in a consistent
snapshot.  A differing chunk is checked again after the sides caught up again, up to ``rechecks``
times while commits keep arriving.  One that still differs but changed on a side between the last
two checks is being written on both sides: no pair of snapshots can match then, so it is reported
as "still changing" (compare again when the writes pause), never as a difference.

The per-table work (shapes, spans, checksum SQL, passes, rechecks, splitting) lives in
:mod:`runbook_lib.checks.consistency.chunks`; import its names from there (one import path per name).
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import pandas as pd

from runbook_lib.checks.consistency.chunks import (
    CHANGING,
    SAME,
    Column,
    Options,
    Pair,
    TableResult,
    TableShape,
    compare_table,
)
from runbook_lib.checks.consistency.rows import samples_frame
from runbook_lib.core.errors import CheckFailed, ParameterError

if TYPE_CHECKING:  # pragma: no cover
    from runbook_lib.mysql.connection import Server

FRAME_COLUMNS = ["table", "method", "source_rows", "aurora_rows", "chunks", "chunks_differ", "verdict",
                 "differing_keys"]
RANGE_COLUMNS = ["table", "first_key", "last_key", "rows", "kind"]
MAX_RANGES_SHOWN = 20       # per table, in to_frame()


@dataclass(frozen=True)
class Comparison:
    """The outcome of :func:`compare`: one :class:`TableResult` per table, in name order."""

    tables: tuple[TableResult, ...]
    schemas: tuple[str, ...]
    gtid_point: str             # what both sides had executed when the first table was read
    seconds: float
    # a pass of runbook_lib.checks.consistency.scan / .changes: its ledger id, 'full' or 'reverify',
    # differing column values of the first few rows, seconds paused by the throttle, continued or not
    run_id: str = ""
    kind: str = ""
    samples: tuple = ()
    throttled_s: float = 0.0
    resumed: bool = False
    rounds: tuple = ()          # a re-verification's rounds (runbook_lib.checks.consistency.changes.Round)

    @property
    def tables_differ(self) -> list[str]:
        """Tables whose rows or columns differ, or that one side lacks."""
        return [t.table for t in self.tables if t.verdict not in (SAME, CHANGING)]

    @property
    def tables_changing(self) -> list[str]:
        return [t.table for t in self.tables if t.verdict == CHANGING]

    @property
    def ok(self) -> bool:
        return all(t.same for t in self.tables)

    def to_frame(self) -> pd.DataFrame:
        rows = []
        for t in self.tables:
            keys = "; ".join(r.text() for r in t.ranges[:MAX_RANGES_SHOWN])
            more = max(len(t.ranges), t.differing_rows or 0) - min(len(t.ranges), MAX_RANGES_SHOWN)
            rows.append({"table": t.table, "method": t.method, "source_rows": t.source_rows,
                         "aurora_rows": t.aurora_rows, "chunks": t.chunks, "chunks_differ": t.chunks_differ,
                         "verdict": t.verdict, "differing_keys": keys + (f"; ... {more} more" if more > 0 else "")
                         or t.note})
        return pd.DataFrame(rows, columns=FRAME_COLUMNS)

    def ranges_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"table": r.table, "first_key": r.first, "last_key": r.last, "rows": r.rows,
                              "kind": r.kind} for t in self.tables for r in t.ranges], columns=RANGE_COLUMNS)

    def samples_frame(self) -> pd.DataFrame:
        """Differing column values of the first few differing rows (table, key, column, source, aurora)."""
        return samples_frame(self.samples)

    def verdict_line(self) -> str:
        n, differ, changing = len(self.tables), self.tables_differ, self.tables_changing
        if not n:
            return f"FAIL: no tables found in {', '.join(self.schemas) or '(no schemas)'}"
        if self.ok:
            return (f"PASS: both sides hold the same data: {n} tables, {sum(t.source_rows or 0 for t in self.tables):,}"
                    f" rows, compared at GTID point {self.gtid_point or '(empty)'} in {self.seconds:.1f} s")
        out = [f"{len(differ)} of {n} tables differ: {', '.join(differ)}"] if differ else []
        if changing:
            out.append(f"{len(changing)} still changing on both sides while compared (compare again when the "
                       f"writes pause): {', '.join(changing)}")
        return "FAIL: " + "; ".join(out)

    def figures(self) -> dict:
        """For ``report.record('consistency', ...)``."""
        verdict = "same" if self.ok and self.tables else "changing" if self.tables and not self.tables_differ \
            else "differ"
        return {"tables_compared": len(self.tables), "tables_differ": self.tables_differ,
                "tables_changing": self.tables_changing, "verdict": verdict,
                "rows_compared": sum(t.source_rows or 0 for t in self.tables), "seconds": round(self.seconds, 2)}

    def raise_if_differ(self) -> None:
        if not self.ok or not self.tables:
            raise CheckFailed("consistency", self.tables_differ + self.tables_changing or ["no tables"],
                              table=self.to_frame(), hint="see the differing keys; find which side is right "
                              "(binary logs, the application) before any cut-over, and repair the other side")


# --- reading table shapes -------------------------------------------------------------------

_SHAPES_SQL = """SELECT c.TABLE_SCHEMA AS s, c.TABLE_NAME AS t, c.COLUMN_NAME AS n, c.DATA_TYPE AS dt,
    c.COLUMN_TYPE AS ct, c.IS_NULLABLE AS nl, k.ORDINAL_POSITION AS kp, tb.TABLE_ROWS AS est
  FROM information_schema.COLUMNS c
  JOIN information_schema.TABLES tb ON tb.TABLE_SCHEMA = c.TABLE_SCHEMA AND tb.TABLE_NAME = c.TABLE_NAME
   AND tb.TABLE_TYPE = 'BASE TABLE'
  LEFT JOIN information_schema.KEY_COLUMN_USAGE k ON k.TABLE_SCHEMA = c.TABLE_SCHEMA
   AND k.TABLE_NAME = c.TABLE_NAME AND k.COLUMN_NAME = c.COLUMN_NAME AND k.CONSTRAINT_NAME = 'PRIMARY'
 WHERE c.TABLE_SCHEMA IN ({}) ORDER BY c.TABLE_SCHEMA, c.TABLE_NAME, c.ORDINAL_POSITION"""


def read_shapes(server: Server, schemas: Sequence[str]) -> dict[str, tuple[TableShape, int]]:
    """``'schema.table' -> (shape, estimated rows)`` for the base tables of ``schemas``."""
    if not schemas:
        return {}
    if (fresh := server.dialect.fresh_table_statistics()) is not None:
        server.execute(fresh)
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for r in server.query(_SHAPES_SQL.format(", ".join(["%s"] * len(schemas))), tuple(schemas)):
        entry = found.setdefault((r["s"], r["t"]), {"columns": [], "key": {}, "est": int(r["est"] or 0)})
        entry["columns"].append(Column(r["n"], str(r["dt"]).lower(), str(r["ct"]).lower(), r["nl"] == "YES"))
        if r["kp"] is not None:
            entry["key"][int(r["kp"])] = r["n"]
    return {f"{s}.{t}": (TableShape(s, t, tuple(e["columns"]), tuple(e["key"][i] for i in sorted(e["key"]))),
                         e["est"]) for (s, t), e in found.items()}


def both_shapes(source: Server, aurora: Server, schemas: Sequence[str], tables: Sequence[str] = ()):
    """Both sides' table shapes in ``schemas`` and the tables to compare (``tables``, or every table
    either side has); ParameterError naming a table of ``tables`` that neither side has."""
    shapes_s, shapes_a = read_shapes(source, schemas), read_shapes(aurora, schemas)
    names = sorted(shapes_s.keys() | shapes_a.keys())
    if unknown := sorted(set(tables) - set(names)):
        raise ParameterError("tables", f"{', '.join(unknown)} not found on either side in {', '.join(schemas)}")
    return shapes_s, shapes_a, [n for n in names if not tables or n in tables]


def compare(source: Server, aurora: Server, schemas: Sequence[str], *, tables: Sequence[str] = (),
            chunk_rows: int = 10_000, rechecks: int = 4, recheck_delay: float = 0.3,
            wait_timeout: float = 30.0, segment_rows: int = 2_000_000) -> Comparison:
    """Compare every base table of ``schemas`` (only ``tables``, 'schema.table', when given).

    NotCaughtUp when a side has not executed the other's transactions within ``wait_timeout`` s."""
    for name, value, low in (("chunk_rows", chunk_rows, 10), ("rechecks", rechecks, 1),
                             ("segment_rows", segment_rows, chunk_rows)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ParameterError(name, f"must be an integer of at least {low}, not {value!r}")
    started = time.monotonic()
    shapes_s, shapes_a, names = both_shapes(source, aurora, schemas, tables)
    opts = Options(chunk_rows, rechecks, recheck_delay, max(1, segment_rows // chunk_rows))
    pair, results = Pair(source, aurora, wait_timeout), []
    try:
        for name in names:
            t0 = time.monotonic()
            result = compare_table(pair, name, shapes_s.get(name), shapes_a.get(name), opts)
            results.append(replace(result, seconds=round(time.monotonic() - t0, 3)))
    finally:
        pair.pool.shutdown(wait=True)
    return Comparison(tuple(results), tuple(schemas), str(pair.points[0]) if pair.points else "",
                      time.monotonic() - started)
