"""Bench section ``scale``: the consistency check at size (runbook_lib.checks.consistency.scan / .changes).

1. **Re-verification.**  A full pass of ``app_crm.persona`` (time-sized chunks), then 1,000 rows
   changed on each side while replication is stopped, ``OVERLAP`` of them on both (each side then
   applies the other's row images: those rows end swapped, as a write conflict leaves them), then
   replication restarted and caught up.  ``changes.reverify`` must find every changed row that
   differs: the truth is read directly, row by row, on both sides.  Its time is compared with the
   full pass's.  The differing rows are repaired afterwards (a logged update on the source).
2. **Throttled check under load.**  Each side updates ``LOAD_ROWS_PER_S`` rows a second of its own
   half of the newest ``HOT_ROWS`` rows (even ids on the source, odd on aurora: no conflicts; random
   rows of all 10M made the replicas of this 2-core machine fall tens of seconds behind with no check
   running, and no throttle can hold a lag the load alone exceeds), in transactions of
   ``BATCH`` rows, alone for ``WARM_UP_S`` (the lag the load causes by itself is reported too), then
   while a full pass runs with a lag limit of ``LAG_LIMIT_S``.  The heartbeat monitor
   the throttle reads samples both directions every 50 ms; its p99 during the check is reported.
"""
from __future__ import annotations

import random
import statistics
import threading
import time
from datetime import datetime, timezone

from runbook_lib.checks.consistency import changes, scan
from runbook_lib.checks.consistency.throttle import Throttle
from runbook_lib.checks.heartbeat import SCHEMA_DDL, TABLE_DDL, HeartbeatMonitor, Side
from runbook_lib.core.errors import LabError

TABLE = "app_crm.persona"
CHANGED_PER_SIDE = 1_000
OVERLAP = 100
LOAD_ROWS_PER_S = 5_000
BATCH = 100
LAG_LIMIT_S = 1.0
WARM_UP_S = 5.0
MAX_WAIT_S = 120.0              # paused longer in one go: the load alone keeps the lag above the limit
HOT_ROWS = 200_000              # the load writes the newest rows (an OLTP hot set), not all 10M at random


def _replication(ctx, run: bool) -> None:
    with ctx.server("onprem") as s:
        s.execute(s.dialect.start_replica() if run else s.dialect.stop_replica())
    with ctx.server("aurora") as s:
        s.execute(s.dialect.start_replication() if run else s.dialect.stop_replication())


def _truth(source, aurora, keys: list[int]) -> set[int]:
    """Keys whose rows differ, read plainly on both sides."""
    marks = ", ".join(["%s"] * len(keys))
    sql = f"SELECT id, first_name, last_name, email, country, score, created_at FROM {TABLE} WHERE id IN ({marks})"
    a = {r["id"]: r for r in source.query(sql, tuple(keys))}
    b = {r["id"]: r for r in aurora.query(sql, tuple(keys))}
    return {k for k in keys if a.get(k) != b.get(k)}


def reverification(ctx, source, aurora) -> dict:
    started = time.monotonic()
    full = scan.full_check(source, aurora, ["app_crm"], tables=[TABLE], mode="fresh", progress=False)
    full_s = time.monotonic() - started
    if not full.ok:
        raise LabError(f"the sides differ before the bench changed anything: {full.to_frame()}")
    lo, hi = (int(v) for v in source.query_one(f"SELECT MIN(id) AS a, MAX(id) AS b FROM {TABLE}").values())
    rng = random.Random(12)
    keys = rng.sample(range(lo, hi + 1), 2 * CHANGED_PER_SIDE - OVERLAP)
    mine, theirs = keys[:CHANGED_PER_SIDE], keys[CHANGED_PER_SIDE - OVERLAP:]
    _replication(ctx, False)
    try:
        for server, part, step in ((source, mine, 1), (aurora, theirs, 2)):
            for i in range(0, len(part), 500):
                chunk = part[i:i + 500]
                server.execute(f"UPDATE {TABLE} SET score = score + {step} WHERE id IN "
                               f"({', '.join(['%s'] * len(chunk))})", tuple(chunk))
    finally:
        _replication(ctx, True)
    ctx.wait_caught_up()
    truth = _truth(source, aurora, keys)
    started = time.monotonic()
    result = changes.reverify(source, aurora, ["app_crm"], tables=[TABLE], progress=False)
    reverify_s = time.monotonic() - started
    found = {int(r.first) for t in result.tables for r in t.ranges if r.rows == 1}
    source.execute(f"UPDATE {TABLE} SET score = 0 WHERE id IN ({', '.join(['%s'] * len(truth))})", tuple(truth))
    ctx.wait_caught_up()
    started = time.monotonic()      # as at a cut-over: writes stopped, the repair the only change since
    frozen = changes.reverify(source, aurora, ["app_crm"], tables=[TABLE], progress=False)
    frozen_s = time.monotonic() - started
    return {"frozen_reverify_s": round(frozen_s, 3), "frozen_reverify_ok": frozen.ok,
            "full_pass_s": round(full_s, 3), "full_pass_chunks": full.tables[0].chunks,
            "rows_changed_per_side": CHANGED_PER_SIDE, "rows_changed_on_both": OVERLAP,
            "rows_differing_truth": len(truth), "reverify_s": round(reverify_s, 3),
            "reverify_keys_compared": result.tables[0].chunks, "reverify_rounds": len(result.rounds),
            "reverify_found": len(found),
            "reverify_fraction_of_full_pass": round(reverify_s / full_s, 4),
            "reverify_found_all_changed": found == truth}


