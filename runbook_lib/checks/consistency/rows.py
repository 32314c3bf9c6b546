"""Row-level report of a consistency check: differing keys, each marked 'changed' / 'only on source' /
'only on aurora', and a sample of the differing column values of the first few.

* :func:`key_rows` reads ``key -> row CRC`` for a list of keys (``WHERE (key) IN (...)``, 500 keys a
  statement): what a re-verification compares, and what a differing chunk is narrowed to.
* :func:`key_diffs` (pure) turns both sides' ``key -> CRC`` into :class:`KeyRange` entries of one key
  each, capped, with the count.
* :func:`samples` reads the first few 'changed' rows whole on both sides and lists the columns whose
  values differ (:class:`RowSample`, values cut to ``VALUE_CHARS`` characters).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from runbook_lib.checks.consistency.chunks import ONLY_AURORA, ONLY_SOURCE, KeyRange, TableShape, key_text
from runbook_lib.mysql.sql import q

if TYPE_CHECKING:  # pragma: no cover
    from runbook_lib.checks.consistency.chunks import Pair

CHANGED = "changed"
KEYS_PER_STATEMENT = 500
VALUE_CHARS = 60
SAMPLE_COLUMNS = ["table", "key", "column", "source", "aurora"]


@dataclass(frozen=True)
class RowSample:
    """One differing column of one row that both sides hold."""

    table: str
    key: str
    column: str
    source: str
    aurora: str


def samples_frame(found: Sequence[RowSample]) -> pd.DataFrame:
    return pd.DataFrame([{c: getattr(s, c) for c in SAMPLE_COLUMNS} for s in found], columns=SAMPLE_COLUMNS)


def in_sql(cols: Sequence[str], keys: Sequence[tuple]) -> tuple[str, list]:
    """``(a, b) IN ((%s, %s), ...)`` (``a IN (...)`` for one column) and its arguments."""
    if len(cols) == 1:
        return f"{q(cols[0])} IN ({', '.join(['%s'] * len(keys))})", [k[0] for k in keys]
    one = "(" + ", ".join(["%s"] * len(cols)) + ")"
    return (f"({', '.join(q(c) for c in cols)}) IN ({', '.join([one] * len(keys))})",
            [v for k in keys for v in k])


def key_rows(server: Any, shape: TableShape, keys: Sequence[tuple]) -> dict[tuple, int]:
    """``key -> row CRC`` of those of ``keys`` that ``server`` holds."""
    out, names = {}, ", ".join(f"{q(k)} AS k{i}" for i, k in enumerate(shape.key))
    for start in range(0, len(keys), KEYS_PER_STATEMENT):
        where, args = in_sql(shape.key, keys[start:start + KEYS_PER_STATEMENT])
        for r in server.query(f"SELECT {names}, {shape.row_crc()} AS x FROM {shape.sql_name} WHERE {where}",
                              tuple(args)):
            out[tuple(r[f"k{i}"] for i in range(len(shape.key)))] = int(r["x"])
    return out


def key_diffs(table: str, src: dict, aur: dict, cap: int) -> tuple[list[KeyRange], int]:
    """Differing keys as one-key :class:`KeyRange` entries (the first ``cap``), and how many differ."""
    keys = sorted((k for k in src.keys() | aur.keys() if src.get(k) != aur.get(k)), key=key_order)
    out = [KeyRange(table, key_text(k), key_text(k), 1, CHANGED if k in src and k in aur else
                    ONLY_SOURCE if k in src else ONLY_AURORA) for k in keys[:cap]]
    return out, len(keys)


def key_order(key: tuple) -> tuple:
    """Sort order of keys whose values may mix numbers and text."""
    return tuple((0, v) if isinstance(v, (int, float)) else (1, str(v)) for v in key)


def _shown(value: Any) -> str:
    text = "NULL" if value is None else value.hex() if isinstance(value, (bytes, bytearray)) else str(value)
    return text if len(text) <= VALUE_CHARS else text[:VALUE_CHARS - 3] + "..."


def samples(pair: Pair, shape: TableShape, keys: Sequence[tuple], limit: int) -> list[RowSample]:
    """The differing columns of the first ``limit`` of ``keys`` (rows both sides hold), read whole."""
    keys = list(keys[:limit])
    if not keys:
        return []
    where, args = in_sql(shape.key, keys)
    cols = ", ".join(q(c.name) for c in shape.columns)
    sql = f"SELECT {cols} FROM {shape.sql_name} WHERE {where}"
    rows = pair.both(lambda s: {tuple(r[k] for k in shape.key): r for r in s.query(sql, tuple(args))})
    out = []
    for key in keys:
        a, b = rows[0].get(key), rows[1].get(key)
        if a is None or b is None:
            continue
        out += [RowSample(shape.table, key_text(key), c.name, _shown(a[c.name]), _shown(b[c.name]))
                for c in shape.columns if a[c.name] != b[c.name]]
    return out
