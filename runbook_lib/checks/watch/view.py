"""The live view of both replication directions: in a notebook (:func:`live`) and a terminal (:func:`terminal`).

In JupyterLab one display handle is updated in place once a second (:func:`panel_html`: both
directions side by side, each side's transactions per second, CloudWatch's lag and the alert line,
red with its reasons when a threshold is crossed).  Under papermill the same cell samples for its
time; what stays in the notebook is the last panel, then a plot (:func:`figure`) and the tables of
:class:`~runbook_lib.checks.watch.result.WatchResult`.  ``runbook watch`` redraws the panel as text
in place (:func:`panel_text`) on a terminal, and prints a line a second otherwise.
"""
from __future__ import annotations

import html
import sys
from typing import TYPE_CHECKING, TextIO

from runbook_lib.checks.channels import DIRECTIONS, REPLICA_ROLE
from runbook_lib.checks.watch.result import WatchResult
from runbook_lib.checks.watch.sampling import ROLES, Snapshot, Thresholds, Watch, cloudwatch_note
from runbook_lib.core.display import in_ipython, show, show_table
from runbook_lib.core.redact import redact

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from runbook_lib.context.session import Session

RED, GREEN = "#c62828", "#2e7d32"
ROWS = ("IO thread", "SQL thread", "last error", "heartbeat lag", "Seconds_Behind_Source", "GTID gap")


def _num(value: float | int | None, unit: str = "", digits: int = 3) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}f}{unit}" if isinstance(value, float) else f"{value}{unit}"


def _cells(s: Snapshot) -> dict[str, list[str]]:
    out = {}
    for d in s.directions:
        out[d.direction] = [d.io, d.sql, d.error or "none", _num(d.heartbeat_lag_s, " s"),
                            _num(d.seconds_behind, " s"), _num(d.gtid_gap)]
    return out


def _sides(s: Snapshot) -> str:
    return "; ".join(f"{v.role}: {_num(v.tps, ' tx/s', 1)}" if v.reachable else f"{v.role}: DOES NOT ANSWER"
                     for v in s.sides)


def _cloudwatch(s: Snapshot, limits: Thresholds) -> str:
    if s.cloudwatch_lag_s is None:
        return "CloudWatch AuroraBinlogReplicaLag: no data yet"
    at = s.cloudwatch_at.strftime("%H:%M") if s.cloudwatch_at else "?"
    note = cloudwatch_note(s.cloudwatch_lag_s, limits)
    return (f"CloudWatch AuroraBinlogReplicaLag: {s.cloudwatch_lag_s:g} s (maximum of the minute from {at} UTC; "
            f"per minute, it trails the figures above){': ' + note if note else ''}")


def alert_line(s: Snapshot) -> str:
    return ("ALERT: " + "; ".join(s.alerts)) if s.alerts else "OK: both directions run, every figure under its threshold"


def panel_html(s: Snapshot, seconds: float, limits: Thresholds, notes: list[str] | tuple[str, ...] = ()) -> str:
    """One snapshot as a small self-contained HTML panel (inline styles only)."""
    cells = _cells(s)
    head = "".join(f"<th style='text-align:left;padding:2px 10px'>{html.escape(d)} "
                   f"<small>(read on {REPLICA_ROLE[d]})</small></th>" for d in DIRECTIONS)
    body = "".join(f"<tr><td style='padding:2px 10px'>{html.escape(name)}</td>" + "".join(
        f"<td style='padding:2px 10px'>{html.escape(cells[d][i])}</td>" for d in DIRECTIONS) + "</tr>"
        for i, name in enumerate(ROWS))
    colour = RED if s.alerts else GREEN
    extra = "".join(f"<div style='color:#555'>{html.escape(n)}</div>" for n in notes)
    return (f"<div class='runbook-watch' data-t='{s.t}'>"
            f"<div><b>Live view of both directions</b>: {s.t:.1f} s of {seconds:g} s, "
            f"{s.at.strftime('%H:%M:%S')} UTC, lag threshold {limits.lag_s:g} s</div>"
            f"<table style='border-collapse:collapse'><tr><th style='text-align:left;padding:2px 10px'>item</th>"
            f"{head}</tr>{body}</table>"
            f"<div>transactions per second: {html.escape(_sides(s))}</div>"
            f"<div>{html.escape(_cloudwatch(s, limits))}</div>"
            f"<div class='runbook-watch-alert' style='color:white;background:{colour};padding:3px 8px;"
            f"margin-top:4px;font-weight:bold'>{html.escape(alert_line(s))}</div>{extra}</div>")


def panel_text(s: Snapshot, seconds: float, limits: Thresholds, *, colour: bool = False) -> str:
    """One snapshot as terminal text; the alert line in red (ANSI) when ``colour``."""
    cells = _cells(s)
    width = max(len(r) for r in ROWS) + 2
    cols = [max(len(d), *(len(c[:60]) for c in cells[d])) + 2 for d in DIRECTIONS]
    lines = [f"live view: {s.t:5.1f} s of {seconds:g} s  {s.at.strftime('%H:%M:%S')} UTC  "
             f"lag threshold {limits.lag_s:g} s",
             "".ljust(width) + "".join(d.ljust(w) for d, w in zip(DIRECTIONS, cols))]
    lines += [name.ljust(width) + "".join(cells[d][i][:60].ljust(w) for d, w in zip(DIRECTIONS, cols))
              for i, name in enumerate(ROWS)]
    lines += [f"transactions per second: {_sides(s)}", _cloudwatch(s, limits)]
    line = alert_line(s)
    if colour:
        line = f"\x1b[{'1;41;97' if s.alerts else '32'}m{line}\x1b[0m"
    return "\n".join(lines + [line])


