"""Notebook 08 on the lab, after phases 1-7: cut-over of scope crm, its fallback, the split-brain guard.

Checked on the servers with labroot (``mysql.user.account_locked`` on each side), not only in the
notebook's output.  Order matters: without approval first (nothing may change), then the pipeline's
own approved run (a cut-over), a second run, a bad scope, the fallback, and a cut-over again so that
later phases find the state the pipeline leaves.
"""
from __future__ import annotations

import json
import re

import pytest
from papermill.exceptions import PapermillExecutionError

from tests.notebooks.conftest import outputs_text
from tests.support import last_output, query, settle

pytestmark = [pytest.mark.lab, pytest.mark.notebooks]

NB = "08_cutover"
PREVIOUS = "07_failover_test"
FAST = {"write_window_seconds": 1.0, "catch_up_timeout_seconds": 30.0}
SIDES = ("onprem", "aurora")


def locks(lab, user: str = "crm_app") -> dict[str, str]:
    """mysql.user.account_locked of user@'%' on each side ('missing' where it does not exist)."""
    settle(lab.instances, 30)          # a replicated account statement has landed
    rows = {side: query(lab.instances[side], "SELECT account_locked AS l FROM mysql.user "
                                             "WHERE User = %s AND Host = '%%'", (user,)) for side in SIDES}
    return {side: r[0]["l"] if r else "missing" for side, r in rows.items()}


def rows_of(text: str, table: str) -> list[str]:
    """The cells of the split-brain table's rows for ``table`` (HTML as the notebook showed it)."""
    out = []
    for row in re.findall(r"<tr>(.*?)</tr>", text, re.S):
        cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        if cells and cells[0].startswith(table):
            out.append(" | ".join(cells))
    return out


def test_without_approval_nothing_changes_and_the_guard_names_tables_written_from_both_sides(lab, pipeline):
    pipeline.through(PREVIOUS)
    for side in SIDES:
        query(lab.instances[side],
              "INSERT INTO tenant_globex.orders (sku, qty, placed_at) VALUES ('both', 1, NOW())")
    # a table no other test writes (tenant_acme.orders is written from both sides by phases 4 and 5's tests)
    query(lab.instances["onprem"],
          "INSERT INTO app_billing.invoice (persona_id, amount, issued_at) VALUES (1, 10, NOW())")
    before = {u: locks(lab, u) for u in ("crm_app", "acme_app")}
    with pytest.raises(PapermillExecutionError) as exc:
        pipeline.run(NB, pipeline.params_file(approvals=[]), **FAST)
    assert exc.value.ename == "NotApplied" and "cutover:crm" in exc.value.evalue
    text = last_output(pipeline, NB)
    assert "SKIPPED: step 'cutover:crm' not approved" in text
    assert "PASS: before the cutover of crm" in text
    assert {u: locks(lab, u) for u in ("crm_app", "acme_app")} == before
    assert before["crm_app"] == {"onprem": "N", "aurora": "missing"}     # a restore from S3 carries no users
    assert "create crm_app@% as on source" in text                       # ... so the plan copies it
    assert rows_of(text, "tenant_globex.orders")[0] == "tenant_globex.orders | 1 | 1 | ✖ written on both sides"
    if "07_failover_test" in pipeline.done:              # phase 7's table, written from both sides
        assert rows_of(text, "runbook.failover_rows")[0].endswith("✖ written on both sides")
    assert rows_of(text, "app_billing.invoice")[0] == "app_billing.invoice | 1 | 0 | source only"
    warning = next(line for line in text.splitlines() if line.startswith("WARNING: split-brain guard"))
    assert "tenant_globex.orders" in warning
    assert "app_billing.invoice" not in warning


@pytest.fixture(scope="module")
def cut(lab, pipeline, tmp_path_factory):
    """The pipeline's approved run of 08 (direction cutover); (notebook, figures, its switches' records)."""
    run_dir = tmp_path_factory.mktemp("run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RUNBOOK_RUN_DIR", str(run_dir))
        nb = pipeline.through(NB)[NB]
    return (nb, json.loads((run_dir / "figures" / "cutover.json").read_text()),
            json.loads((run_dir / "figures" / "switches.json").read_text()))


