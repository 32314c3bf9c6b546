"""Pure parts of runbook_lib.checks.consistency.comparison: chunk spans, key conditions, row checksum expression,
differing keys as ranges, and the result value's tables, verdict and figures."""
from __future__ import annotations

import pytest

from runbook_lib.checks.consistency import chunks
from runbook_lib.checks.consistency import comparison as c
from runbook_lib.core.errors import CheckFailed, ParameterError
from runbook_lib.mysql.sql import q


def shape(*columns, key=("id",)) -> chunks.TableShape:
    cols = tuple(chunks.Column(name, data_type, data_type + " x", nullable) for name, data_type, nullable in columns)
    return chunks.TableShape("app", "t", cols, key)


def test_chunk_width_aims_at_chunk_rows_per_chunk() -> None:
    assert chunks.chunk_width(1, 1_000_000, 1_000_000, 10_000) == 10_000
    assert chunks.chunk_width(1, 2_000_000, 1_000_000, 10_000) == 20_000   # sparse keys: wider chunks
    assert chunks.chunk_width(5, 5, 0, 10_000) == 1                       # one row, no statistics
    assert chunks.chunk_width(1, 100, 50, 10_000) == 100                  # small table: one chunk


def test_integer_spans_cover_every_key_once() -> None:
    spans = chunks.integer_spans(1, 10, 3)
    assert spans == [((1,), (4,)), ((4,), (7,)), ((7,), (10,)), ((10,), (11,))]
    open_spans = chunks.integer_spans(1, 10, 3, open_ends=True)
    assert open_spans[0] == (None, (4,)) and open_spans[-1] == ((10,), None)
    assert chunks.integer_spans(1, 2, 10, open_ends=True) == [(None, None)]


def test_bound_sql_single_and_composite_keys() -> None:
    assert chunks.bound_sql(["id"], [5], ">=") == ("(`id` >= %s)", [5])
    sql, args = chunks.bound_sql(["a", "b"], ["x", 7], "<")
    assert sql == "((`a` < %s) OR (`a` = %s AND `b` < %s))"
    assert args == ["x", "x", 7]
    sql, args = chunks.span_sql(["a", "b"], (("x", 1), ("y", 2)))
    assert sql.count(" OR ") == 2 and args == ["x", "x", 1, "y", "y", 2]
    assert chunks.span_sql(["id"], (None, None)) == ("TRUE", [])


def test_row_crc_flags_nulls_and_reads_timestamps_as_epoch() -> None:
    s = shape(("id", "bigint", False), ("name", "varchar", True), ("at", "timestamp", False))
    expr = s.row_crc()
    assert expr == ("CRC32(CONCAT(CAST(`id` AS BINARY), '#', IFNULL(`name`, ''), '#', "
                    "CAST(UNIX_TIMESTAMP(`at`) AS BINARY), '#', ISNULL(`name`)))")
    no_nulls = shape(("id", "bigint", False), ("n", "int", False)).row_crc()
    assert no_nulls == "CRC32(CONCAT(CAST(`id` AS BINARY), '#', CAST(`n` AS BINARY)))"


def test_row_crc_flags_only_nulls_that_could_read_as_empty() -> None:
    """A NULL is written as ''; only types with '' among their values (strings, ENUM, SET) need a flag."""
    s = shape(("id", "bigint", False), ("d", "datetime", True), ("n", "decimal", True), ("t", "timestamp", True),
              ("e", "enum", True), ("b", "blob", True))
    expr = s.row_crc()
    assert "IFNULL(CAST(`d` AS BINARY), '')" in expr and "IFNULL(CAST(UNIX_TIMESTAMP(`t`) AS BINARY), '')" in expr
    assert "CAST(`e` AS BINARY)" not in expr and "CAST(`b` AS BINARY)" not in expr     # strings as they are
    assert expr.endswith("'#', ISNULL(`e`), ISNULL(`b`)))")
    assert "ISNULL(`d`)" not in expr and "ISNULL(`n`)" not in expr and "ISNULL(`t`)" not in expr


def test_quoting_and_integer_key() -> None:
    assert q("we`ird") == "`we``ird`"
    assert shape(("id", "bigint", False)).integer_key
    assert not shape(("id", "varchar", False)).integer_key
    assert not shape(("a", "int", False), ("b", "int", False), key=("a", "b")).integer_key
    assert shape(("id", "int", False)).sql_name == "`app`.`t`"


