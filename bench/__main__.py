"""``python -m bench`` (``make bench``): run the sections of :data:`bench.SECTIONS` on one lab.

The lab instance is the bench's own (name ``bench``, port base 26306, 1,000,000 persona rows by
default; ``RUNBOOK_LAB_ROWS`` or ``--rows`` change it), built fresh with two-way replication
(:func:`bench.replicated_lab`), its two servers' buffer pools grown to hold ``app_crm``
(:func:`bench.hold_in_buffer_pool`, recorded as ``buffer_pool_mb``), and destroyed at the end unless ``--keep``.  Prints one table
(section, key, value) and writes ``bench/results/<UTC timestamp>.json``.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from bench import SECTIONS, env_int, hold_in_buffer_pool, replicated_lab, take_down

RESULTS = Path(__file__).resolve().parent / "results"


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default=",".join(_short(s) for s in SECTIONS),
                        help=f"comma-separated, in order (default: {','.join(_short(s) for s in SECTIONS)})")
    parser.add_argument("--rows", type=int, default=env_int("RUNBOOK_LAB_ROWS", 1_000_000),
                        help="rows of app_crm.persona")
    parser.add_argument("--name", default="bench", help="lab instance name")
    parser.add_argument("--port-base", type=int, default=env_int("RUNBOOK_BENCH_PORT_BASE", 26306))
    parser.add_argument("--reuse", action="store_true", help="use the bench lab as it is if it exists")
    parser.add_argument("--keep", action="store_true", help="leave the bench lab up afterwards")
    args = parser.parse_args(argv)
    known = {_short(s): s for s in SECTIONS}
    chosen = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in known]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; known: {', '.join(known)}")

    started = datetime.now(timezone.utc)
    report: dict = {"started": started.isoformat(), "host": platform.node(), "cpus": os.cpu_count(),
                    "load_average_before": os.getloadavg(), "rows": args.rows, "lab": args.name, "sections": {}}
    ctx = replicated_lab(args.name, args.port_base, args.rows, fresh=not args.reuse)
    failed = False
    try:
        report["buffer_pool_mb"] = hold_in_buffer_pool(ctx)
        for name in chosen:
            print(f"--- {name} ...", flush=True)
            t0 = time.monotonic()
            try:
                result = importlib.import_module(known[name]).run(ctx)
            except Exception:  # noqa: BLE001 - one failed section must not hide the others' numbers
                failed = True
                result = {"error": traceback.format_exc(limit=5)}
                print(result["error"], file=sys.stderr)
            result["section_seconds"] = round(time.monotonic() - t0, 1)
            report["sections"][name] = result
    finally:
        report["load_average_after"] = os.getloadavg()
        if not args.keep:
            take_down(ctx)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    _print_table(report)
    print(f"written: {out}")
    return 1 if failed else 0


def _print_table(report: dict) -> None:
    rows = [(section, key, value) for section, values in report["sections"].items()
            for key, value in values.items() if key != "error"]
    width = max((len(k) for _, k, _ in rows), default=10)
    print(f"\n{'section':10s} {'key':{width}s} value")
    for section, key, value in rows:
        print(f"{section:10s} {key:{width}s} {value}")
    print(f"rows={report['rows']:,} cpus={report['cpus']} load before={report['load_average_before']}")


if __name__ == "__main__":
    sys.exit(main())
