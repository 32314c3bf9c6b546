"""The failover test's values: its :class:`Settings` and one run's :class:`FailoverResult`.

A result is built by :func:`runbook_lib.phases.failover_test.steps.run`, kept as JSON on the source
(``runbook.failover_runs``), and read back by :func:`runbook_lib.phases.failover_test.steps.latest_result`; its
table, verdict line, summary figures and plots (:mod:`runbook_lib.phases.failover_test.plots`) come from it
alone.  Every time in it is in seconds since the writers started (``started_at``, UTC).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING

from runbook_lib.core.display import CheckResult, checks_frame
from runbook_lib.core.errors import CheckFailed, ParameterError
from runbook_lib.phases.failover_test import load as fl

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

RATE_MARGIN = 0.95   # a writer that achieved less than this share of its target rate fell behind
ERROR_COLUMNS = ["t (s)", "who", "kind", "errno", "during", "detail"]


@dataclass(frozen=True)
class Settings:
    """The notebook's knobs, checked.  Rate per side = batch_rows / interval_seconds."""

    batch_rows: int = 1000
    interval_seconds: float = 2.0
    duration_seconds: float = 60.0
    failover_at_seconds: float = 20.0
    sample_hz: float = 4.0
    converge_timeout_seconds: float = 120.0
    rerun: bool = False

    def __post_init__(self) -> None:
        ranges = {"batch_rows": (1, 50_000, "rows"), "interval_seconds": (0.01, 3600, "seconds"),
                  "duration_seconds": (1, 3600, "seconds"), "failover_at_seconds": (0, 3600, "seconds"),
                  "sample_hz": (2, 20, "samples per second"),
                  "converge_timeout_seconds": (5, 3600, "seconds")}
        for name, (low, high, unit) in ranges.items():
            value = getattr(self, name)
            number = int if name == "batch_rows" else (int, float)
            if isinstance(value, bool) or not isinstance(value, number) or not low <= value <= high:
                kind = "an integer" if number is int else "a number"
                raise ParameterError(name, f"{value!r} is not {kind} from {low:g} to {high:,g} {unit}")
        if self.failover_at_seconds >= self.duration_seconds:
            raise ParameterError("failover_at_seconds", f"{self.failover_at_seconds:g} s is not before the "
                                 f"writers stop (duration_seconds={self.duration_seconds:g})")
        if not isinstance(self.rerun, bool):
            raise ParameterError("rerun", f"{self.rerun!r} is not True or False")

    @property
    def rate(self) -> float:
        """Target rows per second on each side."""
        return self.batch_rows / self.interval_seconds

    @property
    def batches(self) -> int:
        """Batches each writer starts: one every interval while the duration lasts."""
        return math.ceil(self.duration_seconds / self.interval_seconds - 1e-9)

    @property
    def schedule_seconds(self) -> float:
        """The time the scheduled batches cover (batches x interval): rows / this = the target rate."""
        return self.batches * self.interval_seconds


@dataclass(frozen=True)
class Sample:
    """One sampling round as kept: when each side answered, its row count (None: no answer), and
    whether both directions had caught up by the round's end ``t``."""

    t: float
    source_t: float
    source_count: int | None
    aurora_t: float
    aurora_count: int | None
    caught_up: bool


@dataclass(frozen=True)
class LagPoint:
    t: float
    series: str            # 'source → aurora', 'aurora → source', 'AuroraBinlogReplicaLag'
    seconds: float | None  # None: that direction did not answer


