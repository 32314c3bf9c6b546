"""What a watch leaves behind: its snapshots as a frozen :class:`WatchResult`, with the tables a
notebook keeps (:meth:`WatchResult.to_frame`, :meth:`WatchResult.summary_frame`,
:meth:`WatchResult.episodes_frame`) and the figures for the run summary (:meth:`WatchResult.figures`).

An *episode* is a stretch of consecutive snapshots with an alert: it starts at the first red
snapshot and ends at the first green one after it (``end_s`` None while still red), so a failover
watched shows as one episode from the outage to the recovery, with its reasons.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from runbook_lib.checks.channels import DIRECTIONS
from runbook_lib.checks.watch.sampling import ROLES, Snapshot, Thresholds

FRAME_COLUMNS = ["t_s", "direction", "io", "sql", "heartbeat_lag_s", "seconds_behind", "gtid_gap", "error",
                 "source_tps", "aurora_tps", "cloudwatch_lag_s", "alert"]
SUMMARY_COLUMNS = ["direction", "snapshots", "threads_not_running", "heartbeat_p50_s", "heartbeat_max_s",
                   "seconds_behind_max", "gtid_gap_max"]
EPISODE_COLUMNS = ["start_s", "end_s", "seconds", "reasons"]


@dataclass(frozen=True)
class Episode:
    start_s: float
    end_s: float | None             # the first snapshot without an alert after it; None: still red
    reasons: tuple[str, ...]        # every distinct reason, in the order first seen

    @property
    def seconds(self) -> float | None:
        return None if self.end_s is None else round(self.end_s - self.start_s, 3)


def _kind(reason: str) -> str:
    """A reason without its figures and details: one per kind in an episode's list."""
    head = reason.split(" (")[0]
    if " does not answer" in head:
        head = head.split(":")[0]               # whatever the client said: refused, lost, timed out
    return re.sub(r"[\d.]+", "#", head)[:60]


def episodes(snapshots: tuple[Snapshot, ...] | list[Snapshot]) -> list[Episode]:
    """Pure: the stretches with an alert, each with its reasons (the first of each kind)."""
    out: list[Episode] = []
    start, reasons = None, []
    for s in snapshots:
        if s.alerts:
            if start is None:
                start, reasons = s.t, []
            kinds = {_kind(r) for r in reasons}
            reasons += [r for r in s.alerts if _kind(r) not in kinds]
        elif start is not None:
            out.append(Episode(start, s.t, tuple(reasons)))
            start = None
    if start is not None:
        out.append(Episode(start, None, tuple(reasons)))
    return out


@dataclass(frozen=True)
class WatchResult:
    snapshots: tuple[Snapshot, ...]
    limits: Thresholds
    seconds: float                  # asked for
    interrupted: bool
    notes: tuple[str, ...] = ()

    def to_frame(self) -> pd.DataFrame:
        """One row per snapshot and direction."""
        rows = []
        for s in self.snapshots:
            tps = {f"{r}_tps": s.side(r).tps for r in ROLES}
            for d in s.directions:
                rows.append({"t_s": s.t, "direction": d.direction, "io": d.io, "sql": d.sql,
                             "heartbeat_lag_s": d.heartbeat_lag_s, "seconds_behind": d.seconds_behind,
                             "gtid_gap": d.gtid_gap, "error": d.error, **tps, "cloudwatch_lag_s": s.cloudwatch_lag_s,
                             "alert": "; ".join(s.alerts)})
        return pd.DataFrame(rows, columns=FRAME_COLUMNS).astype(
            {c: "float64" for c in ("heartbeat_lag_s", "seconds_behind", "gtid_gap", "source_tps", "aurora_tps",
                                    "cloudwatch_lag_s")})

    def summary_frame(self) -> pd.DataFrame:
        """Per direction: snapshots, how many with a thread not running, heartbeat p50/max, worst
        Seconds_Behind_Source and GTID gap."""
        frame, rows = self.to_frame(), []
        for d in DIRECTIONS:
            part = frame[frame["direction"] == d]
            hb = part["heartbeat_lag_s"].dropna()
            rows.append({"direction": d, "snapshots": len(part),
                         "threads_not_running": int(((part["io"] != "Yes") | (part["sql"] != "Yes")).sum()),
                         "heartbeat_p50_s": round(float(hb.median()), 3) if len(hb) else None,
                         "heartbeat_max_s": round(float(hb.max()), 3) if len(hb) else None,
                         "seconds_behind_max": None if part["seconds_behind"].dropna().empty
                         else int(part["seconds_behind"].max()),
                         "gtid_gap_max": None if part["gtid_gap"].dropna().empty else int(part["gtid_gap"].max())})
        return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)

    def episodes(self) -> list[Episode]:
        return episodes(self.snapshots)

    def episodes_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"start_s": e.start_s, "end_s": e.end_s, "seconds": e.seconds,
                              "reasons": "; ".join(e.reasons)} for e in self.episodes()], columns=EPISODE_COLUMNS)

    def verdict_line(self) -> str:
        n, eps = len(self.snapshots), self.episodes()
        span = f"{n} snapshots over {self.snapshots[-1].t:.1f} s" if n else "no snapshot"
        ended = " (interrupted)" if self.interrupted else ""
        if not eps:
            return f"OK: no threshold crossed: {span}{ended}"
        still = " and still red at the end" if eps[-1].end_s is None else ""
        return f"ALERT: {len(eps)} period(s) over a threshold{still}: {span}{ended}; first: {eps[0].reasons[0]}"

    def figures(self) -> dict:
        """For the run summary (``record('watch', ...)``)."""
        return {"seconds": self.snapshots[-1].t if self.snapshots else 0.0, "snapshots": len(self.snapshots),
                "lag_threshold_s": self.limits.lag_s, "interrupted": self.interrupted,
                "episodes": [{"start_s": e.start_s, "end_s": e.end_s, "reasons": list(e.reasons)}
                             for e in self.episodes()],
                "verdict": self.verdict_line()}
