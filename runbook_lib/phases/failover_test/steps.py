"""Phase 7, the failover test: write into both sides, fail Aurora over, prove nothing was lost.

The AWS blog proves its setup by counting rows on both sides while inserting 1,000 rows every 2 s
into each and failing Aurora over.  :func:`run` does that, measured:

* one writer thread per side inserts numbered batches into ``runbook.failover_rows`` (created on
  the source, so it replicates); a batch is acknowledged when its COMMIT returned, and every error
  is recorded with its time and kind (:mod:`runbook_lib.phases.failover_test.load`);
* both sides' row counts and ``gtid_executed`` are sampled several times a second, the lag of each
  direction by the heartbeat monitor, and the cluster's status and writer flag every second;
* at ``failover_at_seconds`` it calls ``failover_db_cluster`` with a reader as the target;
* after the writers stop it waits until both directions have caught up, then compares counts,
  chunked checksums, and looks up every acknowledged (origin, seq) on both sides.

Definitions (also in :meth:`FailoverResult.to_frame`): *recovery* = from the failover request to
the first acknowledged Aurora batch after the Aurora writer's first error (Aurora accepts writes
again); *convergence* = from the failover request to the first sampling round after that recovery
in which both directions had caught up again (each side had executed the other's gtid_executed of
the previous round, i.e. each direction's lag was under one sampling interval), provided the sides
also ended caught up in a round sampled after the writers stopped; *rows lost* on a side =
acknowledged rows (of both writers) absent from it.  The verdict is ``converged`` only if both sides converged, no
acknowledged row is missing on either side, counts and checksums agree, the ids kept their sides'
auto-increment offsets, Aurora accepted writes again and the target became the writer.

Results are kept on the source in ``runbook.failover_runs`` (they replicate), so a later cell, a
second run of the notebook, or another phase reads them from the servers (:func:`latest_result`).

Notebook 07 calls :func:`readiness`, :func:`plan_test` (step ``failover_test``; an empty plan once
a converged run is on record, unless ``rerun``), :func:`latest_result`, and :func:`plan_cleanup`
(step ``cleanup:failover_rows``: empty the test rows, keep the records).  Values:
:mod:`runbook_lib.phases.failover_test.result`; threads: :mod:`runbook_lib.phases.failover_test.load`; plots:
:mod:`runbook_lib.phases.failover_test.plots`.
"""
from __future__ import annotations

import functools
import json
import threading
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from runbook_lib.checks import channels
from runbook_lib.core.approval import Plan, Step
from runbook_lib.core.display import CheckResult, raise_if_failed
from runbook_lib.core.errors import AwsError, NotApplied, NotCaughtUp, QueryFailed, RunbookError
from runbook_lib.phases.failover_test import load as fl
from runbook_lib.phases.failover_test.result import FailoverResult, LagPoint, Sample, Settings

if TYPE_CHECKING:  # pragma: no cover
    from runbook_lib.context.session import Session
    from runbook_lib.mysql.connection import Endpoint, Server

__all__ = ["readiness", "plan_test", "run", "latest_result", "plan_cleanup",
           "TestStep", "CleanupStep", "STEP", "CLEANUP_STEP"]

STEP = "failover_test"
CLEANUP_STEP = "cleanup:failover_rows"
RUNS_TABLE = f"{fl.SCHEMA}.failover_runs"
DDL = (f"CREATE DATABASE IF NOT EXISTS {fl.SCHEMA}",
       f"CREATE TABLE IF NOT EXISTS {fl.ROWS_TABLE} (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT, "
       "run_id INT UNSIGNED NOT NULL, origin VARCHAR(8) NOT NULL, seq INT UNSIGNED NOT NULL, "
       "payload VARCHAR(64) NOT NULL, written_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), "
       "PRIMARY KEY (id), UNIQUE KEY run_origin_seq (run_id, origin, seq)) ENGINE=InnoDB",
       f"CREATE TABLE IF NOT EXISTS {RUNS_TABLE} (run_id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, "
       "started_at DATETIME(6) NOT NULL, finished_at DATETIME(6) NULL, verdict VARCHAR(16) NOT NULL, "
       "settings JSON NOT NULL, result LONGTEXT NULL) ENGINE=InnoDB")
