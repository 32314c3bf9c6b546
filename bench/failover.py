"""Bench section ``failover``: the highest write rate per side that the failover test sustains with
nothing lost, and its convergence time.

For each rate of :data:`RATES` (rows per second into *each* side: batches of :data:`BATCH_ROWS`
rows every ``BATCH_ROWS / rate`` seconds) one short failover test runs through
:func:`runbook_lib.phases.failover_test.steps.run` on the bench's lab (:data:`RUN_SECONDS` of writing, the failover at
:data:`FAILOVER_AT`).  A rate is *sustained* when the run converged with no acknowledged row
missing on either side and both writers achieved at least :data:`SUSTAINED` of it over the whole run
(acknowledged rows / seconds from the first batch to the last acknowledgement): Aurora's writer has
to make up its outage before the run ends.  The steps stop at the first rate not sustained.

Keys: ``failover_write_rate_rows_per_s_per_side`` (the highest sustained rate, 0 if none),
``failover_convergence_seconds`` (at that rate), and per step ``<rate>_*``: achieved rates, rows
lost, Aurora's recovery and the convergence seconds, writer errors, the verdict.  The test rows are
emptied afterwards; the run records stay in ``runbook.failover_runs``.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from bench import CLUSTER_ID, Context, env_int

RATES = tuple(int(r) for r in os.environ.get("RUNBOOK_BENCH_FAILOVER_RATES", "1000,5000,10000,20000")
              .split(","))
BATCH_ROWS = 1000
RUN_SECONDS = float(env_int("RUNBOOK_BENCH_FAILOVER_SECONDS", 30))
FAILOVER_AT = 5.0
SUSTAINED = 0.95
READER_ID = "runbook-aurora-2"            # as in parameters/lab.yaml


def _reader(ctx: Context) -> None:
    """Add the failover target (a reader instance) to the bench lab's cluster record if it lacks one."""
    rds = ctx.aws("rds")
    members = rds.describe_db_clusters(DBClusterIdentifier=CLUSTER_ID)["DBClusters"][0]["DBClusterMembers"]
    if READER_ID not in {m["DBInstanceIdentifier"] for m in members}:
        rds.create_db_instance(DBInstanceIdentifier=READER_ID, DBClusterIdentifier=CLUSTER_ID,
                               Engine="aurora-mysql", DBInstanceClass="db.r6g.large")


def _available(ctx: Context, timeout: float = 120.0) -> None:
    rds, deadline = ctx.aws("rds"), time.monotonic() + timeout
    while rds.describe_db_clusters(DBClusterIdentifier=CLUSTER_ID)["DBClusters"][0]["Status"] != "available":
        if time.monotonic() > deadline:
            raise TimeoutError(f"cluster {CLUSTER_ID} not available after {timeout:.0f} s")
        time.sleep(0.5)


def run(ctx: Context) -> dict:
    from runbook_lib.checks import heartbeat
    from runbook_lib.context import session
    from runbook_lib.core.display import raise_if_failed
    from runbook_lib.phases.failover_test import result as failover_result
    from runbook_lib.phases.failover_test import steps as failover
    _reader(ctx)
    params = ctx.params_file(Path(tempfile.mkdtemp(prefix="bench-failover-")) / "lab.yaml")
    out: dict = {"failover_run_seconds": RUN_SECONDS, "failover_at_seconds": FAILOVER_AT,
                 "failover_batch_rows": BATCH_ROWS}
    best, best_convergence = 0, None
    with session.open_session(params, ["failover_test"], quiet=True) as rb:
        heartbeat.create_table(rb)
        try:
            for rate in RATES:
                _available(ctx)
                rb.aurora().reconnect()          # the previous step's failover closed it
                raise_if_failed(failover.readiness(rb), "failover test preconditions")
                settings = failover_result.Settings(batch_rows=BATCH_ROWS, interval_seconds=BATCH_ROWS / rate,
                                             duration_seconds=RUN_SECONDS, failover_at_seconds=FAILOVER_AT,
                                             converge_timeout_seconds=60, rerun=True)
                ctx.say(f"failover: {rate:,} rows/s per side for {RUN_SECONDS:g} s ...")
                r = failover.run(rb, settings)
                ctx.say(f"failover: {r.verdict_line()}")
                lost = sum(r.rows_lost.values())
                sustained = (r.verdict == "converged" and not lost
                             and min(r.write_rate.values()) >= SUSTAINED * rate)
                out.update({f"{rate}_achieved_source": round(r.write_rate["source"]),
                            f"{rate}_achieved_aurora": round(r.write_rate["aurora"]),
                            f"{rate}_rows_lost": lost, f"{rate}_recovery_seconds": r.recovery_seconds,
                            f"{rate}_convergence_seconds": r.convergence_seconds,
                            f"{rate}_aurora_writer_errors": sum(r.errors_by_kind("aurora writer").values()),
                            f"{rate}_verdict": r.verdict + ("" if sustained else " (not sustained)")})
                if not sustained:
                    break
                best, best_convergence = rate, r.convergence_seconds
        finally:
            cleanup = failover.plan_cleanup(rb)
            if not cleanup.plan.is_empty:
                cleanup.apply()
    out["failover_write_rate_rows_per_s_per_side"] = best
    out["failover_convergence_seconds"] = best_convergence
    return out
