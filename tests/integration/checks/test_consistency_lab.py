"""runbook_lib.checks.consistency.comparison against two real MySQL 9.7 servers replicating both ways (lab instance
'<RUNBOOK_TEST_LAB>-bidir', set up by bench.replicated_lab with labroot, without the notebooks).

Differences are made the way they happen in real life: a write on one side with sql_log_bin=0
(it never replicates).  Each test repairs what it broke, the same way."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import pytest

from runbook_lib.checks.consistency import chunks
from runbook_lib.checks.consistency import comparison as consistency
from runbook_lib.checks.consistency import scan
from runbook_lib.core.errors import NotCaughtUp, ParameterError

pytestmark = pytest.mark.lab

APPS = ["app_crm", "app_billing", "tenant_acme", "tenant_globex"]


@contextmanager
def scratch_schema(src, name: str):
    """A schema of the test's own, created on the source (it replicates) and dropped afterwards."""
    src.execute(f"DROP DATABASE IF EXISTS {name}")
    src.execute(f"CREATE DATABASE {name}")
    try:
        yield
    finally:
        src.execute(f"DROP DATABASE {name}")


def unlogged(server, *statements, args=()):
    """Run statements that never reach the binary log (so never the other side)."""
    server.execute("SET SESSION sql_log_bin = 0")
    try:
        for sql in statements:
            server.execute(sql, args or None)
    finally:
        server.execute("SET SESSION sql_log_bin = 1")


def test_identical_sides_compare_the_same(servers) -> None:
    src, aur = servers
    src.execute("INSERT INTO tenant_acme.orders (sku, qty, placed_at) VALUES ('SRC', 1, NOW())")   # a GTID of
    aur.execute("INSERT INTO tenant_globex.orders (sku, qty, placed_at) VALUES ('AUR', 1, NOW())")  # each side
    result = consistency.compare(src, aur, APPS)
    frame = result.to_frame().set_index("table")
    assert result.ok, frame
    assert (frame["verdict"] == "same").all()
    assert frame.loc["app_crm.persona", "source_rows"] == frame.loc["app_crm.persona", "aurora_rows"] > 0
    assert frame.loc["app_crm.persona", "method"] == chunks.METHOD_SCAN
    assert frame.loc["app_billing.payment_log", "method"] == chunks.METHOD_WHOLE
    assert "no primary key" in frame.loc["app_billing.payment_log", "differing_keys"]
    assert set(frame.index) >= {"app_crm.persona", "app_crm.segment", "app_billing.invoice", "tenant_acme.orders"}
    assert result.verdict_line().startswith("PASS")
    uuids = {s.identity.server_uuid for s in servers}
    assert {u for u in uuids if u in result.gtid_point} == uuids     # read where both had both writes


def test_one_row_changed_unlogged_is_found_with_its_key(servers) -> None:
    src, aur = servers
    key = int(src.scalar("SELECT MAX(id) DIV 2 FROM app_crm.persona"))
    unlogged(aur, "UPDATE app_crm.persona SET score = score + 1 WHERE id = %s", args=(key,))
    try:
        result = consistency.compare(src, aur, ["app_crm"], chunk_rows=1000)
    finally:
        unlogged(aur, "UPDATE app_crm.persona SET score = score - 1 WHERE id = %s", args=(key,))
    assert result.tables_differ == ["app_crm.persona"]
    table = next(t for t in result.tables if t.table == "app_crm.persona")
    assert table.chunks_differ == 1
    assert [(r.first, r.last, r.rows, r.kind) for r in table.ranges] == [(str(key), str(key), 1, "changed")]
    assert result.figures()["tables_differ"] == ["app_crm.persona"]
    assert consistency.compare(src, aur, ["app_crm"]).ok


def test_rows_missing_on_one_side_and_a_wide_chunk_are_narrowed(servers) -> None:
    src, aur = servers
    top = int(src.scalar("SELECT MAX(id) FROM app_crm.persona"))
    gone = [top - 3, top - 2, 17]
    saved = src.query("SELECT * FROM app_crm.persona WHERE id IN (%s, %s, %s)", tuple(gone))
    unlogged(src, "DELETE FROM app_crm.persona WHERE id IN (%s, %s, %s)", args=tuple(gone))
    try:
        result = consistency.compare(src, aur, ["app_crm"], tables=["app_crm.persona"], chunk_rows=100_000)
    finally:
        for row in saved:
            cols = ", ".join(f"`{k}`" for k in row)
            unlogged(src, f"INSERT INTO app_crm.persona ({cols}) VALUES ({', '.join(['%s'] * len(row))})",
                     args=tuple(row.values()))
    ranges = [(r.first, r.last, r.rows, r.kind) for r in result.tables[0].ranges]
    assert ranges == [("17", "17", 1, "only on aurora"), (str(top - 3), str(top - 2), 2, "only on aurora")]
    assert result.tables[0].source_rows == result.tables[0].aurora_rows - 3
    assert consistency.compare(src, aur, ["app_crm"], tables=["app_crm.persona"]).ok