ER_NO_SUCH_TABLE, ER_BAD_DB = 1146, 1049
CLOUDWATCH_SERIES = "AuroraBinlogReplicaLag (CloudWatch)"
MISPLACED_SQL = (f"SELECT COUNT(*) FROM {fl.ROWS_TABLE} "
                 "WHERE run_id = %s AND origin = %s AND MOD(id, %s) <> MOD(%s, %s)")


# --- what the servers and the cluster say --------------------------------------------------------

def _cluster(rb: Session) -> tuple[str, str, list[str]]:
    """(status, writer, readers) of the parameters' cluster."""
    from runbook_lib.aws.clusters import describe_cluster
    cluster = describe_cluster(rb.aws("rds"), rb.params.aurora_cluster_id)
    if cluster is None:
        raise NotApplied(f"cluster {rb.params.aurora_cluster_id}", "restore")
    writer = next((i for i, is_writer, _ in cluster.members if is_writer), "")
    return cluster.status, writer, [i for i, is_writer, _ in cluster.members if not is_writer]


def _writer_now(rb: Session) -> tuple[str, str]:
    status, writer, _ = _cluster(rb)
    return status, writer


def failover_target(rb: Session, readers: list[str]) -> str:
    """The configured reader if it is a reader now, else the first reader ('' if none)."""
    wanted = rb.params.aurora_reader_instance
    return wanted if wanted in readers else (readers[0] if readers else "")


def latest_run(server: Server) -> dict | None:
    """The newest row of runbook.failover_runs (None if there is none or no such table)."""
    try:
        return server.query_one(f"SELECT run_id, started_at, verdict, result FROM {RUNS_TABLE} "
                                "ORDER BY run_id DESC LIMIT 1")
    except QueryFailed as e:
        if e.errno in (ER_NO_SUCH_TABLE, ER_BAD_DB):
            return None
        raise


def latest_result(rb: Session) -> FailoverResult:
    """The newest run's result, read from the source; NotApplied if it has none (none finished)."""
    row = latest_run(rb.source())
    if row is None or not row["result"]:
        raise NotApplied(f"a finished failover test (a run recorded in {RUNS_TABLE} on the source)", STEP)
    return FailoverResult.from_json(row["result"])


def readiness(rb: Session) -> list[CheckResult]:
    """What the test needs: both directions running as configured, the heartbeat table, offsets that
    cannot collide, both sides writable, the cluster available with a reader to fail over to.  Reads only."""
    from runbook_lib.checks import heartbeat
    statuses = channels.directions(rb, settle=5)
    rows = [r for r in channels.direction_checks(statuses, channels.channel_specs(rb.params))
            if r.status != "info"]
    src, aur = rb.source(), rb.aurora()
    tables = ["present" if heartbeat.table_state(server)[1] else "missing" for server in (src, aur)]
    rows.append(CheckResult("heartbeat table runbook.heartbeat (lag of each direction)", *tables,
                            "pass" if tables == ["present"] * 2 else "fail",
                            "approve and apply step 'replication' (05_replication)"))
    v = {side: server.variables("auto_increment_increment", "auto_increment_offset", "read_only")
         for side, server in (("source", src), ("aurora", aur))}
    inc = {side: int(v[side]["auto_increment_increment"]) for side in v}
    off = {side: int(v[side]["auto_increment_offset"]) for side in v}
    apart = (inc["source"] == inc["aurora"] >= 2
             and off["source"] % inc["source"] != off["aurora"] % inc["aurora"])
    rows.append(CheckResult("auto_increment increment/offset (ids cannot collide)",
                            f"{inc['source']}/{off['source']}", f"{inc['aurora']}/{off['aurora']}",
                            "pass" if apart else "fail", "set them as phases 2 and 3 do (the same increment "
                            "on both sides, offsets that differ)"))
    writable = v["source"]["read_only"] == v["aurora"]["read_only"] == "OFF"
    rows.append(CheckResult("read_only", v["source"]["read_only"], v["aurora"]["read_only"],
                            "pass" if writable else "fail", "the test writes into both sides"))
    status, writer, readers = _cluster(rb)
    target = failover_target(rb, readers)
    rows.append(CheckResult(f"cluster {rb.params.aurora_cluster_id} status", "", status,
                            "pass" if status == "available" else "fail", "wait until it is available"))
    rows.append(CheckResult("failover target (a reader instance)", "", f"{writer} → {target or 'none'}",
                            "pass" if target else "fail", "add a reader instance to the cluster"))
    return rows