@dataclass(frozen=True)
class FailoverResult:
    """One failover test run; every time is in seconds since the writers started.

    :attr:`problems` (and so :attr:`verdict`) is derived from the measurements, not stored."""

    run_id: int
    started_at: str                      # UTC, ISO 8601
    settings: Settings
    cluster_id: str
    writer_before: str
    target: str
    writer_after: str
    requested_at: float
    recovered_at: float | None           # Aurora's first acknowledged batch after its writer's first error
    converged_at: float | None           # see runbook_lib.phases.failover_test.load.convergence_time
    writers_stopped_at: float
    acked_rows: dict[str, int]           # side -> rows its writer got acknowledged
    rows_lost: dict[str, int]            # side -> acknowledged rows (both origins) absent from it
    missing: dict[str, str]              # side -> 'origin seq ranges' of those rows
    counts: dict[str, int]               # side -> rows of this run at the end
    checksums: str                       # 'match' or what differs
    write_rate: dict[str, float]         # side -> acknowledged rows / max(schedule, last acknowledgement)
    auto_increment: dict[str, tuple[int, int]]   # side -> (increment, offset) of its writer's session
    misplaced_ids: int                   # rows whose id does not carry their side's offset
    in_doubt: dict[str, int]             # side -> batches whose COMMIT was interrupted
    batches: tuple[fl.Batch, ...] = ()
    events: tuple[fl.ErrorEvent, ...] = ()
    samples: tuple[Sample, ...] = ()
    lag: tuple[LagPoint, ...] = ()
    cluster: tuple[fl.ClusterPoint, ...] = ()
    channels: tuple[str, ...] = ()       # when it did not converge: what each direction's channel reported

    @property
    def offsets_apart(self) -> bool:
        """Both writers' ids fall in different residues of the same increment, and none strayed."""
        values = list(self.auto_increment.values())
        return (len(values) == 2 and values[0][0] == values[1][0]
                and values[0][1] % values[0][0] != values[1][1] % values[1][0] and not self.misplaced_ids)

    @property
    def problems(self) -> tuple[str, ...]:
        """Why the run did not converge (empty: it did)."""
        out = [f"{n:,} acknowledged rows missing on {side} ({self.missing[side]})"
               for side, n in self.rows_lost.items() if n]
        if self.counts["source"] != self.counts["aurora"]:
            out.append(f"row counts differ: source {self.counts['source']:,}, "
                       f"aurora {self.counts['aurora']:,}")
        if self.checksums != "match":
            out.append(f"checksums of {fl.ROWS_TABLE}: {self.checksums}")
        if self.recovered_at is None:
            out.append("Aurora acknowledged no write after the failover")
        if self.converged_at is None:
            out.append(f"both directions had not caught up {self.settings.converge_timeout_seconds:g} s "
                       "after the writers stopped" + (f"; the channels report: {'; '.join(self.channels)}"
                                                     if self.channels else ""))
        if self.writer_after != self.target:
            out.append(f"the cluster's writer is {self.writer_after or 'none'}, not the target {self.target}")
        if not self.offsets_apart:
            out.append(f"auto-increment: {self.misplaced_ids} rows with an id of the other side's offset; "
                       f"increment/offset {self.auto_increment}")
        out += [f"the {b.side} writer's batch {b.first}-{b.last} was never acknowledged"
                for b in self.batches if b.t_ack is None]
        return tuple(out)

    @property
    def verdict(self) -> str:
        return "not converged" if self.problems else "converged"

    @property
    def recovery_seconds(self) -> float | None:
        return None if self.recovered_at is None else round(self.recovered_at - self.requested_at, 3)

    @property
    def convergence_seconds(self) -> float | None:
        return None if self.converged_at is None else round(self.converged_at - self.requested_at, 3)

    def errors_by_kind(self, who: str) -> dict[str, int]:
        return {k: sum(1 for e in self.events if e.who == who and e.kind == k) for k in fl.KINDS}

    def verdict_line(self) -> str:
        head = (f"{self.verdict.upper()}: run {self.run_id}, failover of {self.cluster_id} to {self.target} "
                f"at {self.requested_at:.1f} s")
        if self.problems:
            return f"{head}: " + "; ".join(self.problems)
        return (f"{head}: Aurora accepted writes again after {self.recovery_seconds:.2f} s, both directions "
                f"caught up after {self.convergence_seconds:.2f} s, 0 acknowledged rows lost on either side "
                f"({sum(self.acked_rows.values()):,} written)")

    def to_frame(self) -> pd.DataFrame:
        """item, source, aurora, ok, advice: what each side saw and whether it passed."""
        s, a, rate = "source", "aurora", self.settings.rate
        kinds = {side: " / ".join(str(n) for n in self.errors_by_kind(f"{side} writer").values())
                 for side in fl.SIDES}
        inc_off = {side: "{}/{}".format(*self.auto_increment[side]) if side in self.auto_increment else "—"
                   for side in fl.SIDES}
        rows = [
            CheckResult("rows acknowledged by this side's writer", f"{self.acked_rows[s]:,}",
                        f"{self.acked_rows[a]:,}"),
            CheckResult(f"write rate achieved, rows/s (target {rate:,.0f})", f"{self.write_rate[s]:,.0f}",
                        f"{self.write_rate[a]:,.0f}",
                        "pass" if min(self.write_rate.values()) >= RATE_MARGIN * rate else "warn",
                        "a writer fell behind (Aurora's: its outage not made up by the end)"),
            CheckResult("writer errors: connection / read-only / other", kinds[s], kinds[a]),
            CheckResult("batches whose COMMIT was interrupted (retried, idempotent)", self.in_doubt[s],
                        self.in_doubt[a]),
            CheckResult("acknowledged rows missing on this side", self.rows_lost[s], self.rows_lost[a],
                        "fail" if any(self.rows_lost.values()) else "pass",
                        "; ".join(f"{k}: {v}" for k, v in self.missing.items() if v)),
            CheckResult.equal("rows of this run at the end", f"{self.counts[s]:,}", f"{self.counts[a]:,}",
                              advice="the sides differ: see the replication status of both directions"),
            CheckResult("chunked checksums of the test table", self.checksums, self.checksums,
                        "pass" if self.checksums == "match" else "fail",
                        "compare the sides with the consistency notebook"),
            CheckResult("auto-increment increment/offset of the writer", inc_off[s], inc_off[a],
                        "pass" if self.offsets_apart else "fail",
                        f"{self.misplaced_ids} rows have an id of the other side's offset"),
            CheckResult("cluster writer before → after (target)", "",
                        f"{self.writer_before} → {self.writer_after} ({self.target})",
                        "pass" if self.writer_after == self.target else "fail"),
            CheckResult("seconds until Aurora accepted writes again", "", _sec(self.recovery_seconds),
                        "pass" if self.recovered_at is not None else "fail"),
            CheckResult("seconds until both directions caught up", "", _sec(self.convergence_seconds),
                        "pass" if self.converged_at is not None else "fail"),
        ]
        return checks_frame(rows)

    def errors_frame(self) -> pd.DataFrame:
        """Every recorded error: t (s), who, kind, errno, during, detail."""
        import pandas as pd
        rows = [(round(e.t, 3), e.who, e.kind, e.errno, e.during, e.detail) for e in self.events]
        return pd.DataFrame(rows, columns=ERROR_COLUMNS)

    def summary(self) -> dict:
        """The figures kept in the run summary (report.record('failover', ...))."""
        return {"verdict": self.verdict, "run_id": self.run_id, "started_at": self.started_at,
                "rows_lost": dict(self.rows_lost), "rows_acknowledged": dict(self.acked_rows),
                "write_rate_rows_per_s": {k: round(v, 1) for k, v in self.write_rate.items()},
                "target_rate_rows_per_s_per_side": round(self.settings.rate, 1),
                "recovery_seconds": self.recovery_seconds, "convergence_seconds": self.convergence_seconds,
                "failover": {"cluster": self.cluster_id, "from": self.writer_before, "to": self.target,
                             "writer_after": self.writer_after,
                             "requested_at_s": round(self.requested_at, 3)},
                "errors": {side: self.errors_by_kind(f"{side} writer") for side in fl.SIDES},
                "settings": asdict(self.settings), "problems": list(self.problems)}

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> FailoverResult:
        d = json.loads(text)
        d["settings"] = Settings(**d["settings"])
        for name, kind in (("batches", fl.Batch), ("events", fl.ErrorEvent), ("samples", Sample),
                           ("lag", LagPoint), ("cluster", fl.ClusterPoint)):
            d[name] = tuple(kind(**x) for x in d[name])
        d["auto_increment"] = {k: tuple(v) for k, v in d["auto_increment"].items()}
        d["channels"] = tuple(d.get("channels", ()))       # absent from results kept before it existed
        return cls(**{f.name: d[f.name] for f in fields(cls)})

    def require_converged(self) -> None:
        """CheckFailed (with the table) unless the verdict is ``converged``."""
        if self.problems:
            raise CheckFailed(f"failover test run {self.run_id}", list(self.problems), table=self.to_frame(),
                              hint="read the table and the plots; fix the cause, then run this phase again "
                                   "(after a run that did not converge the test is planned again)")

    def _repr_html_(self) -> str:
        return self.to_frame().to_html(index=False) + f"<p><b>{self.verdict_line()}</b></p>"

    def __repr__(self) -> str:
        return f"<FailoverResult {self.verdict_line()}>"


def _sec(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"
