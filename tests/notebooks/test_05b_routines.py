"""Notebook 05_replication's step ``routines`` on the lab: the source's functions and procedures, which
the restore from S3 did not carry, reach Aurora by replication of a CREATE ... IF NOT EXISTS run on the
source.  Runs after test_05_replication (both directions run) and before phase 6.

Order matters: the pipeline's approved run first; then a fresh situation (tax_for dropped on Aurora
alone, and a procedure whose definer Aurora lacks created on the source alone), a run without the
approval (nothing but the canary rows changes), the approved run, a second run; the procedure is
dropped again at the end (on the source: the DROP replicates).
"""
from __future__ import annotations

import pymysql
import pytest
from papermill.exceptions import PapermillExecutionError

from tests.notebooks.conftest import outputs_text
from tests.support import gtids, last_output, query, replica_running, settle

pytestmark = [pytest.mark.lab, pytest.mark.notebooks]

STEM = "05_replication"
SIDES = ("onprem", "aurora")
TAX_FOR = "FUNCTION app_billing.tax_for"
PROCEDURE = "PROCEDURE app_billing.invoice_count"
FACTS = """SELECT ROUTINE_DEFINITION AS body, DEFINER AS definer, SQL_MODE AS sql_mode, DTD_IDENTIFIER AS returns,
    CHARACTER_SET_CLIENT AS cs, COLLATION_CONNECTION AS coll, SECURITY_TYPE AS security, CREATED AS created,
    LAST_ALTERED AS altered FROM information_schema.ROUTINES
    WHERE ROUTINE_SCHEMA = 'app_billing' AND CONCAT(ROUTINE_TYPE, ' app_billing.', ROUTINE_NAME) = %s"""
COMPARED = ("body", "definer", "sql_mode", "returns", "cs", "coll", "security")
INVOICE = "INSERT INTO app_billing.invoice (persona_id, amount, issued_at) VALUES (1, 100.00, NOW())"


def routine(lab, side: str, label: str) -> dict | None:
    found = query(lab.instances[side], FACTS, (label,))
    return found[0] if found else None


def same_as_source(lab, label: str) -> bool:
    src, aur = routine(lab, "onprem", label), routine(lab, "aurora", label)
    return bool(src and aur) and all(src[k] == aur[k] for k in COMPARED)


def call_on_aurora(lab, statement: str) -> tuple:
    """The first row of ``statement`` on Aurora as strings, or ("error", errno)."""
    with lab.root("aurora") as conn, conn.cursor() as cur:
        try:
            cur.execute(statement)
            return tuple(str(v) for v in cur.fetchone().values())
        except pymysql.err.MySQLError as e:
            return ("error", e.args[0])


def invoice_on_aurora(lab) -> tuple:
    """An INSERT into app_billing.invoice on Aurora (its trigger calls tax_for), rolled back: it writes
    nothing and logs nothing.  (tax, total) of the row, or the error."""
    with lab.root("aurora") as conn, conn.cursor() as cur:
        cur.execute("BEGIN")
        try:
            cur.execute(INVOICE)
            cur.execute("SELECT tax, total FROM app_billing.invoice WHERE id = LAST_INSERT_ID()")
            row = cur.fetchone()
            return str(row["tax"]), str(row["total"])
        except pymysql.err.MySQLError as e:
            return ("error", e.args[0])
        finally:
            cur.execute("ROLLBACK")


def new_per_server(lab, before: dict) -> dict[str, dict[str, int]]:
    """Per side: how many new transactions each server (by role) originated since ``before``."""
    settle(lab.instances, 30)
    uuids = {query(lab.instances[s], "SELECT @@server_uuid AS u")[0]["u"]: s for s in SIDES}
    out = {}
    for side in SIDES:
        new = gtids(lab.instances[side]) - before[side]
        out[side] = {uuids[u]: sum(e - s + 1 for w, _, s, e in new.intervals() if w == u) for u in new.uuids()}
    return out


def test_the_pipeline_brought_the_source_routine_to_aurora(pipeline, lab):
    text = outputs_text(pipeline.through(STEM)[STEM])
    assert "APPLIED: step 'routines'" in text or "nothing to do (step 'routines')" in text
    assert "PASS: stored routines on Aurora" in text
    assert same_as_source(lab, TAX_FOR)
    assert routine(lab, "aurora", TAX_FOR)["definer"] == "labroot@127.0.0.1"
    assert invoice_on_aurora(lab) == ("19.00", "119.00")          # the trigger works on Aurora now
    assert all(replica_running(lab.instances[s]) for s in SIDES)