# --- plan and apply ------------------------------------------------------------------------------

@dataclass(frozen=True)
class TestStep:
    """``rb.gate.apply(step.plan, step.apply)``: ``apply()`` runs the test and returns its verdict line."""

    plan: Plan
    settings: Settings
    rb: Session = field(repr=False, compare=False)

    def apply(self) -> str:
        return run(self.rb, self.settings).verdict_line()


def plan_test(rb: Session, settings: Settings, ready: list[CheckResult]) -> TestStep:
    """An empty plan when a converged run is on record (unless ``settings.rerun``); otherwise the
    test's steps.  Raises CheckFailed when a test is due and ``ready`` has a failed check."""
    p, s = rb.params, settings
    last = latest_run(rb.source())
    if last is not None and last["verdict"] == "converged" and not s.rerun:
        title = (f"failover test: run {last['run_id']} of {last['started_at']:%Y-%m-%d %H:%M} UTC converged "
                 "and is on record (rerun=True runs the test again)")
        return TestStep(Plan(STEP, title), s, rb)
    raise_if_failed(ready, "failover test preconditions")
    _, writer, readers = _cluster(rb)
    target = failover_target(rb, readers)
    load = (f"{s.batch_rows:,} rows every {s.interval_seconds:g} s for {s.duration_seconds:g} s "
            f"({s.rate:,.0f} rows/s) into {fl.ROWS_TABLE}")
    call = (f"failover_db_cluster(DBClusterIdentifier={p.aurora_cluster_id!r}, "
            f"TargetDBInstanceIdentifier={target!r}) at {s.failover_at_seconds:g} s")
    compare = (f"up to {s.converge_timeout_seconds:g} s after the writers stop: GTID sets, row counts, "
               "chunked checksums, every acknowledged row on both sides")
    steps = (Step("source", "create the test schema and tables (they replicate to Aurora)", "; ".join(DDL),
                  reversible=True, undo=f"{CLEANUP_STEP} at the end of this notebook empties the rows"),
             Step(f"source {p.source_host}:{p.source_port}", "write test rows, origin 'source'", load,
                  reversible=True, undo=CLEANUP_STEP),
             Step(f"aurora {p.aurora_host}:{p.aurora_port}", "write test rows, origin 'aurora'", load,
                  reversible=True, undo=CLEANUP_STEP),
             Step(f"AWS RDS {p.aws_region}", "fail the Aurora cluster over", call, reversible=False,
                  undo=f"fail over again with target {writer!r} to make it the writer again"),
             Step("both sides", "wait for convergence and compare", compare, reversible=True,
                  undo="— (reads only)"))
    notes = (f"Aurora ({writer}) restarts: its clients see refused connections, then read-only errors, for "
             "seconds. Run it while no application depends on Aurora. Replication resumes by itself.")
    return TestStep(Plan(STEP, "failover test", steps, notes), s, rb)


