"""Stored routines (phase 5, step ``routines``): the CREATE ... IF NOT EXISTS statement built from real
SHOW CREATE output, the version rule, and how both sides' routines are judged."""
from __future__ import annotations

import pytest

from runbook_lib.core.errors import ParameterError, UnsupportedServer
from runbook_lib.mysql.dialect import Dialect
from runbook_lib.mysql.identity import ServerIdentity, flavor_of
from runbook_lib.phases.replication.routines import (
    COMPARED,
    Definition,
    Event,
    Inventory,
    Routine,
    where_to_create,
)

# SHOW CREATE output exactly as MySQL 9.7.4 returned it through PyMySQL.
TAX_FOR = ("CREATE DEFINER=`labroot`@`127.0.0.1` FUNCTION `tax_for`(amount DECIMAL(12,2)) RETURNS decimal(12,2)\n"
           "    NO SQL\n    DETERMINISTIC\nRETURN ROUND(amount * 0.19, 2)")
ODD_PROCEDURE = ("CREATE DEFINER=`o``k`@`10.0.%` PROCEDURE `log ``it```(IN msg VARCHAR(40))\n"
                 "    COMMENT 'writes IF NOT EXISTS'\nBEGIN\n"
                 "          -- CREATE FUNCTION IF NOT EXISTS f() is just text here\n"
                 "          CREATE TABLE IF NOT EXISTS notes (t VARCHAR(40));\n"
                 "          INSERT INTO notes VALUES (CONCAT('FUNCTION ', msg, ' 100%s'));\n        END")
INVOKER = ("CREATE DEFINER=`labroot`@`127.0.0.1` FUNCTION `plain`() RETURNS int\n    DETERMINISTIC\n"
           "    SQL SECURITY INVOKER\nRETURN 1")


def dialect(version: tuple[int, int, int], aurora: str = "", role: str = "source") -> Dialect:
    text = ".".join(map(str, version))
    return Dialect(ServerIdentity(version, text, "", flavor_of(version, aurora), aurora), role)


SOURCE = dialect((9, 7, 4))
AURORA = dialect((8, 0, 39), "3.08.0", "aurora")


# --- the statement ---------------------------------------------------------------------------------

def test_function_with_definer_gets_if_not_exists_after_its_type() -> None:
    assert SOURCE.create_routine_if_not_exists(TAX_FOR, replica=AURORA) == (
        "CREATE DEFINER=`labroot`@`127.0.0.1` FUNCTION IF NOT EXISTS `tax_for`(amount DECIMAL(12,2)) RETURNS "
        "decimal(12,2)\n    NO SQL\n    DETERMINISTIC\nRETURN ROUND(amount * 0.19, 2)")


def test_procedure_with_quoted_names_and_those_words_in_its_body_changes_only_its_head() -> None:
    out = SOURCE.create_routine_if_not_exists(ODD_PROCEDURE, replica=AURORA)
    head = "CREATE DEFINER=`o``k`@`10.0.%` PROCEDURE "
    assert out == head + "IF NOT EXISTS " + ODD_PROCEDURE[len(head):]
    assert out.count("IF NOT EXISTS") == ODD_PROCEDURE.count("IF NOT EXISTS") + 1
    assert "100%s" in out                                   # plain text: no placeholder handling


def test_without_definer_and_in_lower_case() -> None:
    assert SOURCE.create_routine_if_not_exists("CREATE FUNCTION `f`() RETURNS INT RETURN 1") == \
        "CREATE FUNCTION IF NOT EXISTS `f`() RETURNS INT RETURN 1"
    assert SOURCE.create_routine_if_not_exists("create definer=current_user procedure p() select 1") == \
        "create definer=current_user procedure IF NOT EXISTS p() select 1"


def test_a_statement_that_already_says_if_not_exists_is_kept() -> None:
    once = SOURCE.create_routine_if_not_exists(INVOKER)
    assert SOURCE.create_routine_if_not_exists(once) == once


@pytest.mark.parametrize("text", ["CREATE TRIGGER t BEFORE INSERT ON x FOR EACH ROW SET @a = 1",
                                  "CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO SELECT 1",
                                  "SELECT 'CREATE FUNCTION f() RETURNS INT RETURN 1'", ""])
def test_anything_but_a_function_or_procedure_is_refused(text: str) -> None:
    with pytest.raises(ParameterError, match="show_create"):
        SOURCE.create_routine_if_not_exists(text)


# --- the version rule ------------------------------------------------------------------------------

@pytest.mark.parametrize("version, supported", [((5, 7, 44), False), ((8, 0, 28), False), ((8, 0, 29), True),
                                                ((8, 0, 36), True), ((8, 4, 0), True), ((9, 7, 4), True)])
def test_if_not_exists_for_routines_from_mysql_8_0_29(version, supported: bool) -> None:
    d = dialect(version)
    assert d.creates_routines_if_not_exists is supported
    if supported:
        assert "IF NOT EXISTS" in d.create_routine_if_not_exists(TAX_FOR)
        return
    with pytest.raises(UnsupportedServer) as e:
        d.create_routine_if_not_exists(TAX_FOR)
    assert e.value.server == "source" and "8.0.29" in str(e.value)
    assert "SHOW CREATE" in e.value.hint and "1304" in e.value.hint and "fix:<channel>" in e.value.hint