@pytest.fixture(scope="module")
def situation(lab):
    """tax_for missing on Aurora only, invoice_count (definer billing_app@%, not on Aurora) on the source
    only: both made as labroot with sql_log_bin=0, so nothing replicates.  Dropped on the source after."""
    settle(lab.instances, 30)
    with lab.root("aurora") as conn, conn.cursor() as cur:
        cur.execute("SET SESSION sql_log_bin = 0")
        cur.execute("DROP FUNCTION IF EXISTS app_billing.tax_for")
    with lab.root("onprem") as conn, conn.cursor() as cur:
        cur.execute("SET SESSION sql_log_bin = 0")
        cur.execute("CREATE DEFINER = 'billing_app'@'%' PROCEDURE app_billing.invoice_count(OUT n BIGINT) "
                    "READS SQL DATA SELECT COUNT(*) INTO n FROM app_billing.invoice")
    source = {label: routine(lab, "onprem", label) for label in (TAX_FOR, PROCEDURE)}
    yield source
    query(lab.instances["onprem"], "DROP PROCEDURE IF EXISTS app_billing.invoice_count")   # replicates
    settle(lab.instances, 30)
    assert routine(lab, "onprem", PROCEDURE) is None and routine(lab, "aurora", PROCEDURE) is None


def test_without_approval_only_the_canary_changes_and_the_check_names_the_step(pipeline, lab, situation):
    before = {s: gtids(lab.instances[s]) for s in SIDES}
    assert invoice_on_aurora(lab) == ("error", 1305)              # FUNCTION ... does not exist
    with pytest.raises(PapermillExecutionError) as exc:
        pipeline.run(STEM, pipeline.params_file(approvals=[]))
    assert exc.value.ename == "NotApplied"
    assert "'routines'" in exc.value.evalue and TAX_FOR in exc.value.evalue and PROCEDURE in exc.value.evalue
    assert "routine_results = routines.verify(rb)" in exc.value.source
    text = last_output(pipeline, STEM)
    assert "SKIPPED: step 'routines' not approved" in text
    assert f"create {TAX_FOR} if not exists (replicates to Aurora)" in text
    assert "FUNCTION IF NOT EXISTS `tax_for`" in text and "Definers without an account on Aurora: billing_app@%" in text
    assert "PASS: canary" in text and "FAIL: stored routines on Aurora" in text
    # only the two canary rows were written; nothing reached Aurora, the source's routines are untouched
    assert new_per_server(lab, before) == {s: {"onprem": 1, "aurora": 1} for s in SIDES}
    assert routine(lab, "aurora", TAX_FOR) is None and routine(lab, "aurora", PROCEDURE) is None
    assert {label: routine(lab, "onprem", label) for label in situation} == situation
    # Aurora still cannot call it.  Asked of the function itself: right after the notebook's run an INSERT
    # through the trigger once succeeded with tax 0.00 although information_schema had no tax_for (seen
    # in 3 of 10 runs, cause not found); the function call is what the trigger depends on.
    assert call_on_aurora(lab, "SELECT app_billing.tax_for(100.00) AS t") == ("error", 1305)


def test_approved_run_creates_them_on_the_source_with_if_not_exists_and_they_replicate(pipeline, lab,
                                                                                       situation):
    before = {s: gtids(lab.instances[s]) for s in SIDES}
    text = outputs_text(pipeline.run(STEM))
    assert "APPLIED: step 'routines'" in text
    assert "Note 1304: FUNCTION tax_for already exists" in text and "Note 1304: PROCEDURE invoice_count" in text
    assert "PASS: stored routines on Aurora" in text and "same; no account billing_app@%" in text
    assert same_as_source(lab, TAX_FOR) and same_as_source(lab, PROCEDURE)
    assert {label: routine(lab, "onprem", label) for label in situation} == situation    # unchanged there
    # the two CREATEs are the source's transactions (plus one canary row from each side) on both sides:
    # Aurora applied them under the source's GTIDs and the source did not apply them again
    assert new_per_server(lab, before) == {s: {"onprem": 3, "aurora": 1} for s in SIDES}
    assert all(replica_running(lab.instances[s]) for s in SIDES)
    assert invoice_on_aurora(lab) == ("19.00", "119.00")


def test_second_run_plans_nothing(pipeline, lab, situation):
    before = {s: gtids(lab.instances[s]) for s in SIDES}
    text = outputs_text(pipeline.run(STEM))
    assert "stored functions and procedures on Aurora: nothing to do (step 'routines')" in text
    assert "PASS: stored routines on Aurora" in text
    assert new_per_server(lab, before) == {s: {"onprem": 1, "aurora": 1} for s in SIDES}     # the canary