def run(rb: Session, settings: Settings) -> FailoverResult:
    """Run the test and record it on the source.  Bounded: duration + retries + convergence timeout.

    Every thread stops by itself at its deadline; an exception here stops them all at once, and the
    run is recorded as 'aborted'."""
    src, aur = rb.source(), rb.aurora()
    _, writer_before, readers = _cluster(rb)
    target = failover_target(rb, readers)
    if not target:
        raise NotApplied(f"a reader instance in cluster {rb.params.aurora_cluster_id}", "restore",
                         hint="add a reader instance (the failover target), then run this phase again")
    for statement in DDL:
        src.execute(statement)
    src.execute(f"INSERT INTO {RUNS_TABLE} (started_at, verdict, settings) "
                "VALUES (UTC_TIMESTAMP(6), 'running', %s)", (json.dumps(asdict(settings)),))
    run_id = int(src.scalar("SELECT LAST_INSERT_ID()"))
    try:
        channels.wait_until_caught_up(aur, channels.executed_gtids(src), 60)   # Aurora has the tables
        result = _conclude(rb, _measure(rb, settings, run_id, writer_before, target))
    except BaseException:
        src.execute(f"UPDATE {RUNS_TABLE} SET verdict = 'aborted', finished_at = UTC_TIMESTAMP(6) "
                    "WHERE run_id = %s", (run_id,))
        raise
    src.execute(f"UPDATE {RUNS_TABLE} SET verdict = %s, finished_at = UTC_TIMESTAMP(6), result = %s "
                "WHERE run_id = %s", (result.verdict, result.to_json(), run_id))
    return result


@dataclass
class _Measured:
    """What the threads of one run saw (times in seconds since ``started``)."""

    settings: Settings
    run_id: int
    writer_before: str
    target: str
    started: datetime
    requested: float
    writers: list[fl.Writer]
    sampler: fl.Sampler
    watcher: fl.ClusterWatcher
    lag: tuple[LagPoint, ...]


def _endpoint(server: Server, connect: float, read: float) -> Endpoint:
    return replace(server.endpoint, connect_timeout=connect, read_timeout=read)


def _measure(rb: Session, s: Settings, run_id: int, writer_before: str, target: str) -> _Measured:
    from runbook_lib.aws.calls import aws_call
    from runbook_lib.checks.heartbeat import HeartbeatMonitor
    servers = {"source": rb.source(), "aurora": rb.aurora()}
    passwords = {"source": rb.secret("source_admin_password"), "aurora": rb.secret("aurora_admin_password")}
    give_up = s.duration_seconds + s.converge_timeout_seconds        # the last moment a batch is retried
    bound = give_up + s.converge_timeout_seconds                      # the last moment anything runs
    monitor = HeartbeatMonitor.for_session(rb, sample_interval=min(0.5, max(0.05, 1 / s.sample_hz)),
                                           max_seconds=bound + 30)
    stop = threading.Event()
    clock, started = fl.Clock(stop), datetime.now(timezone.utc)
    writers = [fl.Writer(side, _endpoint(servers[side], 2, 10), passwords[side], run_id,
                         batch_rows=s.batch_rows, interval=s.interval_seconds, batches=s.batches,
                         give_up_at=give_up, clock=clock) for side in fl.SIDES]
    sampler = fl.Sampler({side: (_endpoint(servers[side], 1, 5), passwords[side]) for side in fl.SIDES},
                         run_id, s.sample_hz, clock, deadline=bound, settle=s.converge_timeout_seconds)
    watcher = fl.ClusterWatcher(functools.partial(_writer_now, rb), clock)
    threads, requested = [*writers, sampler, watcher], None
    try:
        monitor.start(bound + 30)
        for thread in threads:
            thread.start()
        if clock.sleep_until(s.failover_at_seconds):
            requested = clock.now()
            aws_call(rb.aws("rds"), "failover_db_cluster", DBClusterIdentifier=rb.params.aurora_cluster_id,
                     TargetDBInstanceIdentifier=target)
        fl.join_all(writers, give_up - clock.now() + 15)
        sampler.writers_stopped_at = clock.now()
        fl.join_all([sampler], sampler.end() - clock.now() + 15)
    finally:
        stop.set()
        for thread in threads:
            if thread.is_alive():
                thread.join(15)
        samples = monitor.stop()
    fatal = next((w.fatal for w in writers if w.fatal is not None), None)
    if fatal is not None:
        raise RunbookError(f"a test writer stopped on an error a retry cannot cure: {fatal}") from fatal
    fl.join_all(threads, 0)
    if requested is None:
        raise RunbookError("the test stopped before the failover was requested")
    lag = tuple(LagPoint(round((x.time - started).total_seconds(), 3), x.direction, x.heartbeat_lag_s)
                for x in samples.samples)
    return _Measured(s, run_id, writer_before, target, started, requested, writers, sampler, watcher, lag)