def test_the_replica_must_know_the_statement_too() -> None:
    old_aurora = dialect((8, 0, 28), "3.04.0", "aurora")       # Aurora 3.04 is MySQL 8.0.28
    with pytest.raises(UnsupportedServer) as e:
        dialect((8, 0, 36)).create_routine_if_not_exists(TAX_FOR, replica=old_aurora)
    assert e.value.server == "aurora" and "Aurora MySQL 3.04.0" in str(e.value)
    aurora2 = dialect((5, 7, 12), "2.11.2", "aurora")
    with pytest.raises(UnsupportedServer):
        dialect((5, 7, 44)).create_routine_if_not_exists(TAX_FOR, replica=aurora2)


# --- judging both sides ----------------------------------------------------------------------------

def routine(name: str = "tax_for", kind: str = "FUNCTION", definer: str = "billing@%", security: str = "DEFINER",
            **changes: str) -> Routine:
    facts = {f: f"{f}-value" for f in COMPARED} | {"definer": definer, "security": security} | changes
    return Routine(kind, "app_billing", name, definer, security, tuple((f, facts[f]) for f in COMPARED))


def by_item(inv: Inventory) -> dict[str, tuple[str, str]]:
    return {r.item: (r.status, str(r.aurora)) for r in inv.checks()}


def test_missing_different_definerless_and_same_routines() -> None:
    src = (routine(), routine("p_same", "PROCEDURE"), routine("p_diff", "PROCEDURE"),
           routine("f_orphan", definer="gone@%"), routine("f_invoker", definer="gone@%", security="INVOKER"))
    aur = (routine("P_SAME", "PROCEDURE"), routine("p_diff", "PROCEDURE", definition="other", sql_mode=""),
           routine("f_orphan", definer="gone@%"), routine("f_invoker", definer="gone@%", security="INVOKER"),
           routine("only_here"))
    inv = Inventory(src, aur, frozenset({("billing", "%")}), (Event("EVENT app_billing.nightly", "ENABLED",
                                                                      "missing"),))
    assert [r.label for r in inv.missing] == ["FUNCTION app_billing.tax_for"]
    assert by_item(inv) == {
        "FUNCTION app_billing.tax_for": ("fail", "missing"),
        "PROCEDURE app_billing.p_same": ("pass", "same"),           # names are case-insensitive
        "PROCEDURE app_billing.p_diff": ("fail", "differs: definition, sql_mode"),
        "FUNCTION app_billing.f_orphan": ("warn", "same; no account gone@%"),
        "FUNCTION app_billing.f_invoker": ("pass", "same"),         # runs as its caller: no 1449
        "FUNCTION app_billing.only_here": ("info", "only on Aurora, definer billing@%"),
        "EVENT app_billing.nightly": ("info", "missing"),
    }
    assert "step 'routines'" in next(r.advice for r in inv.checks() if r.status == "fail")
    assert list(inv.to_frame().columns) == ["item", "source", "aurora", "ok", "advice"]


def test_the_definer_host_is_the_part_after_the_last_at_sign() -> None:
    assert routine(definer="a@b@10.0.%").account == ("a@b", "10.0.%")
    inv = Inventory((routine(definer="app@LocalHost"),), (routine(definer="app@LocalHost"),),
                    frozenset({("app", "localhost")}))
    assert by_item(inv) == {"FUNCTION app_billing.tax_for": ("pass", "same")}


def test_nothing_on_either_side_checks_nothing() -> None:
    assert Inventory((), ()).checks() == [] and Inventory((), ()).missing == ()


# --- the statement as it is sent -------------------------------------------------------------------

def test_the_definition_is_sent_in_its_own_character_set_with_its_session_values() -> None:
    r = routine("p1", "PROCEDURE")
    statement = "CREATE DEFINER=`labroot`@`127.0.0.1` PROCEDURE IF NOT EXISTS `p1`()\nSELECT 'café' AS x"
    d = Definition(r, statement, "STRICT_TRANS_TABLES", "latin1", "latin1_swedish_ci")
    assert d.encoded() == statement.encode("cp1252") and b"caf\xe9" in d.encoded()
    assert Definition(r, statement, "", "utf8mb4", "utf8mb4_0900_ai_ci").encoded() == statement.encode()
    assert d.shown() == ("USE `app_billing`; SET SESSION sql_mode = 'STRICT_TRANS_TABLES', character_set_client "
                         "= 'latin1', collation_connection = 'latin1_swedish_ci'; " + statement)


@pytest.mark.parametrize("source, aurora, where", [
    ((9, 7, 4), ((8, 0, 39), "3.08.0"), "source"),       # IF NOT EXISTS on both: on the source, replicated
    ((8, 0, 28), ((8, 0, 39), "3.08.0"), ""),            # Aurora 3's master user cannot go unlogged: by hand
    ((5, 7, 44), ((5, 7, 40), "2.12.1"), "aurora"),      # Aurora 2.12+: rds_disable_session_binlog
    ((5, 7, 44), ((5, 7, 12), "2.11.5"), ""),            # older Aurora 2: no way
])
def test_where_routines_are_created_per_version(source, aurora, where):
    src, aur = dialect(source), dialect(aurora[0], aurora[1], "aurora")
    # the master user: only Aurora 2.12+ offers it a way (Aurora 3 refuses SET sql_log_bin without
    # SESSION_VARIABLES_ADMIN; the lab's integration test probes that on the stand-in)
    assert where_to_create(src, aur, aur.session_binlog_way == "procedure") == where
