"""Replication lag in each direction to about 10 ms, beside Seconds_Behind_Source, and Aurora's
CloudWatch metric ``AuroraBinlogReplicaLag``.

Heartbeat (pt-heartbeat's method): each side writes its row of ``runbook.heartbeat`` (keyed by the
*side*, 'source' or 'aurora', not by ``@@server_id``: an Aurora failover makes another DB instance,
with another server_id, the writer; the row also records a label, the writer's ``@@server_id``,
``UTC_TIMESTAMP(6)`` and a sequence number) every ``write_interval``
(default 0.1 s); the row replicates to the other side.  The lag of direction A → B is read on B:
the reader's clock minus A's heartbeat timestamp as B shows it.  A heartbeat is seen the moment it
arrives (B is polled every ``poll_interval``, 10 ms), so the lag of each arrival is exact to about
that; between arrivals the monitor knows which heartbeats A has written that B has not shown yet,
and reports the age of the oldest of them when it is larger.  So the value keeps growing while a
direction is stopped, when Seconds_Behind shows NULL; it never includes the heartbeat's own age.

Clocks: the heartbeat's timestamp is the writer's server clock, "now" the reader's.  In the lab
both servers run on one machine; on real servers the result is only as good as their clock sync
(NTP / Amazon Time Sync: typically well under 10 ms, check it), and the growth between arrivals
uses this machine's monotonic clock.

:class:`HeartbeatMonitor` is usable from a notebook cell: ``start(seconds)`` returns at once and
its threads stop by themselves; ``wait()`` / ``stop()`` give a frozen :class:`LagSamples`
(``to_frame()``: time, direction, heartbeat_lag_s, seconds_behind, replica_state);
``sample(seconds)`` is start + wait.  It opens its four connections in ``start()`` and closes
them when its threads end.
"""
from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pandas as pd

from runbook_lib.core.approval import Outcome, Plan, Step
from runbook_lib.core.errors import NotApplied, ParameterError, ReplicationError, RunbookError
from runbook_lib.mysql.status import ReplicaStatus

if TYPE_CHECKING:  # pragma: no cover
    from runbook_lib.context.session import Session
    from runbook_lib.mysql.connection import Server

SCHEMA_DDL = "CREATE DATABASE IF NOT EXISTS runbook"
TABLE = "runbook.heartbeat"
TABLE_DDL = ("CREATE TABLE IF NOT EXISTS runbook.heartbeat (side VARCHAR(16) NOT NULL PRIMARY KEY, "
             "label VARCHAR(64) NOT NULL, server_id INT UNSIGNED NOT NULL, ts DATETIME(6) NOT NULL, "
             "seq BIGINT UNSIGNED NOT NULL) ENGINE=InnoDB")
#: The first layout (keyed by server_id) is replaced: a failover changed Aurora's key in it.
OLD_TABLE_DROP = "DROP TABLE IF EXISTS runbook.heartbeat"
WRITE_SQL = ("REPLACE INTO runbook.heartbeat (side, label, server_id, ts, seq) "
             "VALUES (%s, %s, @@server_id, UTC_TIMESTAMP(6), %s)")
READ_SQL = "SELECT ts, seq, UTC_TIMESTAMP(6) AS now FROM runbook.heartbeat WHERE side = %s"
_EXISTS_SQL = ("SELECT SCHEMA_NAME AS s, (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = "
               "'runbook' AND TABLE_NAME = 'heartbeat') AS t, (SELECT COUNT(*) FROM information_schema.COLUMNS "
               "WHERE TABLE_SCHEMA = 'runbook' AND TABLE_NAME = 'heartbeat' AND COLUMN_NAME = 'side') AS k "
               "FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'runbook'")
SAMPLE_COLUMNS = ["time", "direction", "heartbeat_lag_s", "seconds_behind", "replica_state"]
MAX_SECONDS = 600.0
#: The CloudWatch series of the cluster's writer, whichever instance it is (dimensions DBClusterIdentifier, Role).
WRITER_ROLE = "DBClusterIdentifier+Role"
STEP = "replication"


# --- the heartbeat table: plan, apply, check ----------------------------------------------------

