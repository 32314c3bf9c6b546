"""When a long consistency check pauses, and how fast its chunks may grow.

* :class:`Throttle`: before each chunk, wait while either direction's heartbeat lag
  (:mod:`runbook_lib.checks.heartbeat`) is above ``lag_limit`` seconds, or, when
  ``threads_running_limit`` is set, while a server's ``Threads_running`` status variable is above it
  (pt-table-checksum's ``--max-lag`` and ``--max-load``).  The reason is handed to the progress line.
  It raises :class:`~runbook_lib.core.errors.CheckFailed` after waiting ``max_wait`` seconds in one go.
* :class:`ChunkSizer` (pure): the next chunk's key width from the last one's time and rows, aiming at
  ``target`` seconds on the slower side (pt-table-checksum's ``--chunk-time``, 0.5 s by default).

The lag comes from a :class:`~runbook_lib.checks.heartbeat.HeartbeatMonitor` that writes a heartbeat on
each side every 0.1 s while the check runs.  One given already running is only read; otherwise the
throttle starts it (the one given, or its own over another connection of each server), restarts it
when it reaches its time limit, and stops it.  Its table (:attr:`Throttle.writes`) changes all the
time the check runs, so the check does not compare it.  Threads_running is MySQL's count of threads
that are not sleeping ("Server Status Variables" in the MySQL manual); Aurora reports it too.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from runbook_lib.checks.heartbeat import MAX_SECONDS, HeartbeatMonitor, LagSample, Side
from runbook_lib.checks.heartbeat import TABLE as HEARTBEAT_TABLE
from runbook_lib.core.errors import CheckFailed, ParameterError

if TYPE_CHECKING:  # pragma: no cover
    from runbook_lib.mysql.connection import Server

POLL = 0.2                      # seconds between looks while paused


@dataclass(frozen=True)
class ChunkSizer:
    """Key width of the next chunk: scaled by ``target / seconds`` of the last one, at most ``grow`` times
    wider or narrower in one step, and between ``min_rows`` (a chunk's fixed costs, a few round trips,
    stay small beside its reading) and ``max_rows`` rows at the last chunk's density."""

    target: float = 0.5
    grow: float = 4.0
    max_rows: int = 5_000_000
    min_rows: int = 1_000
    min_width: int = 1

    def next_width(self, width: int, seconds: float, rows: int, target: float | None = None) -> int:
        """``target``: this step's aim instead of :attr:`target` (the throttle lowers it while lag builds)."""
        aim = self.target if target is None else target
        factor = self.grow if seconds <= 0 else min(self.grow, max(1 / self.grow, aim / seconds))
        new = max(self.min_width, int(width * factor))
        if rows > 0:                                # rows per key unit, from the last chunk
            per_row = width / rows
            floor = min(self.min_rows, self.max_rows)
            new = min(max(new, math.ceil(floor * per_row)), math.floor(self.max_rows * per_row))
        return max(self.min_width, new)

    def first_width(self, key_span: int, estimated_rows: int, rows_per_second: float = 200_000) -> int:
        """A first guess: as many keys as ``rows_per_second * target`` rows (at most ``max_rows``) need at
        the table's estimated density, taken as at least one row per key (the estimate may be stale:
        a first chunk too small only costs a few more steps of growth)."""
        density = max(1.0, estimated_rows / max(key_span, 1))          # rows per key unit
        rows = max(min(rows_per_second * self.target, self.max_rows), min(self.min_rows, self.max_rows))
        return max(self.min_width, int(rows / density))