def _present(server: Server, run_id: int) -> dict[str, fl.SeqRanges]:
    """Per origin, the sequence numbers of this run that ``server`` holds."""
    found: dict[str, list[tuple[int, int]]] = {origin: [] for origin in fl.SIDES}
    for row in server.query(server.dialect.sequence_runs(fl.ROWS_TABLE, run_id)):
        found.setdefault(row["origin"], []).append((int(row["lo"]), int(row["hi"])))
    return {origin: fl.SeqRanges.of(pairs) for origin, pairs in found.items()}


def _checksums(rb: Session, timeout: float) -> str:
    """'match', or what differs, of the chunked checksums of the test table on both sides."""
    from runbook_lib.checks.consistency import comparison as consistency
    try:
        comparison = consistency.compare(rb.source(), rb.aurora(), [fl.SCHEMA], tables=[fl.ROWS_TABLE],
                                         wait_timeout=min(30.0, timeout))
    except NotCaughtUp as e:   # a problem of this run, kept in its result (which is the record)
        return f"not compared: {e.message}"
    return "match" if comparison.ok else "differ: " + "; ".join(
        r.text() for t in comparison.tables for r in t.ranges[:5])


def _conclude(rb: Session, m: _Measured) -> FailoverResult:
    """Look up every acknowledged row on both sides, compare them, and build the result."""
    s, run_id = m.settings, m.run_id
    rb.aurora().reconnect()   # the session's connection to Aurora did not survive the failover
    servers = {"source": rb.source(), "aurora": rb.aurora()}
    batches = [b for w in m.writers for b in w.batches]
    events = sorted([e for w in m.writers for e in w.events] + m.sampler.events, key=lambda e: e.t)
    acked = {side: fl.acked_ranges(batches, side) for side in fl.SIDES}
    counts, lost, missing = {}, {}, {}
    for side, server in servers.items():
        present = _present(server, run_id)
        gone = {origin: acked[origin] - present[origin] for origin in fl.SIDES}
        lost[side] = sum(g.count() for g in gone.values())
        missing[side] = "; ".join(f"{origin} seq {g}" for origin, g in gone.items() if g)
        counts[side] = int(server.scalar(f"SELECT COUNT(*) FROM {fl.ROWS_TABLE} WHERE run_id = %s",
                                         (run_id,)))
    auto_inc = {w.side: w.auto_increment for w in m.writers if w.auto_increment is not None}
    misplaced = sum(int(servers["source"].scalar(MISPLACED_SQL, (run_id, side, inc, off, inc)))
                    for side, (inc, off) in auto_inc.items())
    status, writer_after, _ = _cluster(rb)
    recovered = fl.recovery_time(batches, events, m.requested)
    converged = (fl.convergence_time(m.sampler.rounds, recovered)
                 if m.sampler.converged.is_set() and recovered is not None else None)
    last_ack = {side: max((b.t_ack for b in batches if b.side == side and b.t_ack is not None), default=0.0)
                for side in fl.SIDES}
    rows = {side: acked[side].count() for side in fl.SIDES}
    flags = fl.caught_up(m.sampler.rounds)
    end = m.sampler.rounds[-1].t if m.sampler.rounds else m.requested
    reports = () if converged is not None else tuple(     # a wait that gave up names what the channels say
        f"{d}: {channels.channel_report(servers[channels.REPLICA_ROLE[d]])}" for d in channels.DIRECTIONS)
    return FailoverResult(
        run_id=run_id, started_at=m.started.isoformat(timespec="milliseconds"), settings=s,
        cluster_id=rb.params.aurora_cluster_id, writer_before=m.writer_before, target=m.target,
        writer_after=writer_after, requested_at=round(m.requested, 3), recovered_at=recovered,
        converged_at=converged, writers_stopped_at=m.sampler.writers_stopped_at or 0.0, acked_rows=rows,
        rows_lost=lost, missing=missing, counts=counts, checksums=_checksums(rb, s.converge_timeout_seconds),
        write_rate={side: rows[side] / max(s.schedule_seconds, last_ack[side]) for side in fl.SIDES},
        auto_increment=auto_inc, misplaced_ids=misplaced,
        in_doubt={side: sum(1 for b in batches if b.side == side and b.in_doubt) for side in fl.SIDES},
        batches=tuple(batches), events=tuple(events),
        samples=tuple(Sample(r.t, r.source_t, r.source_count, r.aurora_t, r.aurora_count, ok)
                      for r, ok in zip(m.sampler.rounds, flags)),
        lag=m.lag + tuple(_cloudwatch_lag(rb, m.started, end)),
        cluster=tuple(m.watcher.points) + (fl.ClusterPoint(m.watcher.clock.now(), status, writer_after),),
        channels=reports)