def table_state(server: Server) -> tuple[bool, bool]:
    """(schema runbook exists, table runbook.heartbeat exists in its layout keyed by side) on ``server``."""
    row = server.query_one(_EXISTS_SQL)
    return row is not None, bool(row and row["t"] and row["k"])


def _old_layout(server: Server) -> bool:
    """runbook.heartbeat exists in its first layout (keyed by server_id)."""
    row = server.query_one(_EXISTS_SQL)
    return bool(row and row["t"] and not row["k"])


def table_plan(rb: Session) -> Plan:
    """Create ``runbook.heartbeat`` on the source (it replicates to Aurora); empty when it exists."""
    has_schema, has_table = table_state(rb.source())
    where = f"source {rb.params.source_label}"
    steps = [] if has_schema else [Step(where, "create schema", SCHEMA_DDL, True, "DROP DATABASE runbook")]
    if not has_table and _old_layout(rb.source()):
        steps.append(Step(where, "drop the heartbeat table keyed by server_id (a failover changes Aurora's)",
                          OLD_TABLE_DROP, False, "none needed: it held only each side's latest heartbeat"))
    if not has_table:
        steps.append(Step(where, "create table", TABLE_DDL, True, "DROP TABLE runbook.heartbeat"))
    return Plan(STEP, "heartbeat table for lag measurement", steps,
                notes="Created on the source and replicated to Aurora.  While lag is sampled each side "
                      "REPLACEs its own row a few times a second (binary-logged, replicated).")


def create_table(rb: Session, timeout: float = 30.0) -> None:
    """Create it on the source, then wait until Aurora has applied it."""
    from runbook_lib.checks.channels import executed_gtids, wait_until_caught_up
    source = rb.source()
    source.execute(SCHEMA_DDL)
    if _old_layout(source):
        source.execute(OLD_TABLE_DROP)
    source.execute(TABLE_DDL)
    wait_until_caught_up(rb.aurora(), executed_gtids(source), timeout)


def ensure_table(rb: Session) -> Outcome:
    """Show the plan and apply it if step 'replication' is approved (see :mod:`runbook_lib.core.approval`)."""
    return rb.gate.apply(table_plan(rb), lambda: create_table(rb))


def require_table(source: Server, aurora: Server) -> None:
    """NotApplied unless ``runbook.heartbeat`` exists on both sides."""
    if not table_state(source)[1]:
        raise NotApplied("the heartbeat table runbook.heartbeat", STEP)
    if not table_state(aurora)[1]:
        raise ReplicationError(aurora.role, "runbook.heartbeat exists on the source but not here",
                               hint="the source → aurora direction has not applied it: check its replica status")


# --- samples ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LagSample:
    time: datetime                  # UTC, this machine's clock
    direction: str                  # 'source → aurora' (as runbook_lib.checks.channels.DIRECTIONS)
    heartbeat_lag_s: float | None   # None until the writer's first heartbeat
    seconds_behind: int | None      # Seconds_Behind_Source on the reader; None = NULL or no channel
    replica_state: str              # ReplicaStatus.state on the reader, 'no channel', 'unreachable'


@dataclass(frozen=True)
class LagSamples:
    samples: tuple[LagSample, ...]
    directions: tuple[str, ...]
    seconds: float
    write_interval: float
    poll_interval: float
    errors: tuple[str, ...] = ()

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{c: getattr(s, c) for c in SAMPLE_COLUMNS} for s in self.samples],
                            columns=SAMPLE_COLUMNS).astype({"heartbeat_lag_s": "float64", "seconds_behind": "float64"})

    def stats(self) -> pd.DataFrame:
        """Per direction: samples, heartbeat lag p50 / p95 / p99 / max (s), Seconds_Behind max, NULL count."""
        frame, rows = self.to_frame(), []
        for d in self.directions:
            part = frame[frame["direction"] == d]
            hb, sb = part["heartbeat_lag_s"].dropna(), part["seconds_behind"]
            rows.append({"direction": d, "samples": len(part),
                         "heartbeat_p50_s": round(hb.median(), 4) if len(hb) else None,
                         "heartbeat_p95_s": round(hb.quantile(0.95), 4) if len(hb) else None,
                         "heartbeat_p99_s": round(hb.quantile(0.99), 4) if len(hb) else None,
                         "heartbeat_max_s": round(hb.max(), 4) if len(hb) else None,
                         "seconds_behind_max": None if sb.dropna().empty else int(sb.max()),
                         "seconds_behind_null": int(sb.isna().sum())})
        return pd.DataFrame(rows, columns=["direction", "samples", "heartbeat_p50_s", "heartbeat_p95_s",
                                           "heartbeat_p99_s", "heartbeat_max_s", "seconds_behind_max", "seconds_behind_null"])


