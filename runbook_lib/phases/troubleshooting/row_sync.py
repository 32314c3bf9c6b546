"""The rows that differ in one table of a comparison, and the statements that make one side's rows
the other's.  Used by :mod:`runbook_lib.phases.troubleshooting.repair` (troubleshooting's row repair); reads only.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from runbook_lib.checks.consistency import chunks
from runbook_lib.checks.consistency.chunks import METHOD_SCAN, METHOD_WHOLE, TableShape
from runbook_lib.core.errors import CheckFailed
from runbook_lib.mysql.sql import Sql, q

if TYPE_CHECKING:  # pragma: no cover
    from runbook_lib.mysql.connection import Server

__all__ = ["differing_rows", "row_statements"]


def row_statements(shape: TableShape, have: Sequence[dict], want: Sequence[dict]) -> list[Sql]:
    """Pure: statements that turn the rows *have* (of one side) into the rows *want* (of the other).

    With a primary key: UPDATE rows both have, INSERT rows only *want* has, DELETE rows only *have*
    has.  Without one: DELETE the surplus copies of a row (matched on every column, NULL-safe, LIMIT
    count) and INSERT the missing ones.
    """
    cols = [c.name for c in shape.columns]
    insert = f"INSERT INTO {shape.sql_name} ({', '.join(q(c) for c in cols)}) VALUES ({', '.join(['%s'] * len(cols))})"
    out: list[Sql] = []
    if shape.key:
        key = lambda r: tuple(r[k] for k in shape.key)
        by_have, by_want = {key(r): r for r in have}, {key(r): r for r in want}
        where = " AND ".join(f"{q(k)} = %s" for k in shape.key)
        for k in sorted(by_have.keys() | by_want.keys(), key=str):
            h, w = by_have.get(k), by_want.get(k)
            if h is not None and w is not None and h != w:
                changed = [c for c in cols if h[c] != w[c]]
                out.append(Sql(f"UPDATE {shape.sql_name} SET {', '.join(f'{q(c)} = %s' for c in changed)} "
                               f"WHERE {where}", tuple(w[c] for c in changed) + k))
            elif w is not None and h is None:
                out.append(Sql(insert, tuple(w[c] for c in cols)))
            elif h is not None and w is None:
                out.append(Sql(f"DELETE FROM {shape.sql_name} WHERE {where}", k))
        return out
    row = lambda r: tuple(r[c] for c in cols)
    have_n, want_n = Counter(row(r) for r in have), Counter(row(r) for r in want)
    match = " AND ".join(f"{q(c)} <=> %s" for c in cols)
    for values, n in sorted((have_n - want_n).items(), key=str):
        out.append(Sql(f"DELETE FROM {shape.sql_name} WHERE {match} LIMIT {int(n)}", values))
    for values, n in sorted((want_n - have_n).items(), key=str):
        out += [Sql(insert, values)] * n
    return out


def differing_rows(source: Server, aurora: Server, shape: TableShape,
                   result: chunks.TableResult) -> tuple[list[dict], list[dict]]:
    """(source's rows, aurora's rows) that differ in one table of a comparison."""
    if result.method == METHOD_SCAN:
        if any(r.kind == "chunk" for r in result.ranges):
            raise CheckFailed("row repair", [result.table], hint="a key range was not narrowed to rows")
        where = " OR ".join([f"{q(shape.key[0])} BETWEEN %s AND %s"] * len(result.ranges)) or "FALSE"
        args = tuple(int(v) for r in result.ranges for v in (r.first, r.last))
        fetch = lambda s: s.query(f"SELECT * FROM {shape.sql_name} WHERE {where}", args)
        return fetch(source), fetch(aurora)
    if result.method == METHOD_WHOLE:
        crc = shape.row_crc()
        counts = [{int(r["x"]): int(r["n"]) for r in s.query(
            f"SELECT {crc} AS x, COUNT(*) AS n FROM {shape.sql_name} GROUP BY x")} for s in (source, aurora)]
        odd = sorted(x for x in counts[0].keys() | counts[1].keys() if counts[0].get(x) != counts[1].get(x))
        if not odd:
            return [], []
        where = f"{crc} IN ({', '.join(['%s'] * len(odd))})"
        return [s.query(f"SELECT * FROM {shape.sql_name} WHERE {where}", tuple(odd)) for s in (source, aurora)]
    raise CheckFailed("row repair", [result.table], hint="its key is not one integer column: compare the "
                      "rows in the ranges shown and repair them by hand, or re-seed")
