"""A full consistency check at the size of a real database: chunks sized by time, throttled on
replication lag, resumable, with a progress bar, and a row-level report.

:func:`full_check` compares every base table of some schemas on both sides and returns a
:class:`~runbook_lib.checks.consistency.comparison.Comparison` (``kind`` 'full'):

* **Chunks sized by time.**  A chunk is a key range; each side computes ``COUNT(*)`` and
  ``BIT_XOR`` of the row CRCs of it (the SQL of :mod:`runbook_lib.checks.consistency.chunks`), both
  sides at once, at a common GTID point, in consistent snapshots (no locks).  The next chunk's width
  is scaled so that it takes ``target_seconds`` (0.5 s) on the slower side (:class:`ChunkSizer`).
  Integer keys (or a composite key whose first column is an integer) are cut by value; other keys by
  the ``n``-th key in key order on the source (pt-table-checksum's nibbling).  Only aggregates cross
  the wire, so very wide rows cost time, not memory.  A table without a primary key is one
  whole-table checksum (no locks; it cannot be resumed half-way).
* **Throttled.**  Before each chunk the :class:`Throttle` may hold it (heartbeat lag, Threads_running).
  The table its heartbeat writes while the check runs is not compared, like the ledger's own.
* **Resumable.**  Each chunk is written to ``runbook.consistency_chunk`` (:mod:`.ledger`) on the source,
  which replicates it (``record=False``: nothing is written, a pass that only reads).  ``mode='auto'`` continues the scope's latest full pass if it did not finish
  and starts a new one otherwise; ``'fresh'`` always starts anew; ``'resume'`` continues the latest
  one even if it finished (then only its differing chunks are read again).
* **Row-level report.**  Differing chunks are checked again (still differing or still changing, as
  :meth:`Pair.recheck` decides), split until small and compared row by row: each differing key with
  its kind (:mod:`.rows`), capped at ``max_keys`` per table with the count, and the differing column
  values of the first ``sample_rows``.

A later pass needs to read only what changed since: :mod:`runbook_lib.checks.consistency.changes`.
"""
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from runbook_lib.checks import splitbrain
from runbook_lib.checks.consistency.chunks import (
    CHANGING,
    DIFFER,
    INTEGER_TYPES,
    SAME,
    KeyRange,
    Options,
    Pair,
    Span,
    TableResult,
    TableShape,
    common_point,
    compare_table,
    integer_spans,
    key_ends,
    key_text,
    span_rows,
    span_sql,
    span_sums,
)
from runbook_lib.checks.consistency.comparison import Comparison, both_shapes
from runbook_lib.checks.consistency.ledger import FULL, ChunkRow, Ledger
from runbook_lib.checks.consistency.ledger import TABLES as LEDGER_TABLES
from runbook_lib.checks.consistency.progress import Progress
from runbook_lib.checks.consistency.rows import RowSample, key_diffs, key_order, samples
from runbook_lib.checks.consistency.throttle import ChunkSizer, Throttle
from runbook_lib.core.errors import ParameterError
from runbook_lib.mysql.sql import q

METHOD_TIMED = "time-sized chunks"
MODES = ("auto", "fresh", "resume")
SPLIT = 64                      # a differing integer range is split into this many and checked again
ROWS_FETCHED = 2_000            # ... until it holds fewer keys than this; then row by row
FETCH_CAP = 200_000             # row CRCs read per table when narrowing; beyond: the chunk's bounds
FIRST_ROWS = 10_000             # first chunk of a table cut by nibbling
BATCH = 64                      # key spans checksummed per statement


@dataclass
class _Check:
    """One full check while it runs."""

    pair: Pair
    ledger: Ledger
    run_id: str
    sizer: ChunkSizer
    throttle: Throttle | None
    progress: Progress
    opts: Options
    max_keys: int
    sample_rows: int
    differing: dict[str, list[tuple]] = field(default_factory=dict)
    samples: list[RowSample] = field(default_factory=list)

    def pause(self) -> None:
        if self.throttle is not None:
            self.throttle.wait((self.pair.source, self.pair.aurora), self.progress.wait)


