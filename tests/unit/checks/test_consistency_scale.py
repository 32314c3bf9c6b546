"""Pure parts of the consistency check at size: chunk sizing by time, the throttle's reasons, the
progress line, per-key differences, key lists in SQL, the ledger's scope and key encoding, keys from
binary log row images."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from runbook_lib.checks.consistency import changes, chunks, ledger, rows, scan
from runbook_lib.checks.consistency.comparison import Comparison
from runbook_lib.checks.consistency.progress import Progress
from runbook_lib.checks.consistency.throttle import ChunkSizer, Throttle
from runbook_lib.core.errors import ParameterError


def shape(*columns, key=("id",)) -> chunks.TableShape:
    cols = tuple(chunks.Column(name, data_type, data_type, False) for name, data_type in columns)
    return chunks.TableShape("app", "t", cols, key)


def test_chunks_grow_and_shrink_towards_the_target_time_within_bounds() -> None:
    sizer = ChunkSizer(0.5, grow=4.0, max_rows=1_000_000, min_rows=1_000)
    assert sizer.next_width(10_000, 0.25, 10_000) == 20_000          # half the target: twice as wide
    assert sizer.next_width(10_000, 0.01, 10_000) == 40_000          # far too fast: at most 4x in one step
    assert sizer.next_width(40_000, 2.0, 40_000) == 10_000           # too slow: narrower
    assert sizer.next_width(10_000, 50.0, 10_000) == 2_500           # at most 4x narrower in one step
    assert sizer.next_width(2_000, 10.0, 2_000) == 1_000             # never under min_rows rows
    assert sizer.next_width(800_000, 0.1, 800_000) == 1_000_000      # never over max_rows rows
    assert sizer.next_width(10_000, 0.25, 1_000) == 20_000           # sparse keys: width in key units
    assert sizer.next_width(100, 0.0, 0) == 400                      # an empty chunk: grow


def test_the_first_chunk_is_safe_with_a_stale_row_estimate() -> None:
    sizer = ChunkSizer(0.5, max_rows=500, min_rows=1_000)
    assert sizer.first_width(50_000, 0) == 500                       # no estimate: one row per key, max_rows
    assert ChunkSizer(0.5).first_width(1_000_000, 1_000_000) == 100_000
    assert ChunkSizer(0.5).first_width(2_000_000, 1_000_000) == 100_000     # sparse: still one row per key
    assert ChunkSizer(0.5).first_width(1_000, 1_000_000) == 100             # dense composite: fewer keys


class _Lags:
    """The one thing the throttle reads of a heartbeat monitor."""

    directions = ("source → aurora", "aurora → source")

    def __init__(self, lags: dict) -> None:
        self.lags = lags

    def latest(self) -> dict:
        return self.lags


def test_the_throttle_names_each_direction_above_its_limit() -> None:
    throttle = Throttle(lag_limit=1.0, monitor=_Lags({"source → aurora": 0.2, "aurora → source": 3.5}))
    assert throttle.reasons(()) == ["aurora → source lag 3.50 s > 1 s"]
    throttle.monitor = _Lags({"aurora → source": 0.1})                 # no sample of source → aurora yet
    assert throttle.reasons(()) == ["source → aurora lag unknown > 1 s"]
    throttle.monitor = _Lags({"source → aurora": 0.9, "aurora → source": 0.1})
    assert throttle.reasons(()) == []
    said: list[str] = []
    throttle.wait((), said.append)
    assert said == [] and throttle.pauses == 0


def test_once_paused_the_lag_must_fall_to_half_the_limit_and_chunks_get_shorter_as_lag_builds() -> None:
    throttle = Throttle(lag_limit=1.0, monitor=_Lags({"source → aurora": 0.7, "aurora → source": 0.1}))
    assert throttle.reasons(()) == []
    assert throttle.reasons((), paused=True) == ["source → aurora lag 0.70 s > 0.5 s"]
    assert throttle.chunk_target(0.5) == pytest.approx(0.15)         # 30 % of the limit left: 30 % of the aim
    throttle.monitor = _Lags({"source → aurora": 0.99, "aurora → source": None})
    assert throttle.chunk_target(0.5) == pytest.approx(0.1)          # never under a fifth
    assert Throttle(lag_limit=None).chunk_target(0.5) == 0.5


class _Monitor(_Lags):
    """A heartbeat monitor that counts its starts and stops."""

    def __init__(self, running: bool = False) -> None:
        super().__init__({})
        self.running, self.starts, self.stops = running, 0, 0

    def start(self, seconds: float) -> None:
        self.running, self.starts = True, self.starts + 1

    def stop(self):
        self.running, self.stops = False, self.stops + 1
        return type("Samples", (), {"samples": ()})()


def test_the_throttle_starts_and_stops_a_monitor_given_idle_and_leaves_a_running_one_alone() -> None:
    idle = _Monitor()
    throttle = Throttle(lag_limit=1.0, monitor=idle)
    throttle.start(None, None)
    throttle.stop()
    assert (idle.starts, idle.stops) == (1, 1)
    running = _Monitor(running=True)                 # its owner started it (bench/scale.py) and stops it
    throttle = Throttle(lag_limit=1.0, monitor=running)
    throttle.start(None, None)
    throttle.stop()
    assert (running.starts, running.stops, running.running) == (0, 0, True)
    unused = _Monitor()
    Throttle(lag_limit=None, monitor=unused).start(None, None)
    assert unused.starts == 0


def test_the_heartbeat_table_is_not_compared_while_a_lag_throttle_writes_it() -> None:
    assert Throttle(lag_limit=1.0).writes == ("runbook.heartbeat",)
    assert Throttle(lag_limit=None, threads_running_limit=8).writes == ()


@pytest.mark.parametrize("kw", [{"lag_limit": 0}, {"lag_limit": "1"}, {"threads_running_limit": 0},
                                {"threads_running_limit": True}, {"threads_running_limit": 2.5}])
def test_throttle_limits_are_checked(kw) -> None:
    with pytest.raises(ParameterError):
        Throttle(**kw)


def test_the_progress_line_shows_the_table_its_rate_and_eta() -> None:
    bar = Progress(1_000, 2, enabled=False)
    bar.start_table("app.t", 400)
    bar.rows(100)
    text = bar.table_text()
    assert text.startswith("app.t 1/2 25% ") and "rows/s ETA 00:00:" in text


def test_differing_keys_are_listed_one_by_one_with_their_kind_capped_with_the_count() -> None:
    src = {(1,): 10, (2,): 20, (3,): 30, (5,): 50}
    aur = {(1,): 10, (2,): 21, (4,): 40, (5,): 51}
    found, count = rows.key_diffs("app.t", src, aur, cap=3)
    assert count == 4
    assert [(r.first, r.kind, r.rows) for r in found] == [("2", "changed", 1), ("3", "only on source", 1),
                                                          ("4", "only on aurora", 1)]
    assert sorted([(10,), ("a",), (2,)], key=rows.key_order) == [(2,), (10,), ("a",)]


def test_key_lists_in_sql() -> None:
    assert rows.in_sql(["id"], [(1,), (2,)]) == ("`id` IN (%s, %s)", [1, 2])
    assert rows.in_sql(["a", "b"], [(1, "x"), (2, "y")]) == ("(`a`, `b`) IN ((%s, %s), (%s, %s))", [1, "x", 2, "y"])


def test_the_ledger_names_a_scope_and_keeps_keys_as_json() -> None:
    text = ledger.scope_text(["b", "a"], [])
    assert text == "schemas a,b" and ledger.scope_parts(text) == ({"a", "b"}, set())
    assert ledger.scope_parts(ledger.scope_text(["a"], ["a.t"])) == ({"a"}, {"a.t"})
    assert ledger.key_from_json(ledger.key_json((5, "x"))) == (5, "x")
    assert ledger.key_json(None) is None and ledger.key_from_json(None) is None
    assert ledger.key_json((datetime(2024, 1, 2, 3, 4, 5), Decimal("1.50"), b"\x01")) == \
        '["2024-01-02 03:04:05", "1.50", "01"]'
    mark = ledger.mark_from_text("aurora", "binlog.000012:4711")
    assert (mark.role, mark.file, mark.position) == ("aurora", "binlog.000012", 4711)
    assert ledger.mark_text(mark) == "binlog.000012:4711"


def test_keys_are_read_from_row_images_by_name_or_position() -> None:
    t = shape(("tenant", "int"), ("id", "bigint"), ("name", "varchar"), key=("tenant", "id"))
    names = ["tenant", "id", "name"]
    assert changes.image_key(t, {"tenant": 3, "id": 9, "name": "x"}, names) == (3, 9)
    assert changes.image_key(t, {"UNKNOWN_COL0": 3, "UNKNOWN_COL1": 9}, names) == (3, 9)
    assert changes.image_key(t, {"name": "only changed columns"}, names) is None


def test_span_columns_cut_by_value_when_the_first_key_column_is_an_integer() -> None:
    assert scan.span_columns(shape(("id", "bigint"))) == (("id",), True)
    assert scan.span_columns(shape(("tenant", "int"), ("id", "bigint"), key=("tenant", "id"))) == (("tenant",), True)
    assert scan.span_columns(shape(("code", "varchar"), ("id", "int"), key=("code", "id"))) == (("code", "id"), False)


def test_a_full_check_refuses_an_unknown_mode_before_reading_anything() -> None:
    with pytest.raises(ParameterError, match="mode"):
        scan.full_check(None, None, ["app"], mode="later")
    with pytest.raises(ParameterError, match="target_seconds"):
        scan.full_check(None, None, ["app"], target_seconds=0)


def test_the_row_sample_frame_and_the_count_beyond_the_listed_keys() -> None:
    listed = tuple(chunks.KeyRange("app.t", str(k), str(k), 1, "changed") for k in range(25))
    table = chunks.TableResult("app.t", scan.METHOD_TIMED, 100, 100, 4, 1, chunks.DIFFER, listed, differing_rows=1500)
    result = Comparison((table,), ("app",), "", 1.0, kind="full",
                        samples=(rows.RowSample("app.t", "7", "score", "1", "3"),))
    assert result.to_frame()["differing_keys"][0].endswith("; ... 1480 more")
    assert result.samples_frame().to_dict("records") == [{"table": "app.t", "key": "7", "column": "score",
                                                          "source": "1", "aurora": "3"}]
