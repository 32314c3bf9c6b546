"""Bench section ``lag``: the smallest lag step the heartbeat resolves, measured.

The replication connection of one direction (aurora → source: onprem's native channel) is sent
through a local TCP proxy that holds every byte from the source for ``delay`` ms, a real and known
extra lag.  One heartbeat monitor runs throughout; the delay alternates 0, step, 0, step2, 0 ... in
windows of 2 s (``repeats`` times each), and each step's increase is the median lag of its window
minus the mean of the 0 ms windows around it (so a machine whose load drifts does not bias it); the
median over the repeats is reported.  A step is *resolved* when that increase is within
``max(1 ms, 30 %)`` of the delay.  ``lag_resolution_ms`` is the smallest step from which every
larger one is resolved; each step's measurement is reported too, and the baseline: the real lag
of a busy machine (commits, fsyncs, CPU), not the heartbeat's resolution.  A window's median
resolves finer than one sample: a single sample is quantized by the reader's 10 ms poll.  The
channel is pointed back at the source directly afterwards; the proxy runs in a process of its own.
"""
from __future__ import annotations

import multiprocessing
import socket
import statistics
import threading
import time
from collections import deque
from datetime import datetime, timedelta, timezone

import pandas as pd

from runbook_lib.checks.heartbeat import SCHEMA_DDL, TABLE_DDL, HeartbeatMonitor, Side
from runbook_lib.core.errors import LabError

STEPS_MS = (2, 5, 10, 20, 50, 100)
WINDOW_SECONDS = 2.0        # each delay, and a 0 ms baseline before and after it
SETTLE_SECONDS = 0.5        # left out at the start of each window
REPEATS = 5
DIRECTION = "aurora → source"


class DelayProxy:
    """127.0.0.1:<port> → ``target_port``; bytes coming back from the target are held ``delay_ms``.

    It runs in a process of its own, so the monitor's threads in this one do not delay it."""

    def __init__(self, target_port: int) -> None:
        mp = multiprocessing.get_context("spawn")
        self._delay, self._port = mp.Value("d", 0.0), mp.Value("i", 0)
        self._process = mp.Process(target=_serve, args=(target_port, self._port, self._delay), daemon=True,
                                   name="delay-proxy")
        self._process.start()
        deadline = time.monotonic() + 30
        while not self._port.value:
            if time.monotonic() > deadline or not self._process.is_alive():
                self.close()
                raise LabError("the delay proxy did not start")
            time.sleep(0.05)
        self.port = self._port.value

    @property
    def delay_ms(self) -> float:
        return self._delay.value

    @delay_ms.setter
    def delay_ms(self, value: float) -> None:
        self._delay.value = float(value)

    def close(self) -> None:
        self._process.terminate()
        self._process.join(10)


def _serve(target_port: int, port, delay) -> None:
    """The proxy process: accept, connect to the target, pipe both ways (target → client delayed)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port.value = listener.getsockname()[1]
    while True:
        client, _ = listener.accept()
        upstream = socket.create_connection(("127.0.0.1", target_port))
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_pipe, args=(client, upstream), daemon=True).start()
        _delayed(upstream, client, delay)


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass        # the other side closed: the proxy's connection ends with it
    finally:
        dst.close()


def _delayed(src: socket.socket, dst: socket.socket, delay) -> None:
    queue: deque[tuple[float, bytes]] = deque()
    ready = threading.Condition()

    def receive() -> None:
        try:
            while data := src.recv(65536):
                with ready:
                    queue.append((time.monotonic() + delay.value / 1000, data))
                    ready.notify()
        except OSError:
            pass
        finally:
            with ready:
                queue.append((0.0, b""))
                ready.notify()

    def send() -> None:
        try:
            while True:
                with ready:
                    while not queue:
                        ready.wait()
                    due, data = queue.popleft()
                if not data:
                    break
                time.sleep(max(0.0, due - time.monotonic()))
                dst.sendall(data)
        except OSError:
            pass
        finally:
            dst.close()
    threading.Thread(target=receive, daemon=True).start()
    threading.Thread(target=send, daemon=True).start()


def _point_onprem_at(ctx, port: int) -> None:
    password = ctx.state.passwords["replicator"]
    with ctx.server("onprem") as s:
        s.execute(s.dialect.stop_replica())
        s.execute(s.dialect.change_source("127.0.0.1", port, "replicator", password, ssl=True, connect_retry=2))
        s.execute(s.dialect.start_replica())


def _median_in(frame: pd.DataFrame, start, end) -> float | None:
    part = frame[(frame["time"] >= start) & (frame["time"] < end)]["heartbeat_lag_s"].dropna()
    return float(part.median()) * 1000 if len(part) else None


def run(ctx, steps_ms=STEPS_MS, window: float = WINDOW_SECONDS, repeats: int = REPEATS) -> dict:
    with ctx.server("onprem") as s:
        s.execute(SCHEMA_DDL)
        s.execute(TABLE_DDL)
    ctx.wait_caught_up()
    proxy = DelayProxy(ctx.state.aurora_port)
    monitor = HeartbeatMonitor(Side("source", "onprem", ctx.opener("onprem")),
                               Side("aurora", "aurora", ctx.opener("aurora")), sample_interval=0.1)
    schedule = [d for _ in range(repeats) for step in steps_ms for d in (0, step)] + [0]
    windows = []
    try:
        _point_onprem_at(ctx, proxy.port)
        ctx.wait_caught_up()
        monitor.start(window * len(schedule) + 5)
        for delay in schedule:
            proxy.delay_ms = delay
            begin = datetime.now(timezone.utc)
            time.sleep(window)
            windows.append((delay, begin + timedelta(seconds=SETTLE_SECONDS), datetime.now(timezone.utc)))
        samples = monitor.stop()
    finally:
        monitor.stop()
        _point_onprem_at(ctx, ctx.state.aurora_port)
        proxy.close()
        ctx.wait_caught_up()
    frame = samples.to_frame()
    frame = frame[frame["direction"] == DIRECTION]
    medians = [(d, _median_in(frame, a, b)) for d, a, b in windows]
    increases: dict[int, list[float]] = {step: [] for step in steps_ms}
    for i in range(1, len(medians) - 1, 2):           # each step window between two baseline windows
        step, value = medians[i]
        before, after = medians[i - 1][1], medians[i + 1][1]
        if None not in (value, before, after):
            increases[step].append(value - (before + after) / 2)
    baselines = [m for d, m in medians if d == 0 and m is not None]
    deciles = statistics.quantiles(baselines, n=10) if len(baselines) > 1 else [0, 0]
    out: dict = {"write_interval_ms": monitor.write_interval * 1000, "poll_interval_ms": monitor.poll_interval * 1000,
                 "window_s": window, "repeats": repeats, "samples": len(frame),
                 "single_sample_quantization_ms": monitor.poll_interval * 1000,
                 "baseline_lag_ms": round(statistics.median(baselines), 2),
                 "baseline_window_medians_p10_p90_ms": [round(deciles[0], 2), round(deciles[-1], 2)]}
    resolution = None
    for step in sorted(steps_ms, reverse=True):      # the smallest step from which all larger resolve
        measured = statistics.median(increases[step]) if increases[step] else float("nan")
        out[f"step_{step}ms_measured_ms"] = round(measured, 2)
        if not abs(measured - step) <= max(1.0, 0.3 * step):
            break
        resolution = step
    out["lag_resolution_ms"] = resolution
    return out
