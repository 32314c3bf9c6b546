"""The failover test's three plots, static (matplotlib), from a :class:`FailoverResult` alone.

* :func:`counts_figure`: this run's rows on each side over time, and the rows acknowledged to both
  writers (what each side must reach), with the failover window shaded;
* :func:`lag_figure`: the lag of each direction (heartbeat) and CloudWatch's AuroraBinlogReplicaLag;
* :func:`errors_figure`: every error a writer or sampler met, one row per thread, a marker per kind.

Each returns a :class:`matplotlib.figure.Figure` built without pyplot (no global state, no
duplicate display); :func:`show` displays one as a PNG in a notebook (headless runs and HTML
reports keep it) and closes nothing, since pyplot never held it.  The shaded window runs from the
failover request to the first Aurora write acknowledged after it.
"""
from __future__ import annotations

from itertools import accumulate
from typing import TYPE_CHECKING

from runbook_lib.phases.failover_test import load as fl

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from runbook_lib.phases.failover_test.result import FailoverResult

COLOURS = {"source": "#1f77b4", "aurora": "#ff7f0e", "acknowledged": "#555555"}
MARKERS = {"connection": ("x", "#d62728", "connection refused / lost"),
           "read_only": ("s", "#ff7f0e", "read-only (1290, 1836...)"),
           "other": ("^", "#9467bd", "other")}
THREADS = ("source writer", "aurora writer", "source sampler", "aurora sampler")
SIZE = (12, 4.2)


def _figure() -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure
    fig = Figure(figsize=SIZE, dpi=100, layout="constrained")
    return fig, fig.add_subplot()


def _end(result: FailoverResult) -> float:
    times = [result.writers_stopped_at] + [s.t for s in result.samples] + [e.t for e in result.events]
    return max(times)


def _window(ax: Axes, result: FailoverResult) -> None:
    """Shade the failover window; mark the writers' stop and the convergence moment."""
    until = result.recovered_at if result.recovered_at is not None else _end(result)
    label = (f"failover window: request → Aurora writes again ({result.recovery_seconds:.1f} s)"
             if result.recovered_at is not None else "failover request → end (Aurora never wrote again)")
    ax.axvspan(result.requested_at, until, color="#d62728", alpha=0.12, label=label)
    ax.axvline(result.writers_stopped_at, color="#777777", linestyle=":", linewidth=1, label="writers stop")
    if result.converged_at is not None:
        ax.axvline(result.converged_at, color="#2ca02c", linestyle="--", linewidth=1,
                   label=f"both directions caught up ({result.convergence_seconds:.1f} s after the request)")
    ax.set_xlim(0, _end(result) * 1.02 + 0.5)
    ax.set_xlabel("time since the writers started (s)")
    ax.grid(True, alpha=0.3)


def _legend(ax: Axes) -> None:
    """The legend beside the plot, where it hides no data."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, borderaxespad=0)


def counts_figure(result: FailoverResult) -> Figure:
    """Rows of this run on each side (sampled), and the rows acknowledged to both writers."""
    fig, ax = _figure()
    for side in fl.SIDES:
        points = [(getattr(s, f"{side}_t"), getattr(s, f"{side}_count")) for s in result.samples]
        ax.plot([t for t, _ in points], [n for _, n in points], color=COLOURS[side], linewidth=1.6,
                label=f"rows on {side} (counted {result.settings.sample_hz:g}×/s)")
        gaps = [t for t, n in points if n is None]
        if gaps:
            ax.plot(gaps, [0] * len(gaps), "|", color=COLOURS[side], markersize=10,
                    label=f"{side} did not answer the count")
    acks = sorted((b.t_ack, b.rows) for b in result.batches if b.t_ack is not None)
    if acks:
        ax.step([0.0] + [t for t, _ in acks], [0] + list(accumulate(n for _, n in acks)), where="post",
                color=COLOURS["acknowledged"], linestyle="--", linewidth=1,
                label="rows acknowledged to both writers (each side must hold them)")
    _window(ax, result)
    ax.set_ylabel("rows of this run (rows)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"Row counts on both sides, failover test run {result.run_id}: {result.verdict}")
    _legend(ax)
    return fig


def lag_figure(result: FailoverResult) -> Figure:
    """The lag of each direction in seconds; a gap where the direction could not be measured."""
    fig, ax = _figure()
    series = sorted({p.series for p in result.lag})
    for name in series:
        points = [(p.t, p.seconds) for p in result.lag if p.series == name]
        style = ({"drawstyle": "steps-post", "marker": ".", "linewidth": 1, "zorder": 3}
                 if "CloudWatch" in name else {"linewidth": 1.6})
        ax.plot([t for t, _ in points], [float("nan") if v is None else v for _, v in points], label=name,
                **style)
    if not series:
        ax.text(0.5, 0.5, "no lag was measured", transform=ax.transAxes, ha="center")
    _window(ax, result)
    ax.set_ylabel("replication lag (s)")
    ax.set_ylim(bottom=0)
    ax.set_title("Lag of each direction during the failover (gaps: not measurable, e.g. Aurora down)")
    _legend(ax)
    return fig


def errors_figure(result: FailoverResult) -> Figure:
    """Every error on the time axis: one row per writer/sampler, one marker per kind."""
    fig, ax = _figure()
    for kind, (marker, colour, label) in MARKERS.items():
        found = [e for e in result.events if e.kind == kind]
        ax.scatter([e.t for e in found], [THREADS.index(e.who) if e.who in THREADS else len(THREADS)
                                          for e in found],
                   marker=marker, color=colour, s=40, label=f"{label}: {len(found)}")
    if not result.events:
        ax.text(0.5, 0.5, "no errors", transform=ax.transAxes, ha="center")
    _window(ax, result)
    ax.set_yticks(range(len(THREADS)), THREADS)
    ax.set_ylim(-0.5, len(THREADS) - 0.5)
    ax.set_ylabel("thread that met the error")
    ax.set_title("Errors met by the writers and the samplers (each writer retried until acknowledged)")
    _legend(ax)
    return fig


def show(fig: Figure) -> None:
    """Display ``fig`` as a PNG in IPython (image/png output), else do nothing visible."""
    from runbook_lib.core.display import in_ipython
    if not in_ipython():
        return
    import io

    from IPython.display import Image, display
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    display(Image(data=buffer.getvalue(), format="png"))