def figure(result: WatchResult) -> Figure:
    """Lag of each direction (heartbeat, Seconds_Behind_Source, CloudWatch) with the threshold, the
    GTID gap, and transactions per second on each side; alert periods shaded red."""
    from matplotlib.figure import Figure
    frame = result.to_frame()
    fig = Figure(figsize=(11, 7.5), dpi=100, layout="constrained")
    lag_ax, gap_ax, tps_ax = fig.subplots(3, 1, sharex=True)
    colours = dict(zip(DIRECTIONS, ("#ff7f0e", "#1f77b4")))
    for d in DIRECTIONS:
        part = frame[frame["direction"] == d]
        lag_ax.plot(part["t_s"], part["heartbeat_lag_s"], color=colours[d], marker=".", label=f"{d}: heartbeat")
        lag_ax.plot(part["t_s"], part["seconds_behind"], color=colours[d], linestyle="--", linewidth=1,
                    label=f"{d}: Seconds_Behind_Source")
        gap_ax.plot(part["t_s"], part["gtid_gap"], color=colours[d], marker=".", label=d)
    first = frame[frame["direction"] == DIRECTIONS[0]]
    if first["cloudwatch_lag_s"].notna().any():
        lag_ax.step(first["t_s"], first["cloudwatch_lag_s"], where="post", color="#555555", linewidth=1,
                    label="CloudWatch AuroraBinlogReplicaLag (-1: not running)")
    lag_ax.axhline(result.limits.lag_s, color=RED, linestyle=":", label=f"threshold {result.limits.lag_s:g} s")
    for role, colour in zip(ROLES, ("#1f77b4", "#ff7f0e")):
        tps_ax.plot(first["t_s"], first[f"{role}_tps"], color=colour, marker=".", label=f"{role}")
    end = frame["t_s"].max() if len(frame) else 0.0
    for e in result.episodes():
        for ax in (lag_ax, gap_ax, tps_ax):
            ax.axvspan(e.start_s, e.end_s if e.end_s is not None else end, color=RED, alpha=0.12)
    lag_ax.set_ylabel("lag (s)")
    gap_ax.set_ylabel("GTID gap (transactions)")
    tps_ax.set_ylabel("transactions / s")
    tps_ax.set_xlabel("time since the watch started (s); red: a threshold crossed")
    lag_ax.set_title(f"Live view: {result.verdict_line()[:110]}", fontsize=10)
    for ax in (lag_ax, gap_ax, tps_ax):
        ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]))      # CloudWatch's -1 stays visible
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return fig


def _show_result(result: WatchResult) -> None:
    import io

    from IPython.display import Image, display
    buffer = io.BytesIO()
    figure(result).savefig(buffer, format="png")
    display(Image(data=buffer.getvalue(), format="png"))
    show_table(result.summary_frame())
    if len(result.episodes_frame()):
        show_table(result.episodes_frame())


def live(rb: Session, seconds: float = 30.0, *, lag_threshold_s: float = 1.0, gtid_gap: int = 1000,
         interval: float = 1.0) -> WatchResult:
    """The notebook cell: a panel updated in place every ``interval`` s for ``seconds``; then the
    plot, the summary table, the alert periods and a verdict line.  The stop button ends it early."""
    limits = Thresholds(lag_threshold_s, gtid_gap)
    watch = Watch(rb, limits=limits, interval=interval)
    handle = None
    if in_ipython():
        from IPython.display import HTML, display
        handle = display(HTML("<div class='runbook-watch'>live view: connecting…</div>"), display_id=True)

    def update(s: Snapshot) -> None:
        if handle is not None:
            handle.update(HTML(redact(panel_html(s, seconds, limits, watch.notes))))
        else:
            print(redact(panel_text(s, seconds, limits)))

    snaps = watch.run(seconds, update)
    result = WatchResult(tuple(snaps), limits, float(seconds), watch.interrupted, tuple(watch.notes))
    if snaps and handle is not None:
        handle.update(HTML(redact(panel_html(snaps[-1], seconds, limits, result.notes))))
        _show_result(result)
    elif snaps:
        show(result.summary_frame())
        show(result.episodes_frame())
    print(result.verdict_line())
    return result


def terminal(rb: Session, seconds: float = 60.0, *, lag_threshold_s: float = 1.0, gtid_gap: int = 1000,
             out: TextIO | None = None) -> WatchResult:
    """``runbook watch``: the panel redrawn in place on a terminal, a line a second otherwise."""
    out = out or sys.stdout
    tty = out.isatty()
    limits = Thresholds(lag_threshold_s, gtid_gap)
    watch = Watch(rb, limits=limits)
    drawn = [0]

    def update(s: Snapshot) -> None:
        if tty:
            text = redact(panel_text(s, seconds, limits, colour=True))
            out.write((f"\x1b[{drawn[0]}F\x1b[J" if drawn[0] else "") + text + "\n")
            drawn[0] = text.count("\n") + 1
        else:
            lags = ", ".join(f"{d.direction} {d.io}/{d.sql} hb {_num(d.heartbeat_lag_s, 's')}" for d in s.directions)
            out.write(redact(f"{s.t:6.1f}s  {lags}  {alert_line(s)}") + "\n")
        out.flush()

    snaps = watch.run(seconds, update)
    result = WatchResult(tuple(snaps), limits, float(seconds), watch.interrupted, tuple(watch.notes))
    for note in result.notes:
        out.write(f"note: {note}\n")
    if len(result.episodes_frame()):
        out.write(result.episodes_frame().to_string(index=False) + "\n")
    out.write(result.verdict_line() + "\n")
    return result