# --- the monitor --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Side:
    role: str                       # 'source' / 'aurora': directions are named 'source → aurora'
    label: str                      # written into the heartbeat row ('onprem', 'aurora')
    open: Callable[[], Server]      # a new connection; the monitor closes it


@dataclass
class _Written:
    """Heartbeats one writer has committed: seq and this machine's monotonic time after commit."""

    seqs: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, seq: int, at: float) -> None:
        with self.lock:
            self.seqs.append(seq)
            self.times.append(at)

    def first_after(self, seq: int) -> float | None:
        """When the oldest heartbeat newer than ``seq`` was committed; None if there is none."""
        with self.lock:
            i = bisect.bisect_right(self.seqs, seq)
            return self.times[i] if i < len(self.times) else None


def heartbeat_lag(arrival_lag: float | None, oldest_unseen: float | None, now: float) -> float | None:
    """The lag to report: the last arrival's lag, or the age of the oldest heartbeat not yet seen."""
    waiting = None if oldest_unseen is None else max(0.0, now - oldest_unseen)
    if arrival_lag is None or waiting is None:
        return arrival_lag if waiting is None else waiting
    return max(arrival_lag, waiting)


def channel_from(reader: Server, origin_uuid: str) -> ReplicaStatus | None:
    """The reader's replication channel whose source is ``origin_uuid`` (or its only channel)."""
    statuses = [ReplicaStatus.from_row(r) for r in reader.query(reader.dialect.show_replica_status())]
    match = [s for s in statuses if s.source_uuid == origin_uuid]
    return match[0] if match else (statuses[0] if len(statuses) == 1 else None)


