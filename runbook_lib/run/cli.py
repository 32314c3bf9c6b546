"""The `runbook` command: the lab's life cycle, and runs of the notebooks."""
from __future__ import annotations

import argparse
import sys

from runbook_lib.core.errors import LabError, RunbookError


def _lab(args: argparse.Namespace) -> int:
    from runbook_lib.lab import control, inspect

    if args.action == "up":
        state = control.up(args.name, port_base=args.port_base, persona_rows=args.rows, aurora=args.aurora)
        if args.write_params:
            print(f"parameters for this lab: {inspect.write_params(state, args.write_params)}")
        print(inspect.status_frame(state).to_string(index=False))
    elif args.action == "status":
        state = control.load_state(args.name)
        print(f"lab {state.name!r}: the stand-in plays Aurora {state.aurora or '3'}")
        print(inspect.status_frame(state).to_string(index=False))
    elif args.action == "down":
        control.down(args.name, destroy=args.destroy)
    elif args.action == "break" and args.fault == "gtid-unsafe":
        from runbook_lib.lab import gtid_drill
        gtid_drill.drill(args.name)
    elif args.action == "break":
        from runbook_lib.lab import drills, faults
        if not args.fault:
            raise LabError("which fault? runbook lab break <fault>", hint=f"faults: {', '.join(faults.FAULTS)}; "
                           f"drills of 01_preflight: {', '.join(drills.DRILLS)}")
        if args.fault in drills.DRILLS:
            drills.drill(args.fault, args.name)
        else:
            faults.break_lab(args.fault, args.name)
    elif args.action == "mend":
        from runbook_lib.lab import drills
        drills.mend(args.name)
    elif args.action == "reset":
        state = control.reset(args.name, port_base=args.port_base, persona_rows=args.rows, aurora=args.aurora)
        print(inspect.status_frame(state).to_string(index=False))
    return 0


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from runbook_lib.run import runner

    result = runner.run(args.params, only=args.only or "", run_dir=Path(args.run_dir) if args.run_dir else None,
                        progress=not args.no_progress)
    if args.upload:
        print(f"uploaded to {runner.upload(result, args.params)}")
    print(f"report:  {result.run_dir / 'report.html'}")
    print(f"summary: {result.run_dir / 'summary.json'}")
    return 0


def _watch(args: argparse.Namespace) -> int:
    from runbook_lib.checks.watch.view import terminal
    from runbook_lib.context import session

    with session.open_session(args.params, [], quiet=True) as rb:
        result = terminal(rb, args.seconds, lag_threshold_s=args.lag_threshold, gtid_gap=args.gtid_gap)
    return 1 if result.episodes() and result.episodes()[-1].end_s is None else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="runbook", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    lab = sub.add_parser("lab", help="the local rehearsal lab (real MySQL servers + AWS API endpoint)")
    lab.add_argument("action", choices=["up", "status", "down", "reset", "break", "mend"])
    lab.add_argument("fault", nargs="?", choices=["conflict", "duplicate-key", "stopped-io", "purged-binlogs",
                                                  "gtid-unsafe", "compressed-table", "page-compressed",
                                                  "outside-datadir", "table-encryption", "percona-tables"],
                     help="with break: the fault to inject (rehearsal of notebook 09_troubleshooting; "
                          "gtid-unsafe: 2 minutes of a GTID-unsafe application for 02_source_binlog), or a drill "
                          "that makes the source fail a check of 01_preflight (mend takes the drills away)")
    lab.add_argument("--name", help="lab instance name (default: $RUNBOOK_LAB_NAME or 'default')")
    lab.add_argument("--port-base", type=int, help="onprem port; aurora +1, AWS endpoint +2 (default 23306)")
    lab.add_argument("--rows", type=int, help="rows of app_crm.persona when the lab is created (default 500000)")
    lab.add_argument("--aurora", choices=["3", "8.4"],
                     help="with up/reset: the Aurora the stand-in plays, Aurora MySQL 3 or 8.4 (default for a new "
                          "lab: the one closest to the lab's MySQL, 8.4 for 9.7); remembered by the lab")
    lab.add_argument("--write-params", metavar="FILE", help="write a parameters file for this lab instance")
    lab.add_argument("--destroy", action="store_true", help="with down: also delete the servers' data")
    lab.set_defaults(func=_lab)
    run = sub.add_parser("run", help="execute the runbook's notebooks in order with papermill")
    run.add_argument("--params", required=True, help="parameters file of the environment (parameters/<env>.yaml)")
    run.add_argument("--only", help="phases to run: 03, 02-05 or 01,03,07-09 (default: all)")
    run.add_argument("--run-dir", help="where run folders go (default: the parameter run_dir, 'runs')")
    run.add_argument("--upload", action="store_true", help="also upload the run folder to report_s3_uri")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.set_defaults(func=_run)
    watch = sub.add_parser("watch", help="live view of both replication directions, refreshed every second")
    watch.add_argument("--params", required=True, help="parameters file of the environment (parameters/<env>.yaml)")
    watch.add_argument("--seconds", type=float, default=60.0, help="how long to watch (default 60, at most 600)")
    watch.add_argument("--lag-threshold", type=float, default=1.0,
                       help="lag in seconds above which a direction turns red (default 1)")
    watch.add_argument("--gtid-gap", type=int, default=1000,
                       help="transactions a replica may lack of its writer's before it turns red (default 1000)")
    watch.set_defaults(func=_watch)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except RunbookError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
