"""runbook_lib.run.cli: the `runbook lab` arguments for the faults and the preflight drills."""
from __future__ import annotations

import pytest

from runbook_lib.lab.drills import DRILLS
from runbook_lib.lab.faults import FAULTS
from runbook_lib.run.cli import build_parser


def test_break_takes_every_fault_and_drill_and_mend_takes_them_away():
    parser = build_parser()
    for name in (*FAULTS, *DRILLS):
        args = parser.parse_args(["lab", "break", name, "--name", "x"])
        assert (args.action, args.fault, args.name) == ("break", name, "x")
    assert parser.parse_args(["lab", "mend"]).action == "mend"
    with pytest.raises(SystemExit):
        parser.parse_args(["lab", "break", "no-such-drill"])
