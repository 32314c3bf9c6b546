"""runbook_lib.phases.source_binlog.steps: planning (current settings -> plan) for 5.7, 8.0 and 8.4+, without servers."""
from __future__ import annotations

import pytest

from runbook_lib.core.errors import UnsupportedServer
from runbook_lib.mysql.dialect import dialect_for
from runbook_lib.mysql.identity import Flavor, ServerIdentity
from runbook_lib.phases.source_binlog.steps import STEP_ID, Wanted, plan_settings, retention_seconds

WANTED = Wanted(server_id=1, auto_increment_increment=2, auto_increment_offset=2,
                binlog_expire_seconds=604800)


def identity(version: tuple[int, int, int], flavor: Flavor, aurora: str = "") -> ServerIdentity:
    return ServerIdentity(version, ".".join(map(str, version)), "", flavor, aurora, 1, "u")


MYSQL57 = identity((5, 7, 44), Flavor.MYSQL57)
MYSQL80 = identity((8, 0, 36), Flavor.MYSQL80)
MYSQL97 = identity((9, 7, 4), Flavor.MYSQL84_PLUS)

UNPREPARED_80 = {"server_id": "1", "log_bin": "ON", "binlog_format": "ROW", "sync_binlog": "1",
                 "log_bin_trust_function_creators": "OFF", "auto_increment_increment": "1",
                 "auto_increment_offset": "1", "binlog_expire_logs_seconds": "14400",
                 "expire_logs_days": None, "enforce_gtid_consistency": "OFF", "gtid_mode": "OFF"}
PREPARED_80 = {**UNPREPARED_80, "log_bin_trust_function_creators": "ON", "auto_increment_increment": "2",
               "auto_increment_offset": "2", "binlog_expire_logs_seconds": "604800",
               "enforce_gtid_consistency": "ON", "gtid_mode": "ON"}
UNPREPARED_57 = {"server_id": "1", "log_bin": "ON", "binlog_format": "MIXED", "sync_binlog": "0",
                 "log_bin_trust_function_creators": "OFF", "auto_increment_increment": "1",
                 "auto_increment_offset": "1", "binlog_expire_logs_seconds": None, "expire_logs_days": "1",
                 "enforce_gtid_consistency": "OFF", "gtid_mode": "OFF"}


def statements(plan) -> list[str]:
    return ["WAIT" if a.sql is None else a.sql.shown() for a in plan.actions]


@pytest.mark.parametrize("ident", [MYSQL80, MYSQL97], ids=["8.0", "9.7"])
def test_unprepared_80_and_later_go_online_with_set_persist_and_the_gtid_sequence(ident):
    plan = plan_settings(ident, UNPREPARED_80, WANTED)
    assert statements(plan) == [
        "SET PERSIST log_bin_trust_function_creators = 'ON'",
        "SET PERSIST auto_increment_increment = 2",
        "SET PERSIST auto_increment_offset = 2",
        "SET PERSIST binlog_expire_logs_seconds = 604800",
        "SET PERSIST enforce_gtid_consistency = 'WARN'",
        "SET PERSIST enforce_gtid_consistency = 'ON'",
        "SET PERSIST gtid_mode = 'OFF_PERMISSIVE'",
        "SET PERSIST gtid_mode = 'ON_PERMISSIVE'",
        "WAIT",
        "SET PERSIST gtid_mode = 'ON'",
    ]
    assert not plan.restart and not plan.option_lines and not plan.ok
    frame = plan.to_frame()
    assert list(frame.columns) == ["setting", "current", "wanted", "how", "ok"]
    rows = frame.set_index("setting")
    assert rows.loc["gtid_mode", "how"] == "online, step by step"
    assert rows.loc["auto_increment_offset", "how"] == "online"
    assert rows.loc["server_id", "ok"] == "✔" and rows.loc["gtid_mode", "ok"] == "✖"
    assert plan.pending == ("log_bin_trust_function_creators", "auto_increment_increment",
                            "auto_increment_offset", "binlog_expire_logs_seconds", "enforce_gtid_consistency",
                            "gtid_mode")


def test_the_approvable_plan_has_the_step_id_each_statement_and_its_undo():
    plan = plan_settings(MYSQL80, UNPREPARED_80, WANTED, target="source onprem h:1",
                         wait_seconds=30).to_plan()
    assert plan.step_id == STEP_ID == "source_binlog"
    frame = plan.to_frame()
    assert list(frame["target"].unique()) == ["source onprem h:1"]
    assert "SET PERSIST auto_increment_increment = 1" in list(frame["undo"])
    wait = frame[frame["action"] == "wait"].iloc[0]
    assert "Ongoing_anonymous_transaction_count = 0" in wait["detail"] and "30 s" in wait["detail"]
    assert frame.iloc[-1]["detail"] == "SET PERSIST gtid_mode = 'ON'"


def test_a_prepared_server_plans_nothing():
    plan = plan_settings(MYSQL97, PREPARED_80, WANTED)
    assert plan.ok and not plan.actions and plan.to_plan().is_empty
    assert plan.verdict() == "PASS: source binary log: all 10 settings as wanted"
    assert set(plan.to_frame()["how"]) == {""}