class HeartbeatMonitor:
    """Write heartbeats on both sides and sample the lag of both directions for a bounded time."""

    def __init__(self, source: Side, aurora: Side, *, write_interval: float = 0.1, sample_interval: float = 0.25,
                 poll_interval: float = 0.01, max_seconds: float = MAX_SECONDS) -> None:
        for name, value, low, high in (("write_interval", write_interval, 0.01, 5), ("poll_interval", poll_interval,
                                        0.001, 1), ("sample_interval", sample_interval, 0.05, 0.5)):
            if not isinstance(value, (int, float)) or not low <= value <= high:
                raise ParameterError(name, f"must be between {low} and {high} seconds, not {value!r}",
                                     hint="sampling must stay at 2 Hz or more" if name == "sample_interval" else "")
        self.sides = (source, aurora)
        self.write_interval, self.sample_interval, self.poll_interval = write_interval, sample_interval, poll_interval
        self.max_seconds = max_seconds
        self.directions = (f"{source.role} → {aurora.role}", f"{aurora.role} → {source.role}")
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._samples: list[LagSample] = []
        self._errors: list[str] = []
        self._failures: list[BaseException] = []
        self._lock = threading.Lock()
        self._started = 0.0
        self._ended = 0.0

    @classmethod
    def for_session(cls, rb: Session, **kw: Any) -> HeartbeatMonitor:
        from runbook_lib.mysql.connection import connect
        p = rb.params
        source = Side("source", p.source_label, lambda: connect(p.source_endpoint(), rb.secret("source_admin_password")))
        aurora = Side("aurora", "aurora", lambda: connect(p.aurora_endpoint(), rb.secret("aurora_admin_password")))
        return cls(source, aurora, **kw)

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def start(self, seconds: float) -> HeartbeatMonitor:
        """Open the connections, check the table, start writing and sampling; stops after ``seconds``."""
        if self.running:
            raise RunbookError("this heartbeat monitor is running already", hint="stop() or wait() first")
        if not isinstance(seconds, (int, float)) or not 0 < seconds <= self.max_seconds:
            raise ParameterError("seconds", f"must be more than 0 and at most {self.max_seconds:g}, not {seconds!r}")
        conns: list[Server] = []
        try:
            for side in self.sides + self.sides:        # writer 0, writer 1, reader 0, reader 1
                conns.append(side.open())
            require_table(conns[0], conns[1])
            ids = [(side.role, c.identity.server_uuid) for side, c in zip(self.sides, conns[:2])]
        except BaseException:
            for c in conns:
                c.close()
            raise
        self._stop.clear()
        self._samples, self._errors, self._failures = [], [], []
        self._started = time.monotonic()
        deadline = self._started + seconds
        seq0 = time.time_ns() // 1_000_000          # a new run's sequence numbers exceed older runs'
        written = (_Written(), _Written())
        for i in (0, 1):
            self._spawn(f"heartbeat-writer-{i}", conns[i], self._write, conns[i], self.sides[i],
                        seq0, written[i], deadline)
        for reader in (1, 0):                            # direction 0 is read on side 1, and back
            origin = 1 - reader
            self._spawn(f"heartbeat-sampler-{reader}", conns[2 + reader], self._sample, conns[2 + reader],
                        self.directions[origin], ids[origin], seq0, written[origin], deadline)
        return self

    def _spawn(self, name: str, conn: Server, target: Callable, *args: Any) -> None:
        def run() -> None:
            try:
                target(*args)
            except BaseException as e:  # noqa: BLE001 - kept and raised again by wait()/stop()
                self._failures.append(e)
                self._stop.set()
            finally:
                conn.close()
        thread = threading.Thread(target=run, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _write(self, conn: Server, side: Side, seq0: int, written: _Written, deadline: float) -> None:
        seq, tick = seq0, time.monotonic()
        while not self._stop.is_set() and time.monotonic() < deadline:
            if self._guard(conn, side.label, lambda n=seq: conn.execute(WRITE_SQL, (side.role, side.label, n))):
                written.add(seq, time.monotonic())
                seq += 1
            tick += self.write_interval
            self._stop.wait(max(0.0, tick - time.monotonic()))

    def _sample(self, conn: Server, direction: str, origin: tuple[str, str], seq0: int, written: _Written,
                deadline: float) -> None:
        seen, arrival, next_sample = seq0 - 1, None, time.monotonic()
        while not self._stop.is_set() and (now := time.monotonic()) < deadline:
            row = self._guard(conn, direction, lambda: conn.query_one(READ_SQL, (origin[0],)))
            if row and int(row["seq"]) > seen:
                seen, arrival = int(row["seq"]), (row["now"] - row["ts"]).total_seconds()
            if now >= next_sample:
                status = self._guard(conn, direction, lambda: channel_from(conn, origin[1]) or "no channel")
                state = status.state if isinstance(status, ReplicaStatus) else (status or "unreachable")
                lag = heartbeat_lag(arrival, written.first_after(seen), time.monotonic())
                with self._lock:
                    self._samples.append(LagSample(datetime.now(timezone.utc), direction, lag,
                                                   status.seconds_behind if isinstance(status, ReplicaStatus)
                                                   else None, state))
                next_sample = max(next_sample + self.sample_interval, now)     # no burst after a stall
            self._stop.wait(self.poll_interval)

    def _guard(self, conn: Server, who: str, fn: Callable[[], Any]) -> Any:
        """``fn()``; a lost server is recorded (and reconnected later) instead of ending the run."""
        try:
            if not conn.open:
                conn.reconnect()
            return fn()
        except RunbookError as e:
            with self._lock:
                if not self._errors or self._errors[-1] != f"{who}: {e.message}":
                    self._errors.append(f"{who}: {e.message}")
            self._stop.wait(self.sample_interval)
            conn.close()
            return None

    def wait(self, timeout: float | None = None) -> LagSamples:
        """Block until the threads stop by themselves; the samples."""
        for t in self._threads:
            t.join(None if timeout is None else max(0.0, timeout))
        return self._finish()

    def stop(self) -> LagSamples:
        """Stop now; the samples so far."""
        self._stop.set()
        return self.wait()

    def sample(self, seconds: float) -> LagSamples:
        return self.start(seconds).wait()

    def _finish(self) -> LagSamples:
        if self._failures:
            raise self._failures[0]
        self._ended = time.monotonic()
        self._threads = [t for t in self._threads if t.is_alive()]
        with self._lock:
            samples = tuple(sorted(self._samples, key=lambda s: s.time))
        return LagSamples(samples, self.directions, round(self._ended - self._started, 3), self.write_interval,
                          self.poll_interval, tuple(self._errors))

    def latest(self) -> dict[str, float | None]:
        """The last sampled heartbeat lag of each direction so far (for a live view); {} before any."""
        found: dict[str, float | None] = {}
        with self._lock:
            for s in reversed(self._samples):
                found.setdefault(s.direction, s.heartbeat_lag_s)
                if len(found) == len(self.directions):
                    break
        return found

    def to_frame(self) -> pd.DataFrame:
        with self._lock:
            samples = tuple(self._samples)
        return LagSamples(samples, self.directions, 0.0, self.write_interval, self.poll_interval).to_frame()


# --- CloudWatch ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class MetricSeries:
    """One CloudWatch metric of one resource: (time, value) points, oldest first."""

    metric: str
    dimension: str
    resource: str
    period_s: int
    points: tuple[tuple[datetime, float], ...]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"time": t, "value_s": v} for t, v in self.points], columns=["time", "value_s"])

    @property
    def label(self) -> str:
        """The series' dimensions as CloudWatch shows them."""
        if self.dimension == WRITER_ROLE:
            return f"DBClusterIdentifier={self.resource}, Role=WRITER"
        return f"{self.dimension}={self.resource}"


