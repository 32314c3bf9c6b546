"""Fixed-column tables and verdict lines that render the same live, headless and in HTML reports.

A check is a :class:`CheckResult` (item, source, aurora, status, advice).  :func:`checks_frame`
turns a list of them into a plain DataFrame with the columns ``item, source, aurora, ok, advice``;
:func:`styled` colours it (a pandas Styler: static HTML, no JavaScript, no widgets);
:func:`verdict` sums it up in one line.  :func:`show` displays through IPython when there is a
shell and prints otherwise, so the same code works in JupyterLab, papermill, tests and the CLI.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runbook_lib.core.errors import CheckFailed, RunbookError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

STATUSES = ("pass", "warn", "fail", "info")
SYMBOLS = {"pass": "✔", "warn": "⚠", "fail": "✖", "info": "ℹ"}
CHECK_COLUMNS = ["item", "source", "aurora", "ok", "advice"]
COMPARISON_COLUMNS = ["item", "source", "aurora", "same"]
_COLOURS = {"✔": "#e6f4ea", "⚠": "#fff4ce", "✖": "#fde7e9", "ℹ": "#eef3fb"}


@dataclass(frozen=True)
class CheckResult:
    """One row of a check table: what was checked, the value on each side, the verdict, what to do.

    ``source``/``aurora`` are shown as text ('' when a check concerns one side only).
    """

    item: str
    source: Any = ""
    aurora: Any = ""
    status: str = "info"
    advice: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise RunbookError(f"CheckResult {self.item!r}: status {self.status!r} is not one of "
                               f"{', '.join(STATUSES)}")

    @classmethod
    def equal(cls, item: str, source: Any, aurora: Any, *, advice: str = "",
              otherwise: str = "fail") -> CheckResult:
        """'pass' when both sides show the same value, else ``otherwise`` with ``advice``."""
        same = _text(source) == _text(aurora)
        return cls(item, source, aurora, "pass" if same else otherwise, "" if same else advice)

    @property
    def ok(self) -> str:
        return SYMBOLS[self.status]


def _text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "ON" if value else "OFF"
    return str(value)


def checks_frame(results: Iterable[CheckResult]) -> pd.DataFrame:
    """A DataFrame with exactly the columns item, source, aurora, ok, advice."""
    import pandas as pd
    rows = [{"item": r.item, "source": _text(r.source), "aurora": _text(r.aurora), "ok": r.ok,
             "advice": r.advice} for r in results]
    return pd.DataFrame(rows, columns=CHECK_COLUMNS)


def comparison_frame(rows: Iterable[tuple | Mapping]) -> pd.DataFrame:
    """Side-by-side values: rows of (item, source, aurora) or mappings with those keys.

    Columns item, source, aurora, same ('✔' when both sides read the same, '≠' otherwise).  A
    difference is not a failure here (server_id must differ); judge it with a CheckResult.
    """
    import pandas as pd
    table = []
    for row in rows:
        item, source, aurora = ((row["item"], row.get("source"), row.get("aurora"))
                                if isinstance(row, Mapping) else tuple(row))
        table.append({"item": str(item), "source": _text(source), "aurora": _text(aurora),
                      "same": "✔" if _text(source) == _text(aurora) else "≠"})
    return pd.DataFrame(table, columns=COMPARISON_COLUMNS)


def verdict(results: Iterable[CheckResult], what: str) -> str:
    """One line: 'PASS: <what>: all 14 checks passed' or 'FAIL: <what>: 2 of 14 checks failed: a, b'.

    'info' rows are shown in tables but are not checks.  Warnings do not fail a verdict; they are named.
    """
    results = list(results)
    checks = [r for r in results if r.status != "info"]
    failed = [r.item for r in checks if r.status == "fail"]
    warned = [r.item for r in checks if r.status == "warn"]
    warn_text = f"; {len(warned)} warning(s): {', '.join(warned)}" if warned else ""
    if failed:
        return f"FAIL: {what}: {len(failed)} of {len(checks)} checks failed: {', '.join(failed)}{warn_text}"
    if not checks:
        return f"PASS: {what}: nothing to check"
    return f"PASS: {what}: all {len(checks)} checks passed" + (
        f" ({len(warned)} with warnings: {', '.join(warned)})" if warned else "")


def raise_if_failed(results: Iterable[CheckResult], what: str, *, hint: str = "") -> None:
    """CheckFailed (carrying the table) when any result failed."""
    results = list(results)
    failed = [r.item for r in results if r.status == "fail"]
    if failed:
        raise CheckFailed(what, failed, table=checks_frame(results), hint=hint)


def styled(frame: pd.DataFrame, *, column: str = "ok") -> Any:
    """A pandas Styler colouring each row by its ok/same symbol; static HTML, index hidden.
    Cell text is HTML-escaped: a value such as ``<id>`` or ``a&b`` shows as written."""
    def colour(row: pd.Series) -> list[str]:
        background = _COLOURS.get(str(row.get(column, "")), "")
        return [f"background-color: {background}" if background else ""] * len(row)

    styler = frame.style.format(escape="html").apply(colour, axis=1).hide(axis="index")
    return styler.set_table_styles([{"selector": "td, th", "props": "text-align: left; padding: 2px 8px"}])


def show_checks(results: Iterable[CheckResult], what: str) -> None:
    """Show the coloured check table and its verdict line (returns nothing: no echo in notebooks)."""
    results = list(results)
    show_table(checks_frame(results))
    print(verdict(results, what))


def show_table(frame: pd.DataFrame) -> None:
    """A fixed-column table: styled (colours, no index) in IPython, plain text otherwise."""
    show(styled(frame) if in_ipython() else frame)


def in_ipython() -> bool:
    """True inside an IPython shell (a JupyterLab or papermill kernel, or terminal IPython)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None


def show(obj: Any) -> None:
    """Display a DataFrame/Styler/other object in IPython; otherwise print it as text.

    Text is printed in both cases (a stream output survives every report format) after masking
    any secret resolved in this process.
    """
    from runbook_lib.core.redact import redact
    if isinstance(obj, str):
        print(redact(obj))
        return
    if in_ipython():
        from IPython.display import display
        display(obj)
        return
    print(redact(_as_text(obj)))


def _as_text(obj: Any) -> str:
    import pandas as pd
    if hasattr(obj, "data") and isinstance(getattr(obj, "data"), pd.DataFrame):  # a Styler
        obj = obj.data
    if isinstance(obj, pd.DataFrame):
        with pd.option_context("display.max_colwidth", 200, "display.width", 200):
            return obj.to_string(index=False)
    return str(obj)