def _writer(server, ids: range, stop: threading.Event, counter: list[int]) -> None:
    """``LOAD_ROWS_PER_S`` row updates a second in transactions of ``BATCH`` rows, paced."""
    tick, interval = time.monotonic(), BATCH / LOAD_ROWS_PER_S
    rng = random.Random(ids.start)
    while not stop.is_set():
        batch = rng.sample(ids, BATCH)
        server.execute(f"UPDATE {TABLE} SET score = score + 1 WHERE id IN ({', '.join(['%s'] * BATCH)})",
                       tuple(batch))
        counter[0] += BATCH
        tick += interval
        stop.wait(max(0.0, tick - time.monotonic()))


def throttled(ctx, source, aurora) -> dict:
    source.execute(SCHEMA_DDL)
    source.execute(TABLE_DDL)
    ctx.wait_caught_up()
    lo, hi = (int(v) for v in source.query_one(f"SELECT MIN(id) AS a, MAX(id) AS b FROM {TABLE}").values())
    hot = max(lo, hi - HOT_ROWS)
    even, odd = range(hot + hot % 2, hi + 1, 2), range(hot + 1 - hot % 2, hi + 1, 2)
    monitor = HeartbeatMonitor(Side("source", "onprem", ctx.opener("onprem")),
                               Side("aurora", "aurora", ctx.opener("aurora")), sample_interval=0.05)
    throttle = Throttle(lag_limit=LAG_LIMIT_S, monitor=monitor, max_wait=MAX_WAIT_S)
    stop, counts, writers = threading.Event(), [[0], [0]], []
    conns = [ctx.server("onprem"), ctx.server("aurora")]
    monitor.start(600)
    try:
        for conn, ids, count in zip(conns, (even, odd), counts):
            writers.append(threading.Thread(target=_writer, args=(conn, ids, stop, count), daemon=True))
            writers[-1].start()
        warm = datetime.now(timezone.utc)
        time.sleep(WARM_UP_S)                               # the load alone first: its own lag
        t0, began, written0 = time.monotonic(), datetime.now(timezone.utc), [c[0] for c in counts]
        result = scan.full_check(source, aurora, ["app_crm"], tables=[TABLE], mode="fresh", throttle=throttle,
                                 progress=False)
        seconds, ended = time.monotonic() - t0, datetime.now(timezone.utc)
        written = [c[0] - w for c, w in zip(counts, written0)]
    finally:
        stop.set()
        for w in writers:
            w.join()
        samples = monitor.stop()
        for c in conns:
            c.close()
    frame = samples.to_frame()
    during = frame[(frame["time"] >= began) & (frame["time"] <= ended)]
    alone = frame[(frame["time"] >= warm) & (frame["time"] < began)]["heartbeat_lag_s"].dropna()
    lags = during["heartbeat_lag_s"].dropna()
    p99 = {d: round(1000 * float(part["heartbeat_lag_s"].dropna().quantile(0.99)), 1)
           for d, part in during.groupby("direction")}
    ctx.wait_caught_up()
    return {"throttle_lag_limit_ms": round(LAG_LIMIT_S * 1000), "throttled_check_s": round(seconds, 3),
            "throttled_check_verdict": result.figures()["verdict"],
            "throttled_check_pauses": throttle.pauses, "throttled_check_paused_s": round(throttle.waited, 3),
            "load_rows_per_s_source": round(written[0] / seconds), "load_rows_per_s_aurora": round(written[1] / seconds),
            "lag_samples_during_check": int(len(lags)),
            "throttled_check_lag_p99_ms": max(p99.values()) if p99 else None,
            "lag_p99_ms_by_direction": p99,
            "lag_max_ms": round(1000 * float(lags.max()), 1) if len(lags) else None,
            "lag_median_ms": round(1000 * statistics.median(lags), 1) if len(lags) else None,
            "load_alone_lag_p99_ms": round(1000 * float(alone.quantile(0.99)), 1) if len(alone) else None}


def run(ctx) -> dict:
    source, aurora = ctx.server("onprem"), ctx.server("aurora")
    try:
        return {**reverification(ctx, source, aurora), **throttled(ctx, source, aurora)}
    finally:
        source.close()
        aurora.close()
