"""Bench section ``checksum``: comparing both sides of one large table three ways.

* ``runbook_lib.checks.consistency.scan.full_check`` (both sides in parallel, time-sized chunks of 0.5 s, each at a
  common GTID point, progress kept in the ledger);
* pt-table-checksum 3.x from the lab's root filesystem (chroot), replicas found through a DSN table
  (``--recursion-method=dsn=...``), credentials from an option file (never on the command line),
  EXPLAIN's format set as on 8.0/8.4 for the run so that it chunks as it would there
  (:func:`_traditional_explain`);
* a bare ``SELECT BIT_XOR(CRC32(CONCAT_WS('#', cols...)))`` over the table on one server: the floor.

Each is timed ``repeats`` times, interleaved (the machine is shared), after one warm-up scan per
server; the medians are compared.  Then one row is changed on aurora with ``sql_log_bin=0`` and
both tools must find it (ours with its key).  The row is put back afterwards.
"""
from __future__ import annotations

import os
import re
import statistics
import subprocess
import time
from pathlib import Path

from bench import ROLES
from runbook_lib.checks.consistency import comparison as consistency
from runbook_lib.checks.consistency import scan
from runbook_lib.core.errors import LabError
from runbook_lib.mysql import sql

TABLE = ("app_crm", "persona")
PT_DSN_TABLE = "percona.runbook_bench_dsns"
PT_TIMEOUT = 600


def _timed(fn) -> tuple[float, object]:
    started = time.monotonic()
    result = fn()
    return time.monotonic() - started, result


class PtTableChecksum:
    """pt-table-checksum inside the lab's rootfs, pointed at onprem with aurora as its replica."""

    def __init__(self, ctx) -> None:
        self.ctx, state = ctx, ctx.state
        self.runner = state.runner()
        inside = "/tmp/runbook-bench-pt.cnf"
        self.option_file = Path(state.rootfs) / inside.lstrip("/") if state.rootfs else Path(inside)
        self.option_file.write_text(f"[client]\nuser=labroot\npassword={state.passwords['labroot']}\n")
        os.chmod(self.option_file, 0o600)
        self.cnf = inside
        self.explain_formats = _traditional_explain(ctx)
        with ctx.server("onprem") as s:
            s.execute("CREATE DATABASE IF NOT EXISTS percona")
            s.execute(f"CREATE TABLE IF NOT EXISTS {PT_DSN_TABLE} (id INT AUTO_INCREMENT PRIMARY KEY, "
                      "parent_id INT NULL, dsn VARCHAR(255) NOT NULL)")
            s.execute(f"DELETE FROM {PT_DSN_TABLE}")
            s.execute(f"INSERT INTO {PT_DSN_TABLE} (dsn) VALUES (%s)",
                      (f"h=127.0.0.1,P={state.aurora_port},F={inside}",))
        ctx.wait_caught_up()

    def run(self) -> dict:
        state = self.ctx.state
        db, table = PT_DSN_TABLE.split(".")
        cmd = self.runner.tool(
            "pt-table-checksum", f"h=127.0.0.1,P={state.onprem_port},F={self.cnf}",
            f"--databases={TABLE[0]}", f"--tables={TABLE[1]}", "--replicate=percona.checksums",
            f"--recursion-method=dsn=h=127.0.0.1,P={state.onprem_port},F={self.cnf},D={db},t={table}",
            "--no-check-binlog-format", "--no-check-replication-filters", "--no-version-check")
        started = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PT_TIMEOUT, stdin=subprocess.DEVNULL,
                              check=False)     # exit status: bit flags (diffs found...); parsed below
        seconds = time.monotonic() - started
        m = re.search(r"^\S+\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+app_crm\.persona\s*$",
                      proc.stdout, re.MULTILINE)
        if not m:
            raise LabError(f"pt-table-checksum said nothing about {'.'.join(TABLE)} (exit "
                               f"{proc.returncode}): {proc.stdout[-400:]} {proc.stderr[-800:]}")
        errors, diffs, rows, _, chunks, _, own_time = m.groups()
        return {"seconds": seconds, "errors": int(errors), "diffs": int(diffs), "rows": int(rows),
                "chunks": int(chunks), "own_time": float(own_time)}

    def close(self) -> None:
        self.option_file.unlink(missing_ok=True)
        for side, value in self.explain_formats.items():
            with self.ctx.server(side) as s:
                s.execute("SET GLOBAL explain_format = %s", (value,))