def writer_instance(rb: Session) -> str:
    """The cluster's writer now, from DescribeDBClusters' members (a failover moves it away from
    ``aurora_writer_instance``); the parameter when the cluster cannot be read."""
    from runbook_lib.aws.clusters import describe_cluster
    cluster = describe_cluster(rb.aws("rds"), rb.params.aurora_cluster_id)
    found = [i for i, is_writer, _ in (cluster.members if cluster else ()) if is_writer]
    return found[0] if found else rb.params.aurora_writer_instance


def replica_lag_metric(rb: Session, *, minutes: float = 10, period_s: int = 60) -> MetricSeries:
    """``AuroraBinlogReplicaLag`` (AWS/RDS, Maximum) of the cluster's WRITER role; else of the writer
    instance now (DescribeDBClusters); else of the cluster.

    Seconds_Behind_Source of Aurora's external replication channel (source → aurora); -1 while
    replication is not running.  AWS "Amazon CloudWatch metrics for Amazon Aurora": "Because binary
    log replication only occurs on the writer instance of the cluster, we recommend using the version
    of this metric associated with the WRITER role" (dimensions DBClusterIdentifier and Role): that
    series follows the writer through a failover, an instance's does not.  RDS publishes it every
    minute; the lab endpoint every second.
    """
    from runbook_lib.aws.calls import aws_call
    p, end = rb.params, datetime.now(timezone.utc)
    cloudwatch = rb.aws("cloudwatch")
    writer = writer_instance(rb)
    for dimension, dims in ((WRITER_ROLE, [{"Name": "DBClusterIdentifier", "Value": p.aurora_cluster_id},
                                           {"Name": "Role", "Value": "WRITER"}]),
                            ("DBInstanceIdentifier", [{"Name": "DBInstanceIdentifier", "Value": writer}]),
                            ("DBClusterIdentifier", [{"Name": "DBClusterIdentifier", "Value": p.aurora_cluster_id}])):
        query = {"Id": "lag", "ReturnData": True, "MetricStat": {
            "Period": int(period_s), "Stat": "Maximum", "Metric": {
                "Namespace": "AWS/RDS", "MetricName": "AuroraBinlogReplicaLag", "Dimensions": dims}}}
        answer = aws_call(cloudwatch, "get_metric_data", MetricDataQueries=[query],
                          StartTime=end - timedelta(minutes=minutes), EndTime=end)
        result = answer["MetricDataResults"][0]
        points = tuple(sorted(zip(result.get("Timestamps", []), result.get("Values", []))))
        if points:
            resource = writer if dimension == "DBInstanceIdentifier" else p.aurora_cluster_id
            return MetricSeries("AuroraBinlogReplicaLag", dimension, resource, int(period_s), points)
    return MetricSeries("AuroraBinlogReplicaLag", WRITER_ROLE, p.aurora_cluster_id, int(period_s), ())
