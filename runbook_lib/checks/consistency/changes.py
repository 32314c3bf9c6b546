"""Re-verification proportional to change (ghostferry's iterative verifier, for two sides that both
take writes): after a full pass, read only the rows written since, found in both sides' binary logs.

:func:`changed_keys` reads one server's binary log from a :class:`BinlogMark` to its end with
python-mysql-replication (a replication client: it needs REPLICATION SLAVE and REPLICATION CLIENT,
which Aurora's master user has: "Master user account privileges") and collects the primary key of every row that a ROW event wrote,
updated (before and after image) or deleted, per table.  On Aurora the binary log is read on the
writer instance, the only one that has it ("Configuring Aurora MySQL binary logging").  Keys are
taken from the event's images by column position, so they need no ``binlog_row_metadata=FULL``;
with ``binlog_row_image=MINIMAL`` the before image still holds the key ("Replication and Binary
Logging Options and Variables": binlog_row_image).

:func:`reverify` starts where the scope's latest finished pass (:mod:`.ledger`) started reading:

1. take both sides' binary log positions, read the keys changed since the previous ones on both sides,
   add the keys the previous pass found differing, and compare those rows on both sides at a common
   GTID point (:func:`runbook_lib.checks.consistency.rows.key_rows`), rechecking the differing ones;
2. repeat with the keys changed during that round while the set keeps shrinking and is larger than
   ``small`` (at most ``max_rounds``); a round in which no binary log moved ends it.

A table without a primary key that changed, one missing on a side, or one the previous pass found
differing without keys is compared whole (:func:`runbook_lib.checks.consistency.chunks.compare_table`).
The result is a :class:`Comparison` of kind 'reverify' recorded in the ledger; its verdict is the
data's as of the last round's GTID point.  With no finished pass to start from, it runs
:func:`runbook_lib.checks.consistency.scan.full_check` instead.  A binary log purged since the pass
makes it stop with :class:`CheckFailed` (run a full pass).
"""
from __future__ import annotations

import logging
import random
import ssl
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pymysql
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import GtidEvent
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

from runbook_lib.checks import splitbrain
from runbook_lib.checks.consistency.chunks import (
    CHANGING,
    DIFFER,
    SAME,
    Options,
    Pair,
    TableResult,
    TableShape,
    compare_table,
)
from runbook_lib.checks.consistency.comparison import Comparison, read_shapes
from runbook_lib.checks.consistency.ledger import REVERIFY, Ledger
from runbook_lib.checks.consistency.ledger import TABLES as LEDGER_TABLES
from runbook_lib.checks.consistency.rows import key_diffs, key_order, key_rows, samples
from runbook_lib.checks.consistency.scan import full_check
from runbook_lib.checks.splitbrain import BinlogMark
from runbook_lib.core.errors import CheckFailed, ReplicationError

METHOD_KEYS = "re-verify: changed keys"
UNCHANGED = "re-verify: unchanged since the last pass"
WHOLE = ()                      # the 'key' of a change to a table without a primary key

logging.getLogger("pymysqlreplication").setLevel(logging.ERROR)     # its advice on binlog_row_metadata


@dataclass(frozen=True)
class Round:
    """One round of a re-verification: keys changed since the round before, keys compared, seconds."""

    changed: int
    compared: int
    differing: int
    seconds: float


class _Connection(pymysql.connections.Connection):
    """A PyMySQL connection whose TLS context for the 'preferred' mode (no verification) is built once
    per process: building one loads the system's CA store, 70 ms here, twice per binary log read."""

    _preferred: ssl.SSLContext | None = None

    def _create_ssl_ctx(self, sslp):
        if sslp != {}:
            return super()._create_ssl_ctx(sslp)
        if _Connection._preferred is None:
            _Connection._preferred = super()._create_ssl_ctx(sslp)
        return _Connection._preferred


def image_key(shape: TableShape, image: dict, names: list[str]) -> tuple | None:
    """The key of a row image of python-mysql-replication: by column name, or by position
    (``UNKNOWN_COL<i>``, when the server logs no column names); None when the image lacks a key column."""
    values = []
    for col in shape.key:
        i = names.index(col)
        if col in image:
            values.append(image[col])
        elif f"UNKNOWN_COL{i}" in image:
            values.append(image[f"UNKNOWN_COL{i}"])
        else:
            return None
    return tuple(values)