def test_null_and_empty_string_and_shifted_nulls_differ(two_way, servers) -> None:
    src, aur = servers
    with scratch_schema(src, "ctest_null"):
        src.execute("CREATE TABLE ctest_null.t (id INT PRIMARY KEY, a VARCHAR(10) NULL, b VARCHAR(10) NULL, "
                    "n INT NULL, d DATETIME(6) NULL, e ENUM('', 'on') NULL)")
        src.execute("INSERT INTO ctest_null.t (id, a, b) VALUES (1, 'x', NULL), (2, NULL, 'y'), (3, NULL, NULL), "
                    "(4, 'p', 'q'), (5, NULL, NULL), (6, NULL, NULL), (7, NULL, NULL)")
        two_way.wait_caught_up()
        assert consistency.compare(src, aur, ["ctest_null"]).ok
        unlogged(aur, "UPDATE ctest_null.t SET a = NULL, b = 'x' WHERE id = 1",    # 'x',NULL -> NULL,'x'
                 "UPDATE ctest_null.t SET a = '' WHERE id = 3",                     # NULL -> ''
                 "UPDATE ctest_null.t SET n = 0 WHERE id = 5",                      # NULL -> 0
                 "UPDATE ctest_null.t SET d = '2026-01-01' WHERE id = 6",           # NULL -> a date
                 "UPDATE ctest_null.t SET e = '' WHERE id = 7")                     # NULL -> the ENUM's ''
        result = consistency.compare(src, aur, ["ctest_null"])
        assert [(r.first, r.last, r.kind) for r in result.tables[0].ranges] == [("1", "1", "changed"),
                                                                              ("3", "3", "changed"),
                                                                              ("5", "7", "changed")]
        full = scan.full_check(src, aur, ["ctest_null"], mode="fresh", progress=False, record=False)
        assert [(r.first, r.kind) for r in full.tables[0].ranges] == [(k, "changed") for k in "13567"]


def test_composite_key_and_table_without_key(two_way, servers) -> None:
    src, aur = servers
    with scratch_schema(src, "ctest_keys"):
        src.execute("CREATE TABLE ctest_keys.c (tenant VARCHAR(8) NOT NULL, n INT NOT NULL, v INT NOT NULL, "
                    "PRIMARY KEY (tenant, n))")
        src.execute("SET SESSION cte_max_recursion_depth = 10000")
        src.execute("INSERT INTO ctest_keys.c WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s "
                    "WHERE i < 3000) SELECT ELT(1 + i % 3, 'acme', 'globex', 'initech'), i, i * 7 FROM s")
        src.execute("CREATE TABLE ctest_keys.nokey (a INT, b VARCHAR(5))")
        src.execute("INSERT INTO ctest_keys.nokey VALUES (1, 'a'), (1, 'a'), (2, NULL)")
        two_way.wait_caught_up()
        same = consistency.compare(src, aur, ["ctest_keys"], chunk_rows=500)
        assert same.ok, same.to_frame()
        methods = same.to_frame().set_index("table")["method"]
        assert methods["ctest_keys.c"] == chunks.METHOD_RANGES
        assert methods["ctest_keys.nokey"] == chunks.METHOD_WHOLE
        assert same.tables[0].chunks >= 6
        unlogged(aur, "UPDATE ctest_keys.c SET v = v + 1 WHERE tenant = 'globex' AND n = 1000",
                 "DELETE FROM ctest_keys.c WHERE tenant = 'initech' AND n = 2",
                 "DELETE FROM ctest_keys.nokey WHERE a = 1 LIMIT 1")      # a duplicate row: BIT_XOR alone misses it
        result = consistency.compare(src, aur, ["ctest_keys"], chunk_rows=500)
        by_table = {t.table: t for t in result.tables}
        assert [(r.first, r.kind) for r in by_table["ctest_keys.c"].ranges] == [
            ("(globex, 1000)", "changed"), ("(initech, 2)", "only on source")]
        nokey = by_table["ctest_keys.nokey"]
        assert nokey.verdict == "differ" and (nokey.source_rows, nokey.aurora_rows) == (3, 2)
        assert nokey.ranges == () and "no primary key" in nokey.note


