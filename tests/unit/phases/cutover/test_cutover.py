"""runbook_lib.phases.cutover.steps: scopes, accounts, write counters, the order of the switch and the run's record
(pure parts)."""
from __future__ import annotations

import json

import pytest

from runbook_lib.checks.consistency.comparison import Comparison
from runbook_lib.context.params import parameters_from_mapping
from runbook_lib.core import record as run_record
from runbook_lib.core.errors import ParameterError
from runbook_lib.phases.cutover import checks as cutover_checks
from runbook_lib.phases.cutover import steps as c

CRM = cutover_checks.Account("crm_app", "%")
OPS = cutover_checks.Account("crm_ops", "10.0.%")
BASE = {"environment": "t", "source_host": "db1", "source_admin_user": "dba", "source_admin_password": "env:A",
        "aurora_host": "cl.example", "aurora_admin_password": "env:B", "aurora_cluster_id": "c",
        "aurora_writer_instance": "c-1", "aurora_parameter_group": "g", "s3_bucket": "b",
        "restore_role_arn": "arn:aws:iam::123456789012:role/r", "replication_password": "env:C",
        "app_schemas": ["app_crm", "tenant_acme"],
        "scopes": {"crm": {"schemas": ["app_crm"], "accounts": ["crm_app@%", "crm_ops@10.0.%"]},
                   "acme": {"schemas": ["tenant_acme"], "accounts": []}}}


def states(source: dict, aurora: dict) -> dict:
    return {"source": source, "aurora": aurora}


def test_account_parse_statement_and_matching():
    assert cutover_checks.Account.parse("crm_app@%") == CRM and str(CRM) == "crm_app@%"
    assert cutover_checks.Account.parse("odd@name@10.0.0.1") == cutover_checks.Account("odd@name", "10.0.0.1")
    for bad in ("crm_app", "@%", "crm_app@"):
        with pytest.raises(ParameterError):
            cutover_checks.Account.parse(bad)
    assert str(CRM.statement(True)) == "ALTER USER 'crm_app'@'%' ACCOUNT LOCK"
    assert str(OPS.statement(False)) == "ALTER USER 'crm_ops'@'10.0.%' ACCOUNT UNLOCK"
    assert CRM.matches("crm_app", "192.168.1.5:51234") and CRM.matches("crm_app", "localhost")
    assert not CRM.matches("crm_ops", "127.0.0.1:1")
    assert OPS.matches("crm_ops", "10.0.3.4:999") and not OPS.matches("crm_ops", "10.1.3.4:999")
    assert cutover_checks.Account("a", "db_1").matches("a", "dbx1") and not cutover_checks.Account("a", "db.1").matches("a", "dbx1")


def test_move_for_a_scope_and_a_direction():
    params = parameters_from_mapping(BASE)
    move = cutover_checks.move_for(params, "crm", "cutover")
    assert (move.leaving, move.going, move.step_id) == ("source", "aurora", "cutover:crm")
    assert move.schemas == ("app_crm",) and move.accounts == (CRM, OPS)
    back = cutover_checks.move_for(params, "crm", "fallback")
    assert (back.leaving, back.going, back.step_id) == ("aurora", "source", "fallback:crm")
    assert "from aurora to source" in back.describe()
    with pytest.raises(ParameterError, match="'billing' is not a scope") as e:
        cutover_checks.move_for(params, "billing", "cutover")
    assert "acme, crm" in e.value.hint
    with pytest.raises(ParameterError, match="'cut-over' is not one of cutover, fallback"):
        cutover_checks.move_for(params, "crm", "cut-over")


def test_written_keeps_tables_whose_counters_grew():
    assert cutover_checks.written({"a.t": 5, "a.u": 1}, {"a.t": 7, "a.u": 1, "a.new": 2}) == {"a.t": 2, "a.new": 2}
    assert cutover_checks.written({"a.t": 5}, {"a.t": 5}) == {}
    assert cutover_checks.written(None, {"a.t": 5}) is None


def kinds(actions) -> list[tuple]:
    return [(a.role, a.kind, a.logged, [str(x) for x in a.accounts] if a.kind in ("lock", "unlock", "create")
             else a.wait_for)
            for a in actions]


def test_switch_when_both_sides_keep_statements_to_themselves_locks_the_side_it_leaves_first():
    move = cutover_checks.Move("crm", "cutover", ("app_crm",), (CRM,))
    actions = c.switch_actions(move, states({CRM: False}, {CRM: True}), {"source": True, "aurora": True})
    assert kinds(actions) == [("source", "lock", False, ["crm_app@%"]), ("source", "kill", False, ""),
                              ("aurora", "unlock", False, ["crm_app@%"])]


