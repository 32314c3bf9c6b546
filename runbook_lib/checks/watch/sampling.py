"""The live view's data: one :class:`Snapshot` of both directions a second, and the loop that takes them.

A snapshot holds, per side, whether it answers and its transactions per second (the growth of
``gtid_executed``); per direction (as :data:`runbook_lib.checks.channels.DIRECTIONS`), the replica's IO
and SQL threads, its last error, ``Seconds_Behind_Source``, the heartbeat lag
(:mod:`runbook_lib.checks.heartbeat`) and the GTID gap (transactions the writer has executed that the
replica has not); Aurora's CloudWatch ``AuroraBinlogReplicaLag``; and the alerts: every threshold
crossed, each with its reason (:func:`alerts`, pure).

:class:`Watch` takes them for a bounded time with connections of its own (short timeouts, so a server
that goes away shows within a second), a :class:`~runbook_lib.checks.heartbeat.HeartbeatMonitor`
(threads that stop by themselves) and the session's CloudWatch client.  Whatever ends it (the time
running out, an interrupt, an error), its ``finally`` stops the monitor and closes every connection.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from runbook_lib.checks import heartbeat
from runbook_lib.checks.channels import DIRECTIONS, REPLICA_ROLE, WRITER_ROLE, executed_gtids
from runbook_lib.core.errors import ParameterError, RunbookError
from runbook_lib.mysql.gtid import GtidSet
from runbook_lib.mysql.status import ReplicaStatus

if TYPE_CHECKING:  # pragma: no cover
    from runbook_lib.context.session import Session
    from runbook_lib.mysql.connection import Server

MAX_SECONDS = heartbeat.MAX_SECONDS
ROLES = ("source", "aurora")
CONNECT_TIMEOUT_S = 1.0       # the watch's own connections: an outage shows within about a second
READ_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Thresholds:
    """When the alert line turns red."""

    lag_s: float = 1.0          # heartbeat lag or Seconds_Behind_Source of a direction
    gtid_gap: int = 1000        # transactions a replica lacks of its writer's

    def __post_init__(self) -> None:
        for name, value, low in (("lag_s", self.lag_s, 0.001), ("gtid_gap", self.gtid_gap, 1)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low:
                raise ParameterError(f"watch {name}", f"must be a number of at least {low:g}, not {value!r}")


@dataclass(frozen=True)
class SideRead:
    """What one server answered at one tick (pure input of :func:`snapshot`)."""

    role: str
    reachable: bool
    error: str = ""                         # why it did not answer
    gtids: GtidSet | None = None            # gtid_executed
    status: ReplicaStatus | None = None     # its replication channel (None: none, or unreachable)


@dataclass(frozen=True)
class SideView:
    role: str
    reachable: bool
    error: str
    transactions: int | None                # size of gtid_executed
    tps: float | None                       # transactions per second since the previous tick


@dataclass(frozen=True)
class DirectionView:
    direction: str
    io: str                                 # Yes / No / Connecting; 'no channel'; '?' (replica silent)
    sql: str
    error: str                              # 'IO 2003: ...; SQL 1062: ...' or ''
    seconds_behind: int | None
    heartbeat_lag_s: float | None
    gtid_gap: int | None


@dataclass(frozen=True)
class Snapshot:
    t: float                                # seconds since the watch started
    at: datetime                            # UTC
    sides: tuple[SideView, ...]
    directions: tuple[DirectionView, ...]
    cloudwatch_lag_s: float | None          # AuroraBinlogReplicaLag's latest point; -1: not replicating
    cloudwatch_at: datetime | None
    alerts: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.alerts

    def side(self, role: str) -> SideView:
        return next(s for s in self.sides if s.role == role)

    def direction(self, name: str) -> DirectionView:
        return next(d for d in self.directions if d.direction == name)


def _direction(name: str, reads: dict[str, SideRead], lag: float | None) -> DirectionView:
    replica, writer = reads[REPLICA_ROLE[name]], reads[WRITER_ROLE[name]]
    gap = (writer.gtids - replica.gtids).count() if writer.gtids is not None and replica.gtids is not None \
        else None
    if not replica.reachable:
        return DirectionView(name, "?", "?", f"{replica.role} does not answer", None, lag, gap)
    s = replica.status
    if s is None:
        return DirectionView(name, "no channel", "no channel", "", None, lag, gap)
    error = "; ".join(f"{t.upper()} {n}: {m}" for t, n, m in s.errors)
    return DirectionView(name, s.io_running, s.sql_running, error, s.seconds_behind, lag, gap)


def alerts(sides: tuple[SideView, ...], directions: tuple[DirectionView, ...], limits: Thresholds) -> tuple[str, ...]:
    """Pure: every threshold crossed, each a reason an operator can act on.

    CloudWatch's AuroraBinlogReplicaLag is shown, not judged here: it is a per-minute figure that trails
    the live ones by up to two minutes, so it would keep the line red long after a recovery (see
    :func:`cloudwatch_note`)."""
    out = [f"{s.role} does not answer: {s.error}" for s in sides if not s.reachable]
    for d in directions:
        if d.io == "?":
            pass                                        # said above: its replica does not answer
        elif d.io == "no channel":
            out.append(f"{d.direction}: no replication channel")
        elif d.io != "Yes" or d.sql != "Yes":
            out.append(f"{d.direction}: IO thread {d.io}, SQL thread {d.sql}" + (f" ({d.error})" if d.error else ""))
        elif d.error:
            out.append(f"{d.direction}: {d.error}")
        if d.heartbeat_lag_s is not None and d.heartbeat_lag_s > limits.lag_s:
            out.append(f"{d.direction}: heartbeat lag {d.heartbeat_lag_s:.2f} s > {limits.lag_s:g} s")
        elif d.seconds_behind is not None and d.seconds_behind > limits.lag_s:
            out.append(f"{d.direction}: Seconds_Behind_Source {d.seconds_behind} s > {limits.lag_s:g} s")
        if d.gtid_gap is not None and d.gtid_gap > limits.gtid_gap:
            out.append(f"{d.direction}: {REPLICA_ROLE[d.direction]} lacks {d.gtid_gap} transactions of "
                       f"{WRITER_ROLE[d.direction]} (> {limits.gtid_gap})")
    return tuple(out)


def snapshot(t: float, at: datetime, reads: dict[str, SideRead], previous: Snapshot | None,
             lags: dict[str, float | None], cloudwatch: tuple[float | None, datetime | None],
             limits: Thresholds) -> Snapshot:
    """Pure: one tick's view from what both servers answered, the heartbeat lags and CloudWatch."""
    sides = []
    for role in ROLES:
        r = reads[role]
        count = r.gtids.count() if r.gtids is not None else None
        before = previous.side(role) if previous is not None else None
        tps = None
        if count is not None and before is not None and before.transactions is not None and t > previous.t:
            tps = round(max(0, count - before.transactions) / (t - previous.t), 1)
        sides.append(SideView(role, r.reachable, r.error, count, tps))
    views = tuple(_direction(d, reads, lags.get(d)) for d in DIRECTIONS)
    return Snapshot(round(t, 3), at, tuple(sides), views, cloudwatch[0], cloudwatch[1],
                    alerts(tuple(sides), views, limits))