def test_gtids_resume_where_they_stopped():
    half = {**PREPARED_80, "gtid_mode": "ON_PERMISSIVE"}
    assert statements(plan_settings(MYSQL80, half, WANTED)) == ["WAIT", "SET PERSIST gtid_mode = 'ON'"]
    warn = {**UNPREPARED_80, "enforce_gtid_consistency": "WARN", "gtid_mode": "OFF_PERMISSIVE"}
    assert [s for s in statements(plan_settings(MYSQL80, warn, WANTED)) if "gtid" in s or s == "WAIT"] == [
        "SET PERSIST enforce_gtid_consistency = 'ON'", "SET PERSIST gtid_mode = 'ON_PERMISSIVE'", "WAIT",
        "SET PERSIST gtid_mode = 'ON'"]


def test_57_changes_online_with_set_global_and_asks_for_the_same_in_mycnf():
    plan = plan_settings(MYSQL57, UNPREPARED_57, WANTED)
    out = statements(plan)
    assert all(s.startswith("SET GLOBAL") or s == "WAIT" for s in out)
    assert "SET GLOBAL binlog_format = 'ROW'" in out and "SET GLOBAL sync_binlog = 1" in out
    assert "SET GLOBAL expire_logs_days = 7" in out          # 604800 s = 7 days, rounded up
    assert out[-3:] == ["SET GLOBAL gtid_mode = 'ON_PERMISSIVE'", "WAIT", "SET GLOBAL gtid_mode = 'ON'"]
    assert set(plan.to_frame().set_index("setting").loc[["binlog_format", "gtid_mode"], "how"]) == {
        "online + my.cnf"}
    assert "expire_logs_days = 7" in plan.option_lines and "gtid_mode = ON" in plan.option_lines
    assert not plan.restart


def test_57_without_binary_log_is_one_restart_with_the_blogs_option_lines():
    no_binlog = {**UNPREPARED_57, "log_bin": "OFF"}
    plan = plan_settings(MYSQL57, no_binlog, WANTED)
    assert plan.actions == ()                               # nothing online: the restart does it all
    assert "log_bin" in plan.restart and "gtid_mode" in plan.restart
    assert set(plan.to_frame().query("ok == '✖'")["how"]) == {"restart"}
    assert plan.option_lines[:3] == ("[mysqld]", "server-id = 1", "log-bin = mysql-bin")
    assert "auto_increment_offset = 2" in plan.option_lines
    assert plan.to_plan().is_empty                          # the gate says: no online change to make


def test_80_without_binary_log_goes_online_for_the_rest_and_restarts_for_log_bin():
    plan = plan_settings(MYSQL80, {**UNPREPARED_80, "log_bin": "OFF"}, WANTED)
    assert plan.restart == ("log_bin",)
    assert "SET PERSIST gtid_mode = 'ON'" in statements(plan)
    assert plan.to_frame().set_index("setting").loc["log_bin", "how"] == "restart"
    notes = plan.to_plan().notes
    assert "log_bin needs a restart" in notes and "log-bin = mysql-bin" in notes


def test_retention_rules():
    never = {**PREPARED_80, "binlog_expire_logs_seconds": "0"}
    assert plan_settings(MYSQL80, never, WANTED).ok                      # never purged is long enough
    keep_all = Wanted(1, 2, 2, 0)
    assert statements(plan_settings(MYSQL80, PREPARED_80, keep_all)) == [
        "SET PERSIST binlog_expire_logs_seconds = 0"]
    longer = {**PREPARED_80, "binlog_expire_logs_seconds": "2592000"}
    assert plan_settings(MYSQL80, longer, WANTED).ok                     # longer than wanted is fine
    old_days = {**PREPARED_80, "binlog_expire_logs_seconds": "0", "expire_logs_days": "1"}
    assert statements(plan_settings(MYSQL80, old_days, WANTED)) == [
        "SET PERSIST expire_logs_days = 0", "SET PERSIST binlog_expire_logs_seconds = 604800"]
    assert retention_seconds({"binlog_expire_logs_seconds": None, "expire_logs_days": "2"}) == 172800
    assert retention_seconds({"binlog_expire_logs_seconds": "0", "expire_logs_days": "0"}) == 0


def test_server_id_and_numeric_values_as_mysql_prints_them():
    other = {**PREPARED_80, "server_id": "7", "log_bin": "1", "enforce_gtid_consistency": "1"}
    plan = plan_settings(MYSQL80, other, WANTED)
    assert statements(plan) == ["SET PERSIST server_id = 1"]
    assert plan.actions[0].undo == "SET PERSIST server_id = 7"


def test_dialect_spells_settings_per_version_and_refuses_aurora():
    assert str(dialect_for(MYSQL80).set_global("gtid_mode", "ON")) == "SET PERSIST gtid_mode = 'ON'"
    assert str(dialect_for(MYSQL57).set_global("gtid_mode", "ON")) == "SET GLOBAL gtid_mode = 'ON'"
    assert dialect_for(MYSQL57).binlog_expire_variable == "expire_logs_days"
    assert dialect_for(MYSQL97).binlog_expire_variable == "binlog_expire_logs_seconds"
    aurora = identity((8, 0, 36), Flavor.AURORA3, "3.08.0")
    with pytest.raises(UnsupportedServer, match="parameter group"):
        dialect_for(aurora).set_global("gtid_mode", "ON")
    with pytest.raises(Exception, match="not a system variable"):
        dialect_for(MYSQL80).set_global("gtid_mode; DROP", "ON")
