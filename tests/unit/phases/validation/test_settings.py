"""runbook_lib.phases.validation.settings: how a failed row names the side and value that drifted."""
from __future__ import annotations

from runbook_lib.core.display import CheckResult
from runbook_lib.phases.validation.settings import failure_text


def test_a_failed_row_names_the_side_that_drifted_and_its_value():
    row = CheckResult("binlog_format", "STATEMENT (wanted ROW)", "ROW", "fail", "...")
    assert failure_text(row) == "binlog_format (source: STATEMENT (wanted ROW))"
    both = CheckResult("auto_increment_offset", "1 (wanted 2)", "2 (wanted 1)", "fail")
    assert failure_text(both) == "auto_increment_offset (source: 1 (wanted 2); aurora: 2 (wanted 1))"
    channel = CheckResult("replication aurora → source: what the channel reports", "IO Yes, SQL No; error 1666", "",
                          "fail")
    assert failure_text(channel).endswith("(source: IO Yes, SQL No; error 1666)")