def test_tables_and_columns_on_one_side_only(two_way, servers) -> None:
    src, aur = servers
    with scratch_schema(src, "ctest_shape"):
        src.execute("CREATE TABLE ctest_shape.t (id INT PRIMARY KEY, v INT)")
        two_way.wait_caught_up()
        try:
            unlogged(aur, "CREATE TABLE ctest_shape.extra (id INT PRIMARY KEY)",
                     "ALTER TABLE ctest_shape.t ADD COLUMN w INT NULL")
            frame = consistency.compare(src, aur, ["ctest_shape"]).to_frame().set_index("table")
            assert frame.loc["ctest_shape.extra", "verdict"] == chunks.ONLY_AURORA
            assert frame.loc["ctest_shape.t", "verdict"] == chunks.COLUMNS_DIFFER
            assert "w" in frame.loc["ctest_shape.t", "differing_keys"]
            with pytest.raises(ParameterError):
                consistency.compare(src, aur, ["ctest_shape"], tables=["ctest_shape.nope"])
        finally:
            unlogged(aur, "DROP TABLE ctest_shape.extra", "ALTER TABLE ctest_shape.t DROP COLUMN w")


def _writing(two_way, sides: tuple[str, ...]):
    """Threads that insert and update rows without pause on ``sides`` (each side its own rows)."""
    stop, written = threading.Event(), dict.fromkeys(sides, 0)
    own_row = {"onprem": "new", "aurora": "latam"}

    def write(side: str) -> None:
        with two_way.server(side) as s:
            while not stop.is_set():
                s.execute("INSERT INTO tenant_acme.orders (sku, qty, placed_at) VALUES ('LIVE', 1, NOW())")
                s.execute("UPDATE app_crm.segment SET rule_text = CONCAT('live ', %s) WHERE name = %s",
                          (time.monotonic(), own_row[side]))
                written[side] += 1
                time.sleep(0.005)
    threads = [threading.Thread(target=write, args=(side,)) for side in sides]
    for t in threads:
        t.start()
    time.sleep(0.5)

    def finish() -> dict:
        stop.set()
        for t in threads:
            t.join()
        return written
    return finish


def _tidy(two_way, src) -> None:
    """Once every write of the test has reached both sides (else the tidy-up itself conflicts)."""
    two_way.wait_caught_up()
    src.execute("DELETE FROM tenant_acme.orders WHERE sku = 'LIVE'")
    src.execute("UPDATE app_crm.segment SET rule_text = name WHERE name IN ('new', 'latam')")
    two_way.wait_caught_up()


def test_live_writes_on_one_side_are_not_flagged(two_way, servers) -> None:
    """The source keeps writing (as applications do) while both sides are compared: all the same."""
    src, aur = servers
    finish = _writing(two_way, ("onprem",))
    try:
        result = consistency.compare(src, aur, APPS, chunk_rows=2000)
    finally:
        written = finish()
    assert written["onprem"] > 20
    assert result.ok, result.to_frame()
    _tidy(two_way, src)


def test_chunks_written_on_both_sides_are_still_changing_not_different(two_way, servers) -> None:
    """Both sides write the same chunks without pause: no two snapshots can match; never a 'differ'."""
    src, aur = servers
    finish = _writing(two_way, ("onprem", "aurora"))
    try:
        result = consistency.compare(src, aur, APPS, chunk_rows=2000)
    finally:
        written = finish()
    assert min(written.values()) > 20
    assert result.tables_differ == [], result.to_frame()
    assert set(result.tables_changing) <= {"tenant_acme.orders", "app_crm.segment"}
    for r in result.ranges_frame().to_dict("records"):
        assert r["kind"] == chunks.CHANGING
    _tidy(two_way, src)
    assert consistency.compare(src, aur, APPS).ok


def test_a_side_that_cannot_catch_up_is_named(two_way, servers) -> None:
    src, aur = servers
    aur.execute(aur.dialect.stop_replication())
    try:
        src.execute("UPDATE app_crm.segment SET rule_text = 'while stopped' WHERE name = 'vip'")
        started = time.monotonic()
        with pytest.raises(NotCaughtUp) as e:
            consistency.compare(src, aur, ["app_crm"], wait_timeout=1.0)
        assert e.value.server == "aurora" and time.monotonic() - started < 10
    finally:
        aur.execute(aur.dialect.start_replication())
        src.execute("UPDATE app_crm.segment SET rule_text = 'score >= 900' WHERE name = 'vip'")
    two_way.wait_caught_up()
    assert consistency.compare(src, aur, ["app_crm"]).ok


