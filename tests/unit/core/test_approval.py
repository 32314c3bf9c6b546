"""runbook_lib.core.approval: plans, approvals, the gate and its Apply button (and Session's gate)."""
from __future__ import annotations

import dataclasses

import pytest

from runbook_lib.context.session import open_session
from runbook_lib.core import approval
from runbook_lib.core.approval import Approvals, Gate, Outcome, Plan, Step, skipped_message
from runbook_lib.core.errors import NotApproved, ParameterError, RunbookError
from runbook_lib.core.redact import MASK, Redactor
from tests.support import REPO

LAB = REPO / "parameters" / "lab.yaml"
SCOPES = {"crm": {"schemas": ["app_crm"]}, "billing": {"schemas": ["app_billing"]}}


def plan(step_id: str = "backup", n: int = 2) -> Plan:
    steps = [Step(target="source 127.0.0.1:23306", action=f"change {i}", detail=f"SET PERSIST x={i}",
                  reversible=True, undo=f"SET PERSIST x={i - 1}") for i in range(1, n + 1)]
    return Plan(step_id, "Back up the source", steps, notes="takes a minute")


class Recorder:
    def __init__(self, result="done", fail: int = 0) -> None:
        self.calls, self.result, self.fail = 0, result, fail

    def __call__(self):
        self.calls += 1
        if self.calls <= self.fail:
            raise RunbookError("the server said no")
        return self.result


# --- Step and Plan --------------------------------------------------------------------------

def test_plan_is_a_frozen_value_with_a_table():
    p = plan()
    assert isinstance(p.steps, tuple) and not p.is_empty and Plan("backup", "t").is_empty
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.title = "x"  # type: ignore[misc]
    frame = p.to_frame()
    assert list(frame.columns) == ["#", "target", "action", "detail", "undo"]
    assert list(frame["#"]) == [1, 2] and frame.loc[1, "undo"] == "SET PERSIST x=1"


def test_irreversible_steps_say_so():
    p = Plan("restore", "Restore", [Step("AWS RDS", "restore cluster", "RestoreDBClusterFromS3(...)"),
                                    Step("AWS RDS", "x", "y", reversible=False, undo="delete the cluster")])
    assert list(p.to_frame()["undo"]) == ["not reversible", "not reversible: delete the cluster"]


def test_plan_table_masks_known_secrets():
    Redactor.default().register("Plan-Secret-9", "replication_password")
    p = Plan("replication_users", "Users", [Step("aurora", "create user", "IDENTIFIED BY 'Plan-Secret-9'")])
    assert p.to_frame().loc[0, "detail"] == f"IDENTIFIED BY '{MASK}'"


@pytest.mark.parametrize("step_id", ["bakup", "cutover", "cutover:", "cleanup:*", "fix:a b"])
def test_plan_needs_a_valid_step_id(step_id):
    with pytest.raises(RunbookError, match="invalid plan"):
        Plan(step_id, "t")


# --- Approvals ------------------------------------------------------------------------------

def test_approvals_from_list_and_comma_string():
    a = Approvals.build("backup, restore,", ["replication", "cutover:crm"], scopes=SCOPES)
    assert a.from_notebook == {"backup", "restore"}
    assert a.all == {"backup", "restore", "replication", "cutover:crm"}
    assert a.approved("restore") and a.approved("cutover:crm")
    assert not a.approved("cutover:billing") and not a.approved("restore_x") and not a.approved("fix:x")
    assert a.why("backup") == "approve: backup"
    assert a.why("replication") == "approvals in the parameters file: replication"
    assert Approvals.build(None, ()).all == frozenset()


def test_cleanup_wildcard_covers_cleanup_steps_only():
    a = Approvals.build(["cleanup:*"])
    assert a.approved("cleanup:parameter_group") and a.approved("cleanup:s3")
    assert not a.approved("cleanup") and not a.approved("cutover:crm")


@pytest.mark.parametrize("approve, match", [
    (["cutover:*"], "approved by name"),
    (["fix:*"], "approved by name"),
    ("*", "not a step id"),
    (["restores"], "did you mean restore"),
    (["cutover:payroll"], "names no scope"),
    (3, "expected a list of step ids"),
    ([1, 2], "expected a list of step ids"),
])
def test_bad_approvals_are_refused(approve, match):
    with pytest.raises(ParameterError, match=match) as e:
        Approvals.build(approve, scopes=SCOPES)
    assert e.value.name == "approve"


# --- Gate.apply -----------------------------------------------------------------------------

def test_empty_plan_needs_no_approval_and_calls_nothing(capsys):
    fn = Recorder()
    out = Gate(Approvals()).apply(Plan("backup", "Back up"), fn)
    assert (out.status, out.step_id, fn.calls) == ("nothing to do", "backup", 0)
    assert out.ok and out.require() is out
    assert "nothing to do" in capsys.readouterr().out


