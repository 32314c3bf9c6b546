"""runbook_lib.core.display: check tables, verdict lines, comparison tables, show()."""
from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from runbook_lib.core import display
from runbook_lib.core.display import (
    CheckResult,
    checks_frame,
    comparison_frame,
    raise_if_failed,
    show,
    show_checks,
    styled,
    verdict,
)
from runbook_lib.core.errors import CheckFailed, RunbookError
from runbook_lib.core.redact import MASK, Redactor

RESULTS = [
    CheckResult("gtid_mode", "ON", "ON", "pass"),
    CheckResult("binlog_format", "MIXED", "ROW", "fail", "SET PERSIST binlog_format=ROW on the source"),
    CheckResult("binlog expiry", "604800", "48h", "warn", "longer retention on Aurora is safer"),
    CheckResult("version", "8.0.36", "8.0.mysql_aurora.3.08.0", "info"),
    CheckResult("server_id", 1, 1, "fail", "server ids must differ"),
]


def test_check_result_is_frozen_and_validates_its_status():
    with pytest.raises(dataclasses.FrozenInstanceError):
        RESULTS[0].status = "fail"  # type: ignore[misc]
    with pytest.raises(RunbookError, match="status 'ok' is not one of"):
        CheckResult("x", status="ok")


def test_equal_compares_the_shown_values():
    assert CheckResult.equal("gtid_mode", "ON", True).status == "pass"
    diff = CheckResult.equal("binlog_format", "MIXED", "ROW", advice="use ROW", otherwise="warn")
    assert (diff.status, diff.advice) == ("warn", "use ROW")
    assert CheckResult.equal("x", 1, 2).status == "fail"


def test_checks_frame_has_fixed_columns_and_symbols():
    frame = checks_frame(RESULTS)
    assert list(frame.columns) == ["item", "source", "aurora", "ok", "advice"]
    assert list(frame["ok"]) == ["✔", "✖", "⚠", "ℹ", "✖"]
    assert frame.loc[4, "source"] == "1"
    empty = checks_frame([])
    assert list(empty.columns) == ["item", "source", "aurora", "ok", "advice"] and empty.empty


def test_none_and_booleans_read_as_text():
    frame = checks_frame([CheckResult("read_only", None, False)])
    assert (frame.loc[0, "source"], frame.loc[0, "aurora"]) == ("—", "OFF")


def test_verdict_lines():
    assert verdict(RESULTS, "preflight") == (
        "FAIL: preflight: 2 of 4 checks failed: binlog_format, server_id; 1 warning(s): binlog expiry")
    assert verdict(RESULTS[:1], "preflight") == "PASS: preflight: all 1 checks passed"
    assert verdict(RESULTS[:3:2], "x") == "PASS: x: all 2 checks passed (1 with warnings: binlog expiry)"
    assert verdict([RESULTS[3]], "x") == "PASS: x: nothing to check"


def test_raise_if_failed_carries_the_table():
    raise_if_failed(RESULTS[:1], "preflight")
    with pytest.raises(CheckFailed, match="2 check\\(s\\) failed: binlog_format, server_id") as e:
        raise_if_failed(RESULTS, "preflight")
    assert list(e.value.table.columns) == ["item", "source", "aurora", "ok", "advice"]


def test_comparison_frame_from_tuples_and_mappings():
    frame = comparison_frame([("server_id", 1, 2), {"item": "gtid_mode", "source": "ON", "aurora": "ON"}])
    assert list(frame.columns) == ["item", "source", "aurora", "same"]
    assert list(frame["same"]) == ["≠", "✔"]


def test_styled_table_renders_static_html():
    html = styled(checks_frame(RESULTS)).to_html()
    assert "<table" in html and "binlog_format" in html and "#fde7e9" in html and "<script" not in html


def test_styled_table_escapes_cell_text_and_keeps_numbers():
    frame = pd.DataFrame({"check": ["key <id> & name", "rows"], "value": ["<b>x</b>", 1234567], "ok": ["✘", "✔"]})
    html = styled(frame).to_html()
    assert "key &lt;id&gt; &amp; name" in html and "&lt;b&gt;x&lt;/b&gt;" in html
    assert "<b>x</b>" not in html and "1234567" in html


def test_show_prints_without_ipython(capsys):
    show(checks_frame(RESULTS[:2]))
    show(styled(checks_frame(RESULTS[:1])))
    show("plain line")
    out = capsys.readouterr().out
    assert "binlog_format" in out and "gtid_mode" in out and out.rstrip().endswith("plain line")
    assert "<table" not in out


def test_show_masks_secrets_in_text(capsys):
    Redactor.default().register("Shown-Secret-10", "aurora_admin_password")
    show("password is Shown-Secret-10")
    show(pd.DataFrame({"x": ["Shown-Secret-10"]}))
    out = capsys.readouterr().out
    assert "Shown-Secret-10" not in out and out.count(MASK) == 2


def test_show_uses_ipython_display_in_a_shell(monkeypatch):
    shown = []
    monkeypatch.setattr(display, "in_ipython", lambda: True)
    monkeypatch.setattr("IPython.display.display", shown.append)
    frame = checks_frame(RESULTS)
    show(frame)
    assert shown == [frame]


def test_show_checks_prints_the_verdict(capsys):
    assert show_checks(RESULTS, "preflight") is None
    assert verdict(RESULTS, "preflight") in capsys.readouterr().out
