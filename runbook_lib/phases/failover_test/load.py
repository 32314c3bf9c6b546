"""The failover test's moving parts: the two writers, the samplers, and the arithmetic on what they saw.

:class:`Writer` inserts numbered batches into :data:`ROWS_TABLE` on one side, one thread per side.
Each row carries its origin side and the writer's sequence number under a unique key, so a batch
retried after an in-doubt commit (connection lost during ``COMMIT``) cannot be written twice
(``ON DUPLICATE KEY UPDATE``); a batch is *acknowledged* when its ``COMMIT`` returned.  Writers
retry through errors with a short backoff and record each one (:class:`ErrorEvent`, with
:func:`error_kind`).  :class:`Sampler` counts the rows and reads ``gtid_executed`` on both sides
several times a second; :class:`ClusterWatcher` follows the cluster's status and writer flag.
Every thread ends by itself at its deadline, or at once when the shared ``stop`` event is set.

The rest is pure: :class:`SeqRanges` (which sequence numbers), :func:`caught_up` and
:func:`convergence_time` (when both directions had caught up again), :func:`recovery_time`.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from runbook_lib.core.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    PrivilegeMissing,
    QueryFailed,
    RunbookError,
)
from runbook_lib.mysql.connection import Endpoint, Server, connect
from runbook_lib.mysql.gtid import GtidSet

SCHEMA = "runbook"
ROWS_TABLE = f"{SCHEMA}.failover_rows"
SIDES = ("source", "aurora")

#: Client and server errors of a server that went away or is going away.
CONNECTION_ERRNOS = frozenset({2002, 2003, 2006, 2013, 2026, 2055, 1053, 1927, 3169, 4031})
#: A server (or Aurora reader) that refuses writes: --read-only / super_read_only, InnoDB read-only.
READ_ONLY_ERRNOS = frozenset({1290, 1836, 1792})
#: Errors a retry cannot cure: the test stops instead of retrying them for minutes.
FATAL_ERRNOS = frozenset({1044, 1045, 1049, 1054, 1064, 1142, 1146, 1227})
KINDS = ("connection", "read_only", "other")
BACKOFF_SECONDS = (0.05, 0.1, 0.2, 0.4)   # after the 1st, 2nd, 3rd, later error in a row


def error_number(exc: BaseException) -> int:
    """MySQL error number of a runbook error (from the PyMySQL error it wraps); 0 if none."""
    errno = getattr(exc, "errno", 0)
    if isinstance(errno, int) and errno:
        return errno
    cause = exc.__cause__
    args = getattr(cause, "args", ()) if cause is not None else ()
    return args[0] if args and isinstance(args[0], int) else 0


def error_kind(errno: int, *, connection_failed: bool = False) -> str:
    """'connection' (refused, lost: 2003, 2013, 2006...), 'read_only' (1290, 1836...) or 'other'."""
    if errno in CONNECTION_ERRNOS or (connection_failed and errno == 0):
        return "connection"
    if errno in READ_ONLY_ERRNOS:
        return "read_only"
    return "other"


@dataclass(frozen=True)
class ErrorEvent:
    """One error a writer or sampler met; ``t`` in seconds since the writers started."""

    t: float
    who: str          # 'source writer', 'aurora writer', 'source sampler', 'aurora sampler'
    kind: str         # one of KINDS
    errno: int
    during: str       # connect | insert | commit | sample
    detail: str


@dataclass(frozen=True)
class Batch:
    """One batch of a writer: sequence numbers first..last, when it was first tried and acknowledged."""

    side: str
    first: int
    last: int
    t_start: float
    t_ack: float | None      # None: never acknowledged (the test ended while it was retried)
    attempts: int = 1
    in_doubt: bool = False   # a COMMIT of it was interrupted
    found_present: bool = False   # a retry found its rows already committed

    @property
    def rows(self) -> int:
        return self.last - self.first + 1


@dataclass(frozen=True)
class Round:
    """One sampling round: when each side answered, its row count and gtid_executed (None: that side
    did not answer).  ``t`` is when the round ended (both answers known)."""

    t: float
    source_t: float
    source_count: int | None
    source_gtid: str | None
    aurora_t: float
    aurora_count: int | None
    aurora_gtid: str | None


@dataclass(frozen=True)
class ClusterPoint:
    t: float
    status: str
    writer: str


# --- pure arithmetic ------------------------------------------------------------------------------

@dataclass(frozen=True)
class SeqRanges:
    """A set of sequence numbers as sorted, disjoint, inclusive ranges."""

    ranges: tuple[tuple[int, int], ...] = ()

    @classmethod
    def of(cls, pairs: Iterable[tuple[int, int]]) -> SeqRanges:
        merged: list[list[int]] = []
        for lo, hi in sorted((int(a), int(b)) for a, b in pairs if a <= b):
            if merged and lo <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        return cls(tuple((lo, hi) for lo, hi in merged))

    def __sub__(self, other: SeqRanges) -> SeqRanges:
        out: list[tuple[int, int]] = []
        for lo, hi in self.ranges:
            for olo, ohi in other.ranges:
                if ohi < lo or olo > hi:
                    continue
                if olo > lo:
                    out.append((lo, olo - 1))
                lo = max(lo, ohi + 1)
                if lo > hi:
                    break
            if lo <= hi:
                out.append((lo, hi))
        return SeqRanges(tuple(out))

    def count(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self.ranges)

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def __str__(self) -> str:
        return ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in self.ranges) or "none"


def caught_up(rounds: list[Round]) -> list[bool]:
    """Per round: had both directions caught up?  Round k is caught up when each side's
    gtid_executed in round k contains the other side's gtid_executed of round k-1 (so each
    direction's lag was under one sampling interval).  The first round, and a round or a previous
    round where a side did not answer, are not caught up."""
    flags = [False] * len(rounds)
    for k in range(1, len(rounds)):
        now, before = rounds[k], rounds[k - 1]
        texts = (now.source_gtid, now.aurora_gtid, before.source_gtid, before.aurora_gtid)
        if any(t is None for t in texts):
            continue
        flags[k] = (GtidSet(before.source_gtid) <= GtidSet(now.aurora_gtid)
                    and GtidSet(before.aurora_gtid) <= GtidSet(now.source_gtid))
    return flags


def convergence_time(rounds: list[Round], since: float) -> float | None:
    """Time of the first round after ``since`` in which both directions had caught up again
    (:func:`caught_up`), provided the last round was caught up too (the sides ended converged);
    None otherwise.  A later round lagging by more than one sampling interval under load does not
    move it: that is steady-state lag, shown in the lag plot, not the failover's backlog."""
    flags = caught_up(rounds)
    if not flags or not flags[-1]:
        return None
    return next((r.t for r, ok in zip(rounds, flags) if ok and r.t > since), None)