def test_approved_plan_is_shown_then_applied(capsys):
    fn = Recorder(result="3 rows")
    gate = Gate(Approvals.build(["backup"]))
    out = gate.apply(plan(), fn)
    assert (out.status, out.result, fn.calls) == ("applied", "3 rows", 1) and out.seconds >= 0
    text = capsys.readouterr().out
    order = [text.index(s) for s in ("PLAN backup", "SET PERSIST x=2", "APPROVED (approve: backup)")]
    assert order == sorted(order)
    assert "APPLIED: step 'backup'" in text and "3 rows" in text
    assert gate.log == [out]


def test_unapproved_plan_is_shown_and_skipped(capsys):
    fn = Recorder()
    out = Gate(Approvals.build(["restore"])).apply(plan(), fn)
    assert (out.status, fn.calls, out.ok) == ("skipped", 0, False)
    text = capsys.readouterr().out
    assert "SET PERSIST x=1" in text
    assert ("SKIPPED: step 'backup' not approved — nothing was changed. Click Apply below, or run "
            "headless with approve=['backup'].") in text
    with pytest.raises(NotApproved, match="'backup' was not approved"):
        out.require()


def test_errors_of_the_apply_function_propagate():
    with pytest.raises(RunbookError, match="the server said no"):
        Gate(Approvals.build(["backup"])).apply(plan(), Recorder(fail=1))


def test_outcome_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Outcome("applied", "backup").status = "skipped"  # type: ignore[misc]


# --- the Apply button -----------------------------------------------------------------------

def test_in_a_notebook_the_skip_displays_an_apply_button(monkeypatch, capsys):
    shown = []
    monkeypatch.setattr(approval, "in_ipython", lambda: True)
    monkeypatch.setattr(approval, "show", shown.append)
    fn = Recorder()
    out = Gate(Approvals()).apply(plan(), fn)
    assert out.status == "skipped" and fn.calls == 0
    box = shown[-1]
    assert box.children[0].description == "Apply backup"
    assert skipped_message("backup") in capsys.readouterr().out


def test_button_applies_once_and_stays_disabled():
    gate = Gate(Approvals())
    fn = Recorder(result=None)
    box = gate.button_for(plan(), fn)
    button, output = box.children
    button.click()
    button.click()
    assert fn.calls == 1 and button.disabled and button.description == "Applied backup ✔"
    assert [o.status for o in gate.log] == ["applied"]
    assert "APPLIED: step 'backup'" in output.outputs[0]["text"]


def test_button_shows_a_failure_and_allows_a_retry():
    gate = Gate(Approvals())
    fn = Recorder(fail=1)
    button, output = gate.button_for(plan(), fn).children
    button.click()
    assert fn.calls == 1 and not button.disabled and "failed" in button.description
    assert output.outputs[0]["name"] == "stderr" and "FAILED: the server said no" in output.outputs[0]["text"]
    assert gate.log == []
    button.click()
    assert fn.calls == 2 and button.disabled and gate.log[0].result == "done"


def test_button_failure_text_of_an_unexpected_error_names_its_type():
    def boom():
        raise ValueError("bad value")
    button, output = Gate(Approvals()).button_for(plan(), boom).children
    button.click()
    assert output.outputs[0]["text"].startswith("FAILED: ValueError: bad value (at ")


# --- Session wiring -------------------------------------------------------------------------

def test_session_gate_combines_notebook_and_yaml_approvals(capsys):
    rb = open_session(LAB, approve=["fix:source_to_aurora"])
    assert rb.gate.approvals.approved("fix:source_to_aurora") and rb.gate.approvals.approved("backup")
    assert rb.gate.approvals.approved("cleanup:cluster") and not rb.gate.approvals.approved("cutover:billing")
    assert "approved: backup" in capsys.readouterr().out


def test_session_checks_notebook_approvals_against_scopes():
    with pytest.raises(ParameterError, match="names no scope") as e:
        open_session(LAB, approve="cutover:payroll", quiet=True)
    assert "acme, billing, crm" in e.value.hint


def test_a_plan_built_again_with_other_steps_is_stale_and_names_what_changed():
    from runbook_lib.core.errors import PlanStale
    shown = Plan("replication", "start both channels", (Step("aurora", "start", "CALL ..."),))
    shown.require_unchanged(Plan("replication", "start both channels", (Step("aurora", "start", "CALL ..."),)))
    with pytest.raises(PlanStale) as exc:
        shown.require_unchanged(Plan("replication", "start both channels", ()), what="what exists")
    assert "start both channels: what exists changed since this plan was shown; nothing was applied" in str(exc.value)
    assert "run the plan cell again" in exc.value.hint