def _traditional_explain(ctx) -> dict[str, str]:
    """Make EXPLAIN print its traditional table on both servers, as MySQL 8.0 and 8.4 do by default
    (``explain_format``, 8.0.32+: TRADITIONAL); the formats it replaced, to put back.

    pt-table-checksum 3.7.1 sizes its first chunk from the ``rows`` column of ``EXPLAIN SELECT * FROM
    tbl``.  The lab's MySQL 9.7.4 prints the tree format (``@@global.explain_format`` is TREE there),
    which has no such column: pt then reads 0 rows and checksums the whole table in one chunk, one
    ``REPLACE ... SELECT`` that locks every row, as it never would on a production 8.0 or 8.4 server.
    Measured on the 10M-row table: 26.3 s in one chunk, 22.8 s in 38 time-sized chunks."""
    before = {}
    for side in ROLES:
        with ctx.server(side) as s:
            value = s.scalar("SELECT @@global.explain_format")
            if str(value).upper() != "TRADITIONAL":
                s.execute("SET GLOBAL explain_format = 'TRADITIONAL'")
                before[side] = str(value)
    return before


def run(ctx, repeats: int = 3) -> dict:
    source, aurora = ctx.server("onprem"), ctx.server("aurora")
    pt = PtTableChecksum(ctx)
    try:
        columns = [c.name for c in consistency.read_shapes(source, [TABLE[0]])[".".join(TABLE)][0].columns]
        bare = (f"SELECT BIT_XOR(CRC32(CONCAT_WS('#', {', '.join(sql.q(c) for c in columns)}))) AS x "
                f"FROM {TABLE[0]}.{TABLE[1]}")
        for server in (source, aurora):
            server.execute(f"ANALYZE LOCAL TABLE {TABLE[0]}.{TABLE[1]}")   # real row estimates for pt's chunking
            server.scalar(bare)                         # warm both buffer pools
        def ours():
            return scan.full_check(source, aurora, [TABLE[0]], tables=[".".join(TABLE)], mode="fresh",
                                   progress=False)
        times: dict[str, list[float]] = {"bare": [], "ours": [], "pt": []}
        rows = chunks = 0
        for _ in range(repeats):
            times["bare"].append(_timed(lambda: source.scalar(bare))[0])
            seconds, result = _timed(ours)
            times["ours"].append(seconds)
            rows, chunks = result.tables[0].source_rows, result.tables[0].chunks
            if not result.ok:
                raise LabError(f"the sides differ before the bench changed anything: {result.to_frame()}")
            pt_result = pt.run()
            times["pt"].append(pt_result["seconds"])
        found = _one_row_changed(ctx, source, aurora, ours, pt)
        med = {k: statistics.median(v) for k, v in times.items()}
        return {"table": ".".join(TABLE), "rows": rows, "chunks": chunks, "repeats": repeats,
                "bare_scan_s": round(med["bare"], 3), "ours_s": round(med["ours"], 3),
                "pt_table_checksum_s": round(med["pt"], 3), "pt_own_time_s": pt_result["own_time"],
                "pt_chunks": pt_result["chunks"], "pt_explain_format_set": ",".join(sorted(pt.explain_formats)) or "none",
                "checksum_speedup_vs_pt_table_checksum": round(med["pt"] / med["ours"], 2),
                "checksum_vs_bare_scan_ratio": round(med["ours"] / med["bare"], 2),
                "ours_rows_per_s": round(rows / med["ours"]), "bare_rows_per_s": round(rows / med["bare"]),
                "all_bare_s": [round(t, 3) for t in times["bare"]], "all_ours_s": [round(t, 3) for t in times["ours"]],
                "all_pt_s": [round(t, 3) for t in times["pt"]], **found}
    finally:
        pt.close()
        source.close()
        aurora.close()


def _one_row_changed(ctx, source, aurora, ours, pt) -> dict:
    """Change one row on aurora, unlogged; both tools must report it; then put it back."""
    key = 424_242
    aurora.execute("SET SESSION sql_log_bin = 0")
    try:
        aurora.execute(f"UPDATE {TABLE[0]}.{TABLE[1]} SET score = score + 1 WHERE id = %s", (key,))
        result = ours()
        pt_result = pt.run()
    finally:
        aurora.execute(f"UPDATE {TABLE[0]}.{TABLE[1]} SET score = score - 1 WHERE id = %s", (key,))
        aurora.execute("SET SESSION sql_log_bin = 1")
    ranges = result.ranges_frame()
    return {"changed_row_found_by_ours": bool(len(ranges) == 1 and ranges["first_key"][0] == str(key)
                                               and ranges["last_key"][0] == str(key)),
            "changed_row_key_reported": "; ".join(f"{r.first}..{r.last}" for t in result.tables for r in t.ranges),
            "changed_row_found_by_pt_table_checksum": pt_result["diffs"] == 1}