def test_cutover_to_aurora_runs_aurora_s_replicating_unlock_first_then_locks_the_source_unlogged():
    move = cutover_checks.Move("crm", "cutover", ("app_crm",), (CRM,))
    quiet = {"source": True, "aurora": False}
    actions = c.switch_actions(move, states({CRM: False}, {CRM: True}), quiet)
    assert kinds(actions) == [("aurora", "unlock", True, ["crm_app@%"]), ("source", "wait", False, "aurora"),
                              ("source", "lock", False, ["crm_app@%"]), ("source", "kill", False, "")]
    # already locked on the source: Aurora's unlock would still open it there by replication
    actions = c.switch_actions(move, states({CRM: True}, {CRM: True}), quiet)
    assert kinds(actions)[0] == ("aurora", "unlock", True, ["crm_app@%"])
    assert kinds(actions)[2] == ("source", "lock", False, ["crm_app@%"])
    # open on both (before the first cut-over): only the source changes
    actions = c.switch_actions(move, states({CRM: False}, {CRM: False}), quiet)
    assert kinds(actions) == [("source", "lock", False, ["crm_app@%"]), ("source", "kill", False, "")]


def test_fallback_from_aurora_locks_aurora_first_then_reopens_the_source_unlogged():
    move = cutover_checks.Move("crm", "fallback", ("app_crm",), (CRM, OPS))
    quiet = {"source": True, "aurora": False}
    actions = c.switch_actions(move, states({CRM: True, OPS: True}, {CRM: False, OPS: True}), quiet)
    assert kinds(actions) == [("aurora", "lock", True, ["crm_app@%"]), ("aurora", "kill", False, ""),
                              ("source", "wait", False, "aurora"),
                              ("source", "unlock", False, ["crm_app@%", "crm_ops@10.0.%"])]
    # open on the source already: Aurora's lock replicates there, so the source is opened again
    actions = c.switch_actions(move, states({CRM: False, OPS: False}, {CRM: False, OPS: False}), quiet)
    assert kinds(actions)[-1] == ("source", "unlock", False, ["crm_app@%", "crm_ops@10.0.%"])


def test_a_scope_already_in_place_is_an_empty_switch_unless_sessions_remain():
    move = cutover_checks.Move("crm", "cutover", ("app_crm",), (CRM,))
    done = states({CRM: True}, {CRM: False})
    assert c.switch_actions(move, done, {"source": True, "aurora": False}) == ()
    assert kinds(c.switch_actions(move, done, {"source": True, "aurora": False}, sessions=2)) == [
        ("source", "kill", False, "")]


def test_an_account_missing_on_one_side_is_created_there_locked_first():
    move = cutover_checks.Move("crm", "cutover", ("app_crm",), (CRM,))
    quiet = {"source": True, "aurora": False}
    # a restore from S3 carries no users: crm_app exists on the source only
    actions = c.switch_actions(move, states({CRM: False}, {CRM: None}), quiet)
    assert kinds(actions) == [("aurora", "create", True, ["crm_app@%"]), ("aurora", "unlock", True, ["crm_app@%"]),
                              ("source", "wait", False, "aurora"), ("source", "lock", False, ["crm_app@%"]),
                              ("source", "kill", False, "")]
    assert actions[0].wait_for == "source"            # copied from the side that has it
    back = cutover_checks.Move("crm", "fallback", ("app_crm",), (CRM,))
    actions = c.switch_actions(back, states({CRM: None}, {CRM: False}), quiet)
    assert kinds(actions)[0] == ("source", "create", False, ["crm_app@%"])
    assert kinds(actions)[-1] == ("source", "unlock", False, ["crm_app@%"])


def test_the_run_summary_keeps_how_the_same_data_gate_compared_and_its_seconds(tmp_path, monkeypatch):
    monkeypatch.setenv(run_record.FIGURES_ENV, str(tmp_path))
    move = cutover_checks.Move("crm", "cutover", ("app_crm",), (CRM,))
    gate = Comparison((), ("app_crm",), "", 0.08123, kind="reverify")
    cutover_checks.record(move, "switched", checks=cutover_checks.Checks(move, (), comparison=gate))
    kept = json.loads((tmp_path / "figures" / "cutover.json").read_text())
    assert (kept["same_data_check_kind"], kept["same_data_check_seconds"]) == ("reverify", 0.081)
    failed_early = cutover_checks.Checks(move, ())             # a check before it failed: nothing compared
    assert failed_early.gate_figures() == {"same_data_check_kind": None, "same_data_check_seconds": None}