def recovery_time(batches: list[Batch], events: list[ErrorEvent], since: float, side: str = "aurora"
                  ) -> float | None:
    """When ``side`` accepted writes again after ``since``: the first acknowledged batch after the
    first error its writer met after ``since`` (or, if it met none, the first acknowledged after
    ``since``).  None if no batch was acknowledged after that."""
    errors = [e.t for e in events if e.who == f"{side} writer" and e.t >= since]
    after = min(errors) if errors else since
    acks = [b.t_ack for b in batches if b.side == side and b.t_ack is not None and b.t_ack > after]
    return min(acks) if acks else None


# --- threads --------------------------------------------------------------------------------------

class Clock:
    """Seconds since the writers started; stop-aware sleeping."""

    def __init__(self, stop: threading.Event) -> None:
        self.t0 = time.monotonic()
        self.stop = stop

    def now(self) -> float:
        return time.monotonic() - self.t0

    def sleep_until(self, t: float) -> bool:
        """Sleep until ``t``; False if ``stop`` was set meanwhile."""
        return not self.stop.wait(max(0.0, t - self.now()))


class _Thread(threading.Thread):
    """A daemon thread that keeps an unexpected exception for the main thread to raise, and then
    sets the shared ``stop`` event so that the whole test ends."""

    def __init__(self, name: str, stop: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self.failure: BaseException | None = None
        self.stop = stop

    def run(self) -> None:
        try:
            self.work()
        except Exception as e:  # noqa: BLE001 - handed to the main thread, which raises it
            self.failure = e
            self.stop.set()

    def work(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


def _event(t: float, who: str, exc: RunbookError, during: str) -> ErrorEvent:
    errno = error_number(exc)
    kind = error_kind(errno, connection_failed=isinstance(exc, ConnectionFailed))
    return ErrorEvent(t, who, kind, errno, during, _short(exc))


def _short(exc: RunbookError) -> str:
    """The error's own words, without the (long) statement it interrupted."""
    detail = getattr(exc, "detail", "") or getattr(exc, "reason", "") or exc.message
    return " ".join(str(detail).split(" while running ")[0].split())[:200]


class Writer(_Thread):
    """Inserts ``batches`` batches of ``batch_rows`` rows, one every ``interval`` seconds; retries a
    batch through errors until ``give_up_at``.  Behind schedule (after an outage) it writes back to back."""

    def __init__(self, side: str, endpoint: Endpoint, password: str, run_id: int, *, batch_rows: int,
                 interval: float, batches: int, give_up_at: float, clock: Clock) -> None:
        super().__init__(f"failover-writer-{side}", clock.stop)
        self.side, self.endpoint, self._password, self.run_id = side, endpoint, password, run_id
        self.batch_rows, self.interval, self.planned = batch_rows, interval, batches
        self.give_up_at = give_up_at
        self.clock = clock
        self.batches: list[Batch] = []
        self.events: list[ErrorEvent] = []
        self.auto_increment: tuple[int, int] | None = None   # (increment, offset) of its session
        self.fatal: RunbookError | None = None
        self._server: Server | None = None

    def insert_sql(self, first: int, last: int) -> str:
        """One multi-row INSERT of sequence numbers first..last (integers and fixed words only)."""
        values = ",".join(f"({self.run_id},'{self.side}',{seq},'failover test row {seq:09d}')"
                          for seq in range(first, last + 1))
        return (f"INSERT INTO {ROWS_TABLE} (run_id, origin, seq, payload) VALUES {values} "
                "ON DUPLICATE KEY UPDATE seq = seq")

    def work(self) -> None:
        seq, k = 1, 0
        try:
            while k < self.planned and self.clock.sleep_until(k * self.interval):
                batch = self._write(seq, seq + self.batch_rows - 1)
                self.batches.append(batch)
                if batch.t_ack is None:
                    break
                seq, k = seq + self.batch_rows, k + 1
        finally:
            if self._server is not None:
                self._server.close()

    def _write(self, first: int, last: int) -> Batch:
        sql, t_start = self.insert_sql(first, last), self.clock.now()
        attempts, in_doubt, errors_in_row = 0, False, 0
        while self.fatal is None and not self.clock.stop.is_set() and self.clock.now() < self.give_up_at:
            attempts += 1
            during = "connect"
            try:
                if self._server is None:
                    self._server = connect(self.endpoint, self._password)
                    row = self._server.query_one("SELECT @@SESSION.auto_increment_increment AS inc, "
                                                 "@@SESSION.auto_increment_offset AS off")
                    self.auto_increment = (int(row["inc"]), int(row["off"]))
                during = "insert"
                self._server.execute("BEGIN")
                affected = self._server.execute(sql)
                during = "commit"
                self._server.execute("COMMIT")
                return Batch(self.side, first, last, t_start, self.clock.now(), attempts, in_doubt,
                             found_present=in_doubt and affected == 0)
            except RunbookError as e:
                errno = error_number(e)
                self.events.append(_event(self.clock.now(), f"{self.side} writer", e, during))
                in_doubt = in_doubt or during == "commit"
                if isinstance(e, (AuthenticationFailed, PrivilegeMissing)) or (
                        isinstance(e, QueryFailed) and errno in FATAL_ERRNOS):
                    self.fatal = e
                    self.clock.stop.set()
                if self._server is not None:
                    self._server.close()
                    self._server = None
                self.clock.stop.wait(BACKOFF_SECONDS[min(errors_in_row, len(BACKOFF_SECONDS) - 1)])
                errors_in_row += 1
        return Batch(self.side, first, last, t_start, None, attempts, in_doubt)


class Sampler(_Thread):
    """Counts this run's rows and reads gtid_executed on both sides ``hz`` times a second.

    It runs until the main thread has set :attr:`writers_stopped_at` and a round is caught up whose
    previous round was sampled after that moment (:attr:`converged` is set then), or for ``settle``
    seconds after that moment at most, and never after ``deadline`` (seconds since the writers started)."""

    SQL = f"SELECT COUNT(*) AS n, @@GLOBAL.gtid_executed AS g FROM {ROWS_TABLE} WHERE run_id = %s"

    def __init__(self, sides: dict[str, tuple[Endpoint, str]], run_id: int, hz: float, clock: Clock,
                 deadline: float, settle: float) -> None:
        super().__init__("failover-sampler", clock.stop)
        self.sides, self.run_id, self.hz, self.clock, self.deadline = sides, run_id, hz, clock, deadline
        self.settle = settle
        self.rounds: list[Round] = []
        self.events: list[ErrorEvent] = []
        self.writers_stopped_at: float | None = None
        self.converged = threading.Event()
        self._servers: dict[str, Server] = {}

    def work(self) -> None:
        k = 0
        try:
            while self.clock.now() < self.end() and self.clock.sleep_until(k / self.hz):
                got = {side: self._sample(side) for side in SIDES}
                self.rounds.append(Round(self.clock.now(), *got["source"], *got["aurora"]))
                if self._final_round_caught_up():
                    self.converged.set()
                    break
                k = max(k + 1, int(self.clock.now() * self.hz))   # skip slots missed while blocked
        finally:
            for server in self._servers.values():
                server.close()

    def end(self) -> float:
        stopped = self.writers_stopped_at
        return self.deadline if stopped is None else min(self.deadline, stopped + self.settle)

    def _final_round_caught_up(self) -> bool:
        stopped = self.writers_stopped_at
        if stopped is None or len(self.rounds) < 2 or self.rounds[-2].t < stopped:
            return False
        return caught_up(self.rounds[-2:])[-1]

    def _sample(self, side: str) -> tuple[float, int | None, str | None]:
        """(when it answered, rows of this run, gtid_executed) of one side."""
        try:
            if side not in self._servers:
                endpoint, password = self.sides[side]
                self._servers[side] = connect(endpoint, password)
            row = self._servers[side].query_one(self.SQL, (self.run_id,))
            return self.clock.now(), int(row["n"]), str(row["g"]).replace("\n", "")
        except RunbookError as e:
            self.events.append(_event(self.clock.now(), f"{side} sampler", e, "sample"))
            server = self._servers.pop(side, None)
            if server is not None:
                server.close()
            return self.clock.now(), None, None


class ClusterWatcher(_Thread):
    """Reads the cluster's status and writer instance every ``every`` seconds until ``stop``."""

    def __init__(self, describe: Callable[[], tuple[str, str]], clock: Clock, every: float = 1.0) -> None:
        super().__init__("failover-cluster-watcher", clock.stop)
        self.describe, self.clock, self.every = describe, clock, every
        self.points: list[ClusterPoint] = []
        self.errors: list[str] = []

    def work(self) -> None:
        k = 0
        while self.clock.sleep_until(k * self.every):
            try:
                status, writer = self.describe()
            except RunbookError as e:
                self.errors.append(f"{self.clock.now():.1f}s: {e.message}")
            else:
                self.points.append(ClusterPoint(self.clock.now(), status, writer))
            k = max(k + 1, int(self.clock.now() / self.every))


def join_all(threads: Iterable[_Thread], timeout: float) -> None:
    """Join each thread within ``timeout`` seconds in all; raise the first failure of any."""
    deadline = time.monotonic() + timeout
    threads = list(threads)
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    for thread in threads:
        if thread.failure is not None:
            raise RunbookError(f"{thread.name} stopped unexpectedly: {thread.failure}") from thread.failure
        if thread.is_alive():
            raise RunbookError(f"{thread.name} did not stop within {timeout:.0f}s")


def acked_ranges(batches: Iterable[Batch], side: str) -> SeqRanges:
    return SeqRanges.of((b.first, b.last) for b in batches if b.side == side and b.t_ack is not None)