def test_differing_and_key_runs() -> None:
    src = {(1,): 10, (2,): 20, (3,): 30, (5,): 50, (6,): 60}
    aur = {(1,): 10, (2,): 21, (3,): 31, (4,): 40, (6,): 60, (7,): 70}
    assert chunks.differing(src, aur) == [(2,), (3,), (4,), (5,), (7,)]
    runs = chunks.key_runs(src, aur, "app.t", chunks.key_text)
    assert [(r.first, r.last, r.rows, r.kind) for r in runs] == [
        ("2", "5", 4, "mixed"), ("7", "7", 1, "only on aurora")]
    only = chunks.key_runs({(1, "a"): 1}, {}, "app.t", chunks.key_text)
    assert only[0].first == "(1, a)" and only[0].kind == "only on source"
    assert chunks.key_runs(src, dict(src), "app.t", chunks.key_text) == []


def _comparison(*tables: chunks.TableResult) -> c.Comparison:
    return c.Comparison(tables, ("app",), "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5", 1.25)


def test_comparison_frame_verdict_and_figures() -> None:
    same = chunks.TableResult("app.a", chunks.METHOD_SCAN, 100, 100, 2, 0, chunks.SAME)
    nokey = chunks.TableResult("app.b", chunks.METHOD_WHOLE, 7, 7, 1, 0, chunks.SAME, note="no primary key: ...")
    ok = _comparison(same, nokey)
    assert ok.ok and ok.tables_differ == []
    assert list(ok.to_frame().columns) == c.FRAME_COLUMNS
    assert ok.to_frame()["differing_keys"].tolist() == ["", "no primary key: ..."]
    assert ok.verdict_line().startswith("PASS: both sides hold the same data: 2 tables, 107 rows")
    assert ok.figures() == {"tables_compared": 2, "tables_differ": [], "tables_changing": [], "verdict": "same",
                            "rows_compared": 107, "seconds": 1.25}
    ok.raise_if_differ()
    diff = chunks.TableResult("app.c", chunks.METHOD_SCAN, 10, 9, 1, 1, chunks.DIFFER,
                         (chunks.KeyRange("app.c", "4", "4", 1, "only on source"),))
    bad = _comparison(same, diff)
    assert bad.tables_differ == ["app.c"] and not bad.ok
    assert bad.to_frame().loc[1, "differing_keys"] == "4 (only on source, 1 row(s))"
    assert bad.ranges_frame().to_dict("records") == [
        {"table": "app.c", "first_key": "4", "last_key": "4", "rows": 1, "kind": "only on source"}]
    assert bad.verdict_line() == "FAIL: 1 of 2 tables differ: app.c"
    assert bad.figures()["verdict"] == "differ"
    with pytest.raises(CheckFailed) as e:
        bad.raise_if_differ()
    assert e.value.failed == ["app.c"] and len(e.value.table) == 2


def test_a_table_still_changing_is_not_called_different() -> None:
    same = chunks.TableResult("app.a", chunks.METHOD_SCAN, 100, 100, 2, 0, chunks.SAME)
    hot = chunks.TableResult("app.h", chunks.METHOD_SCAN, 50, 51, 3, 1, chunks.CHANGING,
                        (chunks.KeyRange("app.h", "(first)", "100 (excl.)", 0, chunks.CHANGING),))
    result = _comparison(same, hot)
    assert not result.ok and result.tables_differ == [] and result.tables_changing == ["app.h"]
    assert result.verdict_line() == ("FAIL: 1 still changing on both sides while compared (compare again when "
                                     "the writes pause): app.h")
    assert result.figures()["verdict"] == "changing"
    assert result.to_frame().loc[1, "differing_keys"] == "(first)..100 (excl.) (still changing)"
    with pytest.raises(CheckFailed) as e:
        result.raise_if_differ()
    assert e.value.failed == ["app.h"]
    gone = chunks.TableResult("app.g", "", None, None, 0, 0, chunks.ONLY_SOURCE)
    both = _comparison(gone, hot)
    assert both.tables_differ == ["app.g"] and both.figures()["verdict"] == "differ"
    assert both.verdict_line().startswith("FAIL: 1 of 2 tables differ: app.g; 1 still changing")


def test_no_tables_is_not_a_pass() -> None:
    empty = _comparison()
    assert empty.verdict_line().startswith("FAIL: no tables found in app")
    with pytest.raises(CheckFailed):
        empty.raise_if_differ()


def test_many_ranges_are_cut_in_the_frame() -> None:
    ranges = tuple(chunks.KeyRange("app.c", str(i), str(i), 1, "changed") for i in range(25))
    frame = _comparison(chunks.TableResult("app.c", chunks.METHOD_SCAN, 25, 25, 1, 1, chunks.DIFFER, ranges)).to_frame()
    assert frame.loc[0, "differing_keys"].endswith("... 5 more")


@pytest.mark.parametrize("kw", [{"chunk_rows": 5}, {"rechecks": 0}, {"chunk_rows": True},
                                {"segment_rows": 100, "chunk_rows": 1000}])
def test_bad_options_fail_before_any_server_is_touched(kw) -> None:
    with pytest.raises(ParameterError):
        c.compare(None, None, ["app"], **kw)