def changed_keys(server, since: BinlogMark, shapes: dict[str, TableShape], *,
                 skip_origin: str = "") -> dict[str, set[tuple]]:
    """``'schema.table' -> keys`` of the rows of ``shapes``' tables written in ``server``'s binary log
    since ``since``; a table without a primary key gets the empty key ``()``.  The rows of transactions
    whose GTID names ``skip_origin`` (a server uuid) are not decoded: that server's own log has them."""
    logs = [str(r["Log_name"]) for r in server.query("SHOW BINARY LOGS")]
    if since.file not in logs:
        raise CheckFailed(f"re-verification from {server.role}'s binary log", [f"{since.file} was purged"],
                          hint="the changes since the last pass can no longer be read: run a full pass")
    names = {n: [c.name for c in s.columns] for n, s in shapes.items()}
    out: dict[str, set[tuple]] = {}
    stream = BinLogStreamReader(connection_settings=server.stream_settings(),
                                server_id=random.randint(2**31, 2**32 - 2), log_file=since.file,
                                log_pos=since.position, resume_stream=True, blocking=False,
                                only_events=[GtidEvent, WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent],
                                only_schemas=sorted({s.schema for s in shapes.values()}),
                                only_tables=sorted({s.name for s in shapes.values()}), enable_logging=False,
                                pymysql_wrapper=_Connection)
    skip, theirs = False, uuid.UUID(skip_origin).bytes if skip_origin else b""
    try:
        for event in stream:
            if isinstance(event, GtidEvent):
                skip = event.sid == theirs
                continue
            name = f"{event.schema}.{event.table}"
            shape = shapes.get(name)
            if shape is None or skip:
                continue
            keys = out.setdefault(name, set())
            for row in event.rows:
                for image in (row.get("values"), row.get("before_values"), row.get("after_values")):
                    if image and (key := image_key(shape, image, names[name]) if shape.key else WHOLE) is not None:
                        keys.add(key)
    except pymysql.err.MySQLError as e:
        raise ReplicationError(server.role, f"reading the binary log from {since}: {e}",
                               hint="the account needs REPLICATION SLAVE and REPLICATION CLIENT") from e
    finally:
        stream.close()
    return out


def changed_on_both(source, aurora, marks: dict[str, BinlogMark],
                    shapes: dict[str, TableShape]) -> dict[str, set[tuple]]:
    """:func:`changed_keys` of both sides (read at the same time), united.  Each side decodes the rows
    of every transaction but those that began on the other side (their origin's log has them: half
    the work when both directions replicate)."""
    pairs = ((source, aurora), (aurora, source))
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="binlog") as pool:
        found = [pool.submit(changed_keys, s, marks[s.role], shapes, skip_origin=o.identity.server_uuid)
                 for s, o in pairs]
        out: dict[str, set[tuple]] = {}
        for f in found:
            for name, keys in f.result().items():
                out.setdefault(name, set()).update(keys)
    return out