def _cloudwatch_lag(rb: Session, started: datetime, end: float) -> list[LagPoint]:
    """CloudWatch's AuroraBinlogReplicaLag of the cluster over the test (-1, not replicating: a gap).

    Real AWS keeps it per minute; the lab's endpoint publishes it every second."""
    from runbook_lib.aws.calls import aws_call
    try:
        answer = aws_call(rb.aws("cloudwatch"), "get_metric_statistics", Namespace="AWS/RDS",
                          MetricName="AuroraBinlogReplicaLag", StartTime=started - timedelta(seconds=2),
                          EndTime=started + timedelta(seconds=end + 2), Statistics=["Maximum"],
                          Dimensions=[{"Name": "DBClusterIdentifier", "Value": rb.params.aurora_cluster_id}],
                          Period=1 if rb.params.aws_endpoint_url else 60)
    except AwsError as e:   # an optional series: the test's own measurements stand without it
        print(f"note: AuroraBinlogReplicaLag not read from CloudWatch ({e.message}); the plot shows the "
              "heartbeat lag only")
        return []
    points = [LagPoint(round((p["Timestamp"] - started).total_seconds(), 3), CLOUDWATCH_SERIES,
                       p["Maximum"] if p["Maximum"] >= 0 else None) for p in answer.get("Datapoints", [])]
    return sorted(points, key=lambda p: p.t)


# --- clean-up ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CleanupStep:
    """``rb.gate.apply(step.plan, step.apply)``: empties the test rows."""

    plan: Plan
    rb: Session = field(repr=False, compare=False)

    def apply(self) -> None:
        self.rb.source().execute(f"TRUNCATE TABLE {fl.ROWS_TABLE}")


def plan_cleanup(rb: Session) -> CleanupStep:
    """Empty the test rows (TRUNCATE on the source, replicated); the run records stay, so a second run
    of this notebook still finds its result.  An empty plan when there are no rows."""
    try:
        left = rb.source().scalar(f"SELECT COUNT(*) FROM (SELECT 1 FROM {fl.ROWS_TABLE} LIMIT 1) AS x")
    except QueryFailed as e:
        if e.errno not in (ER_NO_SUCH_TABLE, ER_BAD_DB):
            raise
        left = 0
    steps = () if not left else (Step("source", f"empty {fl.ROWS_TABLE} (replicates to Aurora)",
                                      f"TRUNCATE TABLE {fl.ROWS_TABLE}", reversible=False,
                                      undo=f"the results stay in {RUNS_TABLE}"),)
    return CleanupStep(Plan(CLEANUP_STEP, "remove the failover test rows", steps), rb)
