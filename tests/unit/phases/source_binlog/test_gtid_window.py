"""runbook_lib.phases.source_binlog.gtid_window and the WARN window in phase 2's plan, without servers.

The log lines are MySQL 9.7.4's own (the lab's onprem, performance_schema.error_log, a MyISAM and an
InnoDB table updated in one transaction at enforce_gtid_consistency=WARN), and the 5.7 form of the same."""
from __future__ import annotations

import pytest

from runbook_lib.core.errors import CheckFailed
from runbook_lib.mysql.dialect import dialect_for
from runbook_lib.mysql.identity import Flavor
from runbook_lib.phases.source_binlog.gtid_window import (
    UnsafeStatement,
    WindowResult,
    parse_log_lines,
    require_none,
)
from runbook_lib.phases.source_binlog.steps import plan_settings
from tests.unit.phases.source_binlog.test_source_binlog import (
    MYSQL57,
    MYSQL80,
    MYSQL97,
    UNPREPARED_80,
    WANTED,
    identity,
)

UNSAFE_97 = ("Statement violates GTID consistency: Updates to non-transactional tables can only be done in either "
             "autocommitted statements or single-statement transactions, and never in the same statement as "
             "updates to transactional tables.")
LOG_97 = f"""2026-12-06T06:25:55.321175Z 0 [System] [MY-010931] [Server] /usr/sbin/mysqld: ready for connections.
2026-12-06T06:26:03.192540Z 14 [Warning] [MY-015142] [Server] Combining the storage engines MyISAM and InnoDB is deprecated
2026-12-06T06:26:11.175530Z 16 [Warning] [MY-013098] [Server] {UNSAFE_97}
"""
LOG_57 = ("2026-12-06T06:26:11.175530Z 16 [Warning] Statement violates GTID consistency: CREATE TABLE ... SELECT.\n"
          "2026-12-06T06:26:12.000000Z 17 [Note] Aborted connection 17 to db: 'app'\n")


def test_the_error_log_lines_of_97_and_57_give_the_unsafe_statements_only():
    assert parse_log_lines(LOG_97) == [UnsafeStatement("2026-12-06T06:26:11.175530Z", 16, "MY-013098", UNSAFE_97)]
    assert parse_log_lines(LOG_57) == [UnsafeStatement("2026-12-06T06:26:11.175530Z", 16, "",
                                                       "Statement violates GTID consistency: CREATE TABLE ... SELECT.")]


def test_the_error_log_table_is_read_from_8022_on_and_the_file_before():
    assert dialect_for(MYSQL97).gtid_unsafe_logged("2026-12-06 06:26:00").text.startswith(
        "SELECT LOGGED, THREAD_ID, ERROR_CODE, DATA FROM performance_schema.error_log")
    assert dialect_for(identity((8, 0, 22), Flavor.MYSQL80)).gtid_unsafe_logged("x") is not None
    assert dialect_for(identity((8, 0, 21), Flavor.MYSQL80)).gtid_unsafe_logged("x") is None
    assert dialect_for(MYSQL57).gtid_unsafe_logged("x") is None


@pytest.mark.parametrize("ident", [MYSQL80, MYSQL97], ids=["8.0", "9.7"])
def test_the_plan_holds_warn_for_the_window_before_on(ident):
    plan = plan_settings(ident, UNPREPARED_80, WANTED, observe_seconds=600)
    kinds = ["OBSERVE" if a.observe_seconds else "WAIT" if a.sql is None else a.sql.shown() for a in plan.actions]
    warn = kinds.index("SET PERSIST enforce_gtid_consistency = 'WARN'")
    assert kinds[warn + 1:warn + 3] == ["OBSERVE", "SET PERSIST enforce_gtid_consistency = 'ON'"]
    assert kinds.count("OBSERVE") == 1 and plan.observe_seconds == 600
    step = plan.to_plan().steps[warn + 1]
    assert step.action == "observe" and "WARN for 600 s" in step.detail and "stop at WARN" in step.detail


def test_a_source_left_at_warn_gets_a_new_window_and_none_without_one():
    at_warn = {**UNPREPARED_80, "enforce_gtid_consistency": "WARN"}
    plan = plan_settings(MYSQL97, at_warn, WANTED, observe_seconds=5)
    assert [a.observe_seconds for a in plan.actions if a.sql is None][0] == 5
    assert plan.actions[[a.observe_seconds for a in plan.actions].index(5) + 1].sql.shown() == \
        "SET PERSIST enforce_gtid_consistency = 'ON'"
    assert not any(a.observe_seconds for a in plan_settings(MYSQL97, at_warn, WANTED).actions)
    on = {**UNPREPARED_80, "enforce_gtid_consistency": "ON"}
    assert not any(a.observe_seconds for a in plan_settings(MYSQL97, on, WANTED, observe_seconds=5).actions)


def test_unsafe_statements_stop_the_phase_at_warn_naming_each():
    found = UnsafeStatement("2026-12-06 06:26:11.175530", 16, "MY-013098", UNSAFE_97, "crm_app@10.0.0.5",
                            "INSERT INTO app_crm.audit_myisam (note) VALUES ('y')")
    with pytest.raises(CheckFailed) as caught:
        require_none(WindowResult(3, "performance_schema.error_log", (found,)))
    text = str(caught.value)
    assert "enforce_gtid_consistency stays WARN" in text and "1 check(s) failed" in text
    assert "connection 16 (crm_app@10.0.0.5): INSERT INTO app_crm.audit_myisam" in text
    assert "Updates to non-transactional tables" in text and "run this phase again" in text
    require_none(WindowResult(3, "performance_schema.error_log"))       # nothing found: goes on