def test_approved_cutover_locks_crm_on_the_source_only_and_names_aurora(lab, cut):
    nb, figures, _ = cut
    text = outputs_text(nb)
    assert locks(lab) == {"onprem": "Y", "aurora": "N"}
    assert locks(lab, "acme_app") == {"onprem": "N", "aurora": "missing"}  # other scopes untouched
    assert "APPLIED: step 'cutover:crm'" in text
    assert f"ENDPOINT for the crm application (crm_app@%): 127.0.0.1:{lab.state.aurora_port} (aurora)" in text
    assert "WARNING: split-brain guard" in text and "split-brain guard since the checks began" in text
    assert figures["scope"] == "crm" and figures["direction"] == "cutover" and figures["verdict"] == "switched"
    assert figures["endpoint"] == f"127.0.0.1:{lab.state.aurora_port}"
    assert "tenant_globex.orders" in figures["split_brain_tables"]
    assert all(status != "fail" for status in figures["checks"].values())


def test_the_same_data_gate_re_verifies_from_phase_6_s_recorded_pass_and_its_time_is_kept(lab, cut):
    """Phase 6 recorded a full pass (runbook.consistency_run); the gate reads the binary logs since it
    instead of comparing every row again (a 'full' kind here means it found no pass to start from)."""
    nb, figures, switches = cut
    passes = query(lab.instances["onprem"], "SELECT kind, status FROM runbook.consistency_run")
    # reads only: the one re-verification recorded is phase 6's check_mode 'reverify' run (test_06)
    assert {"kind": "full", "status": "done"} in passes and [p["kind"] for p in passes].count("reverify") == 1
    assert figures["same_data_check_kind"] == "reverify"
    seconds = figures["same_data_check_seconds"]
    assert isinstance(seconds, float) and 0 < seconds < 30
    assert (switches[-1]["same_data_check_kind"], switches[-1]["same_data_check_seconds"]) == ("reverify", seconds)
    text = outputs_text(nb)
    shown = [float(x) for x in re.findall(r"(?:^|\W)reverify in (\d+\.\d\d) s", text)]
    assert len(shown) >= 2 and all(abs(x - seconds) < 0.006 for x in shown)    # the check's row, the summary
    assert "same-data check: reverify in " in text
    print(f"the cut-over's same-data gate: {figures['same_data_check_kind']} in {seconds:.3f} s")


def test_a_second_cutover_plans_nothing(lab, pipeline, cut):
    nb = pipeline.run(NB, None, **FAST)
    assert "nothing to do (step 'cutover:crm')" in outputs_text(nb)
    assert "CUTOVER crm: already in place" in outputs_text(nb)
    assert locks(lab) == {"onprem": "Y", "aurora": "N"}


def test_an_unknown_scope_is_named_and_nothing_changes(lab, pipeline, cut):
    with pytest.raises(PapermillExecutionError) as exc:
        pipeline.run(NB, None, scope="crmx", **FAST)
    assert exc.value.ename == "ParameterError" and "'crmx' is not a scope" in exc.value.evalue
    assert "acme, billing, crm" in exc.value.evalue
    assert locks(lab) == {"onprem": "Y", "aurora": "N"}


def test_fallback_reverses_it_and_a_cutover_again_restores_it(lab, pipeline, cut):
    back = outputs_text(pipeline.run(NB, None, direction="fallback", **FAST))
    assert "APPLIED: step 'fallback:crm'" in back
    assert "aurora cannot keep statements out of its binary log" in back
    assert f"ENDPOINT for the crm application (crm_app@%): 127.0.0.1:{lab.state.onprem_port} (source)" in back
    assert locks(lab) == {"onprem": "N", "aurora": "Y"}
    again = outputs_text(pipeline.run(NB, None, **FAST))
    assert "APPLIED: step 'cutover:crm'" in again
    assert locks(lab) == {"onprem": "Y", "aurora": "N"}