def full_check(source, aurora, schemas: Sequence[str], *, tables: Sequence[str] = (), mode: str = "auto",
               target_seconds: float = 0.5, max_chunk_rows: int = 5_000_000, throttle: Throttle | None = None,
               wait_timeout: float = 30.0, rechecks: int = 4, max_keys: int = 1000, sample_rows: int = 5,
               progress: bool = True, record: bool = True) -> Comparison:
    """Compare every base table of ``schemas`` (only ``tables``, 'schema.table', when given); see the module doc."""
    if mode not in MODES:
        raise ParameterError("mode", f"{mode!r} is not one of {', '.join(MODES)}",
                             hint="auto: continue an unfinished pass, else start anew")
    for name, value, low in (("target_seconds", target_seconds, 0.001), ("max_chunk_rows", max_chunk_rows, 10),
                             ("max_keys", max_keys, 1), ("sample_rows", sample_rows, 0), ("rechecks", rechecks, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low:
            raise ParameterError(name, f"must be a number of at least {low}, not {value!r}")
    started = time.monotonic()
    shapes_s, shapes_a, names = both_shapes(source, aurora, schemas, tables)
    names = [n for n in names if n not in (*LEDGER_TABLES, *(throttle.writes if throttle is not None else ()))]
    ledger = Ledger(source, schemas, tables, record=record)
    ledger.ensure()
    last = ledger.latest() if record else None         # record False: reads only, a fresh pass
    go_on = last is not None and last.kind == FULL and (mode == "resume" or (mode == "auto" and not last.done))
    if go_on:
        run_id, done = last.run_id, ledger.chunks(last.run_id)
    else:
        run_id, done = ledger.begin(FULL, splitbrain.marks(source, aurora)), {}
    est = {n: max(shapes_s.get(n, (None, 0))[1], shapes_a.get(n, (None, 0))[1]) for n in names}
    bar = Progress(sum(est.values()), len(names), enabled=progress)
    check = _Check(Pair(source, aurora, wait_timeout), ledger, run_id, ChunkSizer(target_seconds, max_rows=max_chunk_rows),
                   throttle, bar, Options(10_000, rechecks, 0.3, BATCH), max_keys, sample_rows)
    results = []
    try:
        if throttle is not None:
            throttle.start(source, aurora)
        for name in names:
            t0 = time.monotonic()
            bar.start_table(name, est[name])
            result = _table(check, name, shapes_s.get(name), shapes_a.get(name), done.get(name, []))
            results.append(_with_seconds(result, time.monotonic() - t0))
    finally:
        bar.close()
        check.pair.pool.shutdown(wait=True)
        if throttle is not None:
            throttle.stop()
    comparison = Comparison(tuple(results), tuple(schemas), str(check.pair.points[0]) if check.pair.points else "",
                            time.monotonic() - started, run_id=run_id, kind=FULL, samples=tuple(check.samples),
                            throttled_s=round(throttle.waited, 3) if throttle is not None else 0.0,
                            resumed=go_on)
    ledger.finish(run_id, comparison.figures()["verdict"], check.differing)
    return comparison


def _timed(fn, *args):
    started = time.monotonic()
    return fn(*args), time.monotonic() - started


def _with_seconds(result: TableResult, seconds: float) -> TableResult:
    return replace(result, seconds=round(seconds, 3))


# --- cutting a table ----------------------------------------------------------------------------

def span_columns(shape: TableShape) -> tuple[tuple[str, ...], bool]:
    """The key columns chunks are cut on, and whether they are one integer column (cut by value)."""
    types = {c.name: c.data_type for c in shape.columns}
    if types.get(shape.key[0]) in INTEGER_TYPES:
        return shape.key[:1], True
    return shape.key, False


def nth_key(server, shape: TableShape, lower: tuple | None, n: int, upper: tuple | None = None) -> tuple | None:
    """The ``n``-th key at or after ``lower`` (and before ``upper``) in key order; None past the end."""
    cols = ", ".join(q(c) for c in shape.key)
    where, args = span_sql(shape.key, (lower, upper))
    row = server.query_one(f"SELECT {cols} FROM {shape.sql_name} WHERE {where} ORDER BY {cols} LIMIT {int(n)}, 1",
                           tuple(args))
    return None if row is None else tuple(row[c] for c in shape.key)


def _table(check: _Check, name: str, src, aur, done: list[ChunkRow]) -> TableResult:
    if src is None or aur is None or src[0].signature() != aur[0].signature() or not src[0].key:
        return _whole(check, name, src, aur, done)
    shape, est = src[0], max(src[1], aur[1])
    cols, integer = span_columns(shape)
    pair = check.pair
    counts = [sum(c.source_rows for c in done), sum(c.aurora_rows for c in done)]
    bad = [(c.lower, c.upper) for c in done if not c.same]
    check.progress.rows(sum(max(c.source_rows, c.aurora_rows) for c in done))
    chunks = len(done)
    if not done or done[-1].upper is not None:
        lower, n = (done[-1].upper, done[-1].chunk + 1) if done else (None, 0)
        if integer:
            lo, hi = key_ends(pair, shape, (lower, None), cols)
            width, pos = check.sizer.first_width(hi - lo + 1, est), lower[0] if lower else lo
        else:
            width, pos, hi = FIRST_ROWS, 0, 0
        unsaved: tuple[ChunkRow, float] | None = None
        while True:
            check.pause()
            if integer:
                upper = None if pos + width > hi else (pos + width,)
            else:
                upper = nth_key(pair.source, shape, lower, width)
            point = common_point(pair.source, pair.aurora)
            if unsaved:         # the last chunk's row, written after the point: no side waits for it
                check.ledger.chunk(check.run_id, *unsaved)
            got = pair.both(lambda s, sp=(lower, upper): _timed(span_sums, s, shape, {0: sp}, BATCH, cols), point)
            seconds = max(got[0][1], got[1][1])         # the slower side's own time, not the waits
            (rs, xs), (ra, xa) = got[0][0].get(0, (0, 0)), got[1][0].get(0, (0, 0))
            unsaved = ChunkRow(name, n, lower, upper, rs, ra, (rs, xs) == (ra, xa)), seconds
            counts[0], counts[1], chunks = counts[0] + rs, counts[1] + ra, chunks + 1
            if (rs, xs) != (ra, xa):
                bad.append((lower, upper))
            check.progress.rows(max(rs, ra))
            if upper is None:
                check.ledger.chunk(check.run_id, *unsaved)
                break
            width = check.sizer.next_width(width, seconds, max(rs, ra), check.throttle.chunk_target(
                check.sizer.target) if check.throttle is not None else None)
            lower, n = upper, n + 1
            if integer:
                pos = upper[0]
    ranges, verdict, count = _differing(check, shape, cols, integer, bad)
    return TableResult(name, METHOD_TIMED, counts[0], counts[1], chunks, len(bad), verdict, tuple(ranges),
                       differing_rows=count)


def _whole(check: _Check, name: str, src, aur, done: list[ChunkRow]) -> TableResult:
    """Missing on a side, columns that differ, or no primary key: :func:`compare_table`, recorded once."""
    if done and done[0].same and src is not None and aur is not None:
        return TableResult(name, "whole table (no primary key)", done[0].source_rows, done[0].aurora_rows, 1, 0,
                           SAME, note="no primary key: compared as one whole-table checksum (earlier in this pass)")
    check.pause()
    result = compare_table(check.pair, name, src, aur, check.opts)
    if result.verdict not in (SAME, CHANGING):
        check.differing[name] = []
    if result.source_rows is not None:
        check.ledger.chunk(check.run_id, ChunkRow(name, 0, None, None, result.source_rows, result.aurora_rows or 0,
                                                  result.same), result.seconds)
        check.progress.rows(max(result.source_rows, result.aurora_rows or 0))
    return result


# --- from differing chunks to keys --------------------------------------------------------------

def _differing(check: _Check, shape: TableShape, cols: tuple[str, ...], integer: bool,
               bad: list[Span]) -> tuple[list[KeyRange], str, int]:
    """Keys of the differing chunks (the first ``max_keys``), the table's verdict, how many keys differ."""
    if not bad:
        return [], SAME, 0
    pair, ids = check.pair, dict(enumerate(bad))
    first = pair.both(lambda s: span_sums(s, shape, ids, BATCH, cols))
    still, changing = pair.recheck(first, lambda s, items: span_sums(s, shape, {i: ids[i] for i in items},
                                                                     BATCH, cols),
                                   check.opts)
    spans = [ids[i] for i in still]
    src, aur, wide = (_narrow_values if integer else _narrow_walk)(pair, shape, cols, spans)
    ranges, count = key_diffs(shape.table, src, aur, check.max_keys)
    keys = sorted((k for k in src.keys() | aur.keys() if src.get(k) != aur.get(k)), key=key_order)
    check.samples += samples(pair, shape, [k for k in keys if k in src and k in aur], check.sample_rows)
    ranges += [_span_range(shape, span, "chunk") for span in wide]
    ranges += [_span_range(shape, ids[i], CHANGING) for i in changing]
    verdict = DIFFER if count or wide else CHANGING if changing or spans else SAME
    if verdict == DIFFER:
        check.differing[shape.table] = [] if wide else keys     # []: compared whole next time
    return ranges, verdict, count


def _span_range(shape: TableShape, span: Span, kind: str) -> KeyRange:
    return KeyRange(shape.table, key_text(span[0]) if span[0] else "(first)",
                    f"{key_text(span[1])} (excl.)" if span[1] else "(last)", 0, kind)


def _narrow_values(pair: Pair, shape: TableShape, cols: tuple[str, ...],
                   spans: list[Span]) -> tuple[dict, dict, list[Span]]:
    """Split differing ranges of an integer column until small, then read their rows' CRCs."""
    src, aur, wide = {}, {}, []
    pending = [key_ends(pair, shape, span, cols) for span in spans]
    while pending := [(lo, hi) for lo, hi in pending if hi >= lo]:
        if len(src) + len(aur) > FETCH_CAP:
            wide += [((lo,), (hi + 1,)) for lo, hi in pending]
            break
        small = [((lo,), (hi + 1,)) for lo, hi in pending if hi - lo < ROWS_FETCHED]
        if small:
            a, b = pair.both(lambda s: [span_rows(s, shape, sp, cols) for sp in small])
            for x, y in zip(a, b):
                src.update(x)
                aur.update(y)
        parts = [dict(enumerate(integer_spans(lo, hi, math.ceil((hi - lo + 1) / SPLIT))))
                 for lo, hi in pending if hi - lo >= ROWS_FETCHED]
        got = pair.both(lambda s: [span_sums(s, shape, p, BATCH, cols) for p in parts]) if parts else ([], [])
        pending = [key_ends(pair, shape, p[i], cols) for p, a, b in zip(parts, *got)
                   for i in sorted(p) if a.get(i) != b.get(i)]
    return src, aur, wide


def _narrow_walk(pair: Pair, shape: TableShape, cols: tuple[str, ...],
                 spans: list[Span]) -> tuple[dict, dict, list[Span]]:
    """Cut each differing span every ``ROWS_FETCHED`` keys (on the source), then read the rows of the
    pieces that differ."""
    src, aur, wide = {}, {}, []
    for span in spans:
        bounds, lower = [], span[0]
        while (nxt := nth_key(pair.source, shape, lower, ROWS_FETCHED, span[1])) is not None:
            bounds.append(nxt)
            lower = nxt
        pieces = dict(enumerate(zip([span[0], *bounds], [*bounds, span[1]])))
        a, b = pair.both(lambda s, p=pieces: span_sums(s, shape, p, BATCH, cols))
        for i in sorted(pieces):
            if a.get(i) == b.get(i):
                continue
            if len(src) + len(aur) > FETCH_CAP:
                wide.append(pieces[i])
                continue
            x, y = pair.both(lambda s, p=pieces[i]: span_rows(s, shape, p, cols))
            src.update(x)
            aur.update(y)
    return src, aur, wide