@dataclass
class Throttle:
    """Pause a check while replication lags or a server is busy.  ``lag_limit`` None: no lag throttle."""

    lag_limit: float | None = 1.0
    threads_running_limit: int | None = None
    max_wait: float = 3600.0
    resume_at: float = 0.5                      # once paused, go on when lag <= resume_at * lag_limit ...
    settle: float = 5.0                         # ... or, after this many seconds paused, under the limit
    monitor: HeartbeatMonitor | None = None
    waited: float = 0.0                         # seconds paused so far
    pauses: int = 0
    _own: bool = False
    _samples: list[LagSample] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.lag_limit is not None and (not isinstance(self.lag_limit, (int, float)) or self.lag_limit <= 0):
            raise ParameterError("lag_limit", f"must be a number of seconds above 0, not {self.lag_limit!r}")
        if self.threads_running_limit is not None and (isinstance(self.threads_running_limit, bool) or not
                                                       isinstance(self.threads_running_limit, int)
                                                       or self.threads_running_limit < 1):
            raise ParameterError("threads_running_limit", f"must be a whole number of at least 1, not "
                                 f"{self.threads_running_limit!r}")

    @property
    def writes(self) -> tuple[str, ...]:
        """Tables written while the throttle runs (the heartbeat's, with a lag limit): not to compare."""
        return (HEARTBEAT_TABLE,) if self.lag_limit is not None else ()

    def start(self, source: Server, aurora: Server) -> None:
        """Start the heartbeat monitor (with a lag limit), unless the one given runs already: the one
        given, or one of its own over another connection of each server."""
        if self.lag_limit is None or (self.monitor is not None and self.monitor.running):
            return
        if self.monitor is None:
            self.monitor = HeartbeatMonitor(Side("source", "source", source.another),
                                            Side("aurora", "aurora", aurora.another))
        self._own = True
        self.monitor.start(MAX_SECONDS)

    def stop(self) -> None:
        if self._own and self.monitor is not None:
            self._samples.extend(self.monitor.stop().samples)

    def lags(self) -> dict[str, float | None]:
        """The newest heartbeat lag of each direction (None: no heartbeat seen yet)."""
        if self.monitor is None:
            return {}
        if self._own and not self.monitor.running:          # reached its time limit: keep it going
            self._samples.extend(self.monitor.wait().samples)
            self.monitor.start(MAX_SECONDS)
        found = self.monitor.latest()           # no sample of a direction yet: unknown
        return {d: found.get(d) for d in self.monitor.directions}

    def pressure(self) -> float:
        """The larger direction's lag as a share of the limit (0 without a lag limit or samples)."""
        if self.lag_limit is None:
            return 0.0
        return max([lag / self.lag_limit for lag in self.lags().values() if lag is not None], default=0.0)

    def chunk_target(self, target: float) -> float:
        """The chunk time to aim at now: lowered as lag approaches the limit (a chunk adds load while
        it runs and the throttle only looks between chunks), down to a fifth."""
        return target * min(1.0, max(0.2, 1.0 - self.pressure()))

    def reasons(self, servers: tuple[Server, ...], paused: bool = False) -> list[str]:
        """Why the check must wait now; empty: go on.  ``paused``: the lag must fall to the resume level
        (a load that keeps the lag above it by itself leaves the limit alone to hold the check)."""
        out = []
        if self.lag_limit is not None:
            limit = self.lag_limit * (self.resume_at if paused else 1.0)
            for direction, lag in self.lags().items():
                if lag is None or lag > limit:
                    out.append(f"{direction} lag {'unknown' if lag is None else f'{lag:.2f} s'} > {limit:g} s")
        if self.threads_running_limit is not None:
            for s in servers:
                running = int(s.status_vars("Threads_running")["Threads_running"] or 0)
                if running > self.threads_running_limit:
                    out.append(f"{s.role} Threads_running {running} > {self.threads_running_limit}")
        return out

    def wait(self, servers: tuple[Server, ...], say: Callable[[str], None]) -> None:
        """Return when nothing holds the check back; ``say(reason)`` while paused, ``say('')`` after."""
        started, paused = time.monotonic(), False
        while reasons := self.reasons(servers, paused and time.monotonic() - started < self.settle):
            if not paused:
                self.pauses, paused = self.pauses + 1, True
            say("waiting: " + "; ".join(reasons))
            if time.monotonic() - started > self.max_wait:
                raise CheckFailed("consistency throttle", reasons, hint=f"paused for more than {self.max_wait:g} s; "
                                  "the check's progress is kept: run it again once replication has caught up")
            time.sleep(POLL)
        if paused:
            self.waited += time.monotonic() - started
            say("")