def reverify(source, aurora, schemas: Sequence[str], *, tables: Sequence[str] = (), small: int = 100,
             max_rounds: int = 5, wait_timeout: float = 30.0, rechecks: int = 4, max_keys: int = 1000,
             sample_rows: int = 5, progress: bool = True, record: bool = True, **full: object) -> Comparison:
    """Check again only what changed since the scope's latest finished pass; see the module doc.
    ``record`` False: reads only (nothing is written to the ledger; the next pass starts from the same one)."""
    ledger = Ledger(source, schemas, tables, record=record)
    ledger.ensure()
    last = ledger.latest_covering()
    if last is None:
        return full_check(source, aurora, schemas, tables=tables, wait_timeout=wait_timeout, rechecks=rechecks,
                          max_keys=max_keys, sample_rows=sample_rows, progress=progress, record=record, **full)
    started = time.monotonic()
    shapes_s, shapes_a = read_shapes(source, schemas), read_shapes(aurora, schemas)
    names = [n for n in sorted(shapes_s.keys() | shapes_a.keys()) if (not tables or n in tables)
             and n not in LEDGER_TABLES]
    keyed = {n: shapes_s[n][0] for n in names if n in shapes_s and n in shapes_a
             and shapes_s[n][0].signature() == shapes_a[n][0].signature()}
    pending = {t: set(keys) for t, keys in last.differing.items() if t in names}
    whole = {t for t, keys in last.differing.items() if not keys and t in names} | (set(names) - set(keyed))
    pair, opts = Pair(source, aurora, wait_timeout), Options(10_000, rechecks, 0.3, 64)
    marks, rounds, results = last.marks, [], {}
    try:
        while True:
            t0, now = time.monotonic(), splitbrain.marks(source, aurora)
            changed = changed_on_both(source, aurora, marks, keyed)
            whole |= {t for t, keys in changed.items() if WHOLE in keys}
            todo = {t: (changed.get(t, set()) | pending.get(t, set())) - {WHOLE} for t in keyed if t not in whole}
            todo = {t: sorted(k, key=key_order) for t, k in todo.items() if k}
            results.update({t: _keys(pair, keyed[t], keys, opts) for t, keys in todo.items()})
            pending = {t: set(r[1]) for t, r in results.items() if r[1]}
            rounds.append(Round(sum(len(k) for k in changed.values()), sum(len(k) for k in todo.values()),
                                sum(len(k) for k in pending.values()), round(time.monotonic() - t0, 3)))
            marks = now
            quiet = splitbrain.marks(source, aurora) == now
            if (quiet or rounds[-1].changed <= small or len(rounds) >= max_rounds
                    or (len(rounds) > 1 and rounds[-1].changed >= rounds[-2].changed)):
                break
        tables_out, found_samples, differing = [], [], {}
        for name in names:
            if name in whole:
                result = compare_table(pair, name, shapes_s.get(name), shapes_a.get(name), opts)
                if not result.same and result.verdict != CHANGING:
                    differing[name] = []
            elif name in results:
                result, keys = _result(pair, keyed[name], results[name], max_keys)
                found_samples += samples(pair, keyed[name], keys, sample_rows) if keys else []
                if keys:
                    differing[name] = keys
            else:
                result = TableResult(name, UNCHANGED, None, None, 0, 0, SAME,
                                     note=f"no row written since pass {last.run_id[:8]}")
            tables_out.append(result)
    finally:
        pair.pool.shutdown(wait=True)
    run_id = ledger.begin(REVERIFY, marks)         # written at the end: the rounds see no write of ours
    comparison = Comparison(tuple(tables_out), tuple(schemas), str(pair.points[-1]) if pair.points else "",
                            time.monotonic() - started, run_id=run_id, kind=REVERIFY, samples=tuple(found_samples),
                            rounds=tuple(rounds))
    ledger.finish(run_id, comparison.figures()["verdict"], differing, marks=marks)
    return comparison


def _keys(pair: Pair, shape: TableShape, keys: list[tuple], opts: Options) -> tuple[int, list, list]:
    """Compare ``keys`` on both sides: (keys compared, still differing, still changing)."""
    first = pair.both(lambda s: key_rows(s, shape, keys))
    still, changing = pair.recheck(first, lambda s, items: key_rows(s, shape, items), opts)
    return len(keys), still, changing


def _result(pair: Pair, shape: TableShape, found: tuple[int, list, list], max_keys: int) -> tuple[TableResult, list]:
    compared, still, changing = found
    src, aur = pair.both(lambda s: key_rows(s, shape, still)) if still else ({}, {})
    ranges, count = key_diffs(shape.table, src, aur, max_keys)
    keys = sorted((k for k in src.keys() | aur.keys() if src.get(k) != aur.get(k)), key=key_order)
    verdict = DIFFER if count else CHANGING if changing or still else SAME
    return TableResult(shape.table, METHOD_KEYS, compared, compared, compared, count + len(changing), verdict,
                       tuple(ranges), note=f"{compared} changed keys compared", differing_rows=count), keys