def cloudwatch_note(value: float | None, limits: Thresholds) -> str:
    """What the latest AuroraBinlogReplicaLag point says ('' when nothing to say)."""
    # "Amazon CloudWatch metrics for Amazon Aurora": AuroraBinlogReplicaLag is Seconds_Behind_Master of the
    # writer's binlog replication channel; -1 means replication is not active (as RDS's ReplicaLag, "Monitoring
    # MySQL read replica replication lag": -1 is Seconds_Behind_Master NULL).  A minute's maximum, published
    # once a minute ("MetricStat - Amazon CloudWatch": 60 s periods for a regular-resolution metric).
    if value is None:
        return ""
    if value < 0:
        return "Aurora reported its replication not running in that minute"
    return f"over {limits.lag_s:g} s in that minute" if value > limits.lag_s else ""


# --- taking snapshots ----------------------------------------------------------------------------

class Watch:
    """Both directions once per ``interval`` seconds for a bounded time; see :meth:`run`."""

    def __init__(self, rb: Session, *, limits: Thresholds = Thresholds(), interval: float = 1.0,
                 metric_every_s: float = 10.0, metric_period_s: int = 60) -> None:
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not 0.2 <= interval <= 10:
            raise ParameterError("watch interval", f"must be from 0.2 to 10 seconds, not {interval!r}")
        self.rb, self.limits, self.interval = rb, limits, float(interval)
        self.metric_every_s, self.metric_period_s = metric_every_s, metric_period_s
        self.conns: dict[str, Server | None] = {}
        self.monitor: heartbeat.HeartbeatMonitor | None = None
        self.notes: list[str] = []
        self.interrupted = False

    def _connect(self, role: str) -> Server:
        from runbook_lib.mysql.connection import connect
        p = self.rb.params
        endpoint = p.source_endpoint() if role == "source" else p.aurora_endpoint()
        endpoint = replace(endpoint, connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S)
        return connect(endpoint, self.rb.secret(f"{role}_admin_password"))

    def _read(self, role: str) -> SideRead:
        """One server's answer; a server that does not answer is said so, and reconnected next tick."""
        try:
            conn = self.conns.get(role)
            if conn is None or not conn.open:
                self.conns[role] = conn = self._connect(role)
            return SideRead(role, True, "", executed_gtids(conn), ReplicaStatus.read(conn))
        except RunbookError as e:
            conn = self.conns.pop(role, None)
            if conn is not None:
                conn.close()
            return SideRead(role, False, e.message.splitlines()[0])

    def _start_heartbeat(self, seconds: float) -> None:
        try:
            source = self._connect("source")
            try:
                has_table = heartbeat.table_state(source)[1]
            finally:
                source.close()
            if not has_table:
                self.notes.append("no heartbeat table runbook.heartbeat (step 'replication', notebook 06): "
                                  "heartbeat lag not measured")
                return
            self.monitor = heartbeat.HeartbeatMonitor.for_session(self.rb).start(seconds + 2 * self.interval)
        except RunbookError as e:
            self.notes.append(f"heartbeat lag not measured: {e.message.splitlines()[0]}")

    def _cloudwatch(self, last: tuple[float | None, datetime | None]) -> tuple[float | None, datetime | None]:
        # MetricStat - Amazon CloudWatch: a regular-resolution metric (AuroraBinlogReplicaLag) has periods of
        # 60 s or multiples; RDS publishes it once a minute, so it trails the heartbeat.
        try:
            series = heartbeat.replica_lag_metric(self.rb, minutes=5, period_s=self.metric_period_s)
        except RunbookError as e:
            if not any(n.startswith("CloudWatch") for n in self.notes):
                self.notes.append(f"CloudWatch not read: {e.message.splitlines()[0]}")
            return last
        return (series.points[-1][1], series.points[-1][0]) if series.points else last

    def run(self, seconds: float, on_snapshot: Callable[[Snapshot], None] = lambda s: None) -> list[Snapshot]:
        """Take a snapshot every ``interval`` seconds for ``seconds`` and hand each to ``on_snapshot``.

        An interrupt (KeyboardInterrupt: the notebook's stop button, Ctrl-C) ends it early with the
        snapshots so far (:attr:`interrupted`); any way it ends, nothing it started keeps running.
        """
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds <= MAX_SECONDS:
            raise ParameterError("watch seconds", f"must be more than 0 and at most {MAX_SECONDS:g}, not {seconds!r}")
        taken: list[Snapshot] = []
        cloudwatch: tuple[float | None, datetime | None] = (None, None)
        try:
            self._start_heartbeat(seconds)
            cloudwatch, next_metric = self._cloudwatch(cloudwatch), time.monotonic() + self.metric_every_s
            started = tick = time.monotonic()       # t = 0: the first snapshot, once everything is open
            while True:
                reads = {role: self._read(role) for role in ROLES}
                lags = self.monitor.latest() if self.monitor is not None else {}
                snap = snapshot(time.monotonic() - started, datetime.now(timezone.utc), reads,
                                taken[-1] if taken else None, lags, cloudwatch, self.limits)
                taken.append(snap)
                on_snapshot(snap)
                tick += self.interval
                if tick - started > seconds + 1e-6:
                    break
                if time.monotonic() >= next_metric:  # between two snapshots: it delays none of them
                    cloudwatch, next_metric = self._cloudwatch(cloudwatch), time.monotonic() + self.metric_every_s
                time.sleep(max(0.0, tick - time.monotonic()))
        except KeyboardInterrupt:
            self.interrupted = True
        finally:
            self.close()
        return taken

    def close(self) -> None:
        """Stop the heartbeat's threads and close every connection of this watch."""
        if self.monitor is not None:
            monitor, self.monitor = self.monitor, None
            try:
                samples = monitor.stop()
            except RunbookError as e:
                self.notes.append(f"heartbeat: {e.message.splitlines()[0]}")
            else:
                self.notes.extend(f"heartbeat: {e}" for e in samples.errors[:3])
        for role in list(self.conns):
            conn = self.conns.pop(role)
            if conn is not None:
                conn.close()