TYPED = {       # column -> (definition, value on both sides, value changed to on aurora alone)
    "ti": ("TINYINT NOT NULL", "-7", "-8"), "mi": ("MEDIUMINT UNSIGNED NOT NULL", "16777215", "16777214"),
    "bu": ("BIGINT UNSIGNED NOT NULL", "18446744073709551615", "18446744073709551614"),
    "de": ("DECIMAL(12,4) NOT NULL", "1.5000", "1.5001"), "yr": ("YEAR NOT NULL", "2026", "2027"),
    "dt": ("DATE NOT NULL", "'2026-12-06'", "'2026-12-07'"), "tm": ("TIME(3) NOT NULL", "'-01:02:03.456'", "'-01:02:03.457'"),
    "dm": ("DATETIME NOT NULL", "'2026-12-06 10:00:00'", "'2026-12-06 10:00:01'"),
    "ts": ("TIMESTAMP(6) NOT NULL", "'2026-12-06 10:00:00.000001'", "'2026-12-06 10:00:00.000002'"),
    "fl": ("FLOAT NOT NULL", "1.25", "1.5"), "db": ("DOUBLE NOT NULL", "3.141592653589793", "3.141592653589794"),
    "bt": ("BIT(5) NOT NULL", "b'10101'", "b'10100'"), "en": ("ENUM('a','b') NOT NULL", "'a'", "'b'"),
    "st": ("SET('x','y') NOT NULL", "'x,y'", "'y'"), "js": ("JSON NOT NULL", "'{\"a\": 1}'", "'{\"a\": 2}'"),
    "bl": ("BLOB NOT NULL", "x'00ff'", "x'00fe'"), "vb": ("VARBINARY(8) NOT NULL", "x'0001'", "x'0002'"),
}


def test_a_change_to_a_column_of_any_type_is_found(two_way, servers) -> None:
    """The row CRC casts numbers and times to BINARY and leaves strings, BIT, JSON and binary as they are:
    a change in any one column of any type makes its row differ, found with its key."""
    src, aur = servers
    with scratch_schema(src, "ctest_types"):
        src.execute(f"CREATE TABLE ctest_types.t (id INT PRIMARY KEY, "
                    f"{', '.join(f'{c} {d}' for c, (d, _, _) in TYPED.items())})")
        for i in range(len(TYPED) + 2):
            src.execute(f"INSERT INTO ctest_types.t VALUES ({i}, {', '.join(v for _, v, _ in TYPED.values())})")
        two_way.wait_caught_up()
        assert scan.full_check(src, aur, ["ctest_types"], mode="fresh", progress=False, record=False).ok
        unlogged(aur, *(f"UPDATE ctest_types.t SET {c} = {new} WHERE id = {i + 1}"
                        for i, (c, (_, _, new)) in enumerate(TYPED.items())))
        full = scan.full_check(src, aur, ["ctest_types"], mode="fresh", progress=False, record=False)
        assert [(int(r.first), r.kind) for r in full.tables[0].ranges] == [(i + 1, "changed")
                                                                            for i in range(len(TYPED))]


def test_a_composite_key_led_by_an_integer_is_cut_and_narrowed_on_that_integer(two_way, servers) -> None:
    """full_check cuts (n, tenant) keys by n's value and narrows a differing chunk on n, then row by row."""
    src, aur = servers
    with scratch_schema(src, "ctest_ikey"):
        src.execute("CREATE TABLE ctest_ikey.c (n INT NOT NULL, tenant VARCHAR(8) NOT NULL, v INT NOT NULL, "
                    "PRIMARY KEY (n, tenant))")
        src.execute("SET SESSION cte_max_recursion_depth = 20000")
        src.execute("INSERT INTO ctest_ikey.c WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s "
                    "WHERE i < 12000) SELECT i DIV 2, ELT(1 + i % 2, 'acme', 'globex'), i FROM s")
        two_way.wait_caught_up()
        assert scan.full_check(src, aur, ["ctest_ikey"], mode="fresh", progress=False, record=False).ok
        unlogged(aur, "UPDATE ctest_ikey.c SET v = v + 1 WHERE n = 4321 AND tenant = 'globex'")
        full = scan.full_check(src, aur, ["ctest_ikey"], mode="fresh", progress=False, record=False)
        assert [(r.first, r.kind) for r in full.tables[0].ranges] == [("(4321, globex)", "changed")]
