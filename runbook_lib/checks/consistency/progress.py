"""The progress line of a long consistency check: one tqdm bar over all tables' rows (overall rows/s and
ETA), its label the current table with that table's share, rows/s and ETA, and why the check waits
when the throttle holds it.  Text on stdout, refreshed at most once a second (``mininterval``), as the
runbook's other long waits do: JupyterLab shows it as one line that updates in place, and an executed
notebook of ``runbook run`` keeps the updates in its output.
"""
from __future__ import annotations

import sys
import time

TABLE_WIDTH = 40


class Progress:
    """Rows done of ``total`` (the tables' estimated rows); ``enabled`` False: silent."""

    def __init__(self, total: int, tables: int, *, enabled: bool = True, mininterval: float = 1.0) -> None:
        self.bar = None
        self.tables, self.table_no = tables, 0
        self.table, self.table_total, self.table_done, self.table_started = "", 0, 0, time.monotonic()
        self.waiting = ""
        if enabled:
            from tqdm import tqdm
            self.bar = tqdm(total=max(total, 1), unit="row", unit_scale=True, file=sys.stdout,
                            mininterval=mininterval, desc="consistency", dynamic_ncols=False, ncols=150)

    def start_table(self, name: str, estimated_rows: int) -> None:
        self.table_no += 1
        self.table, self.table_total, self.table_done = name, max(estimated_rows, 1), 0
        self.table_started = time.monotonic()
        self._label()

    def rows(self, n: int) -> None:
        self.table_done += n
        if self.bar is not None:
            if self.bar.n + n > self.bar.total:         # estimates are estimates
                self.bar.total = self.bar.n + n
            self.bar.update(n)
        self._label()

    def wait(self, reason: str) -> None:
        """Show why the check waits ('' when it goes on again)."""
        if reason != self.waiting:
            self.waiting = reason
            self._label(refresh=True)

    def table_text(self) -> str:
        """'app_crm.persona 3/12 45% 812k rows/s ETA 0:00:12' for the current table."""
        elapsed = max(time.monotonic() - self.table_started, 1e-6)
        rate = self.table_done / elapsed
        left = max(self.table_total - self.table_done, 0) / rate if rate > 0 else 0.0
        share = min(100, round(100 * self.table_done / self.table_total))
        return (f"{self.table[-TABLE_WIDTH:]} {self.table_no}/{self.tables} {share}% {rate / 1000:,.0f}k rows/s "
                f"ETA {time.strftime('%H:%M:%S', time.gmtime(left))}")

    def _label(self, refresh: bool = False) -> None:
        if self.bar is None:
            return
        text = self.table_text() + (f" | {self.waiting}" if self.waiting else "")
        self.bar.set_postfix_str(text, refresh=refresh)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
