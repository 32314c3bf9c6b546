"""GTID sets as immutable values, so "has the replica caught up?" reads as ``source in replica``.

Parses what MySQL prints (``@@gtid_executed``, ``Retrieved_Gtid_Set``, ...), including newlines
after commas and MySQL 8.4+ tagged GTIDs (``uuid:1-5:tag_a:1-3``), and does the set arithmetic
of ``GTID_SUBTRACT``/``GTID_SUBSET`` in Python.  ``str()`` gives MySQL's canonical form
(uuids sorted and lower case, intervals merged, untagged intervals before tagged ones), with
``,`` and no newline between uuids.

Parsing is a little stricter than MySQL, which silently ignores some typos: a reversed interval
(``5-3``) or a uuid/tag without any interval raises :class:`ValueError` instead of meaning nothing.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

#: Largest transaction number MySQL accepts (2**63 - 2).
MAX_GNO = 2**63 - 2

_Interval = tuple[int, int]          # inclusive [start, end]
_Key = tuple[str, str]               # (uuid, tag); tag '' for untagged GTIDs
_Items = tuple[tuple[_Key, tuple[_Interval, ...]], ...]

_HEX32 = re.compile(r"[0-9a-f]{32}")
_DASHED = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TAG = re.compile(r"[a-z_][a-z0-9_]{0,31}")
_INTERVAL = re.compile(r"(\d+)(?:-(\d+))?")
_WHITESPACE = re.compile(r"\s+")


def _normalise_uuid(text: str, whole: str) -> str:
    u = text.lower()
    if u.startswith("{") and u.endswith("}"):
        u = u[1:-1]
    if _DASHED.fullmatch(u):
        return u
    if _HEX32.fullmatch(u):
        return f"{u[:8]}-{u[8:12]}-{u[12:16]}-{u[16:20]}-{u[20:]}"
    raise ValueError(f"invalid GTID set {whole!r}: {text!r} is not a server uuid")


def _merge(intervals: Iterable[_Interval]) -> tuple[_Interval, ...]:
    """Sort intervals and merge overlapping or adjacent ones."""
    out: list[list[int]] = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return tuple((s, e) for s, e in out)


def _subtract(a: tuple[_Interval, ...], b: tuple[_Interval, ...]) -> tuple[_Interval, ...]:
    out: list[_Interval] = []
    for start, end in a:
        for bs, be in b:
            if be < start or bs > end:
                continue
            if bs > start:
                out.append((start, bs - 1))
            start = be + 1
            if start > end:
                break
        if start <= end:
            out.append((start, end))
    return tuple(out)


def _intersect(a: tuple[_Interval, ...], b: tuple[_Interval, ...]) -> tuple[_Interval, ...]:
    out: list[_Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start <= end:
            out.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


class GtidSet:
    """An immutable, normalised MySQL GTID set.

    ``GtidSet('uuid:1-5')``, ``GtidSet.parse(text)``; operators ``| - &``, ``<= >= < > ==``,
    ``'uuid:7' in s`` (one GTID, or any GTID set text), ``other_set in s`` (subset), ``bool(s)``.
    """

    __slots__ = ("_items",)
    _items: _Items

    def __init__(self, text: str = "") -> None:
        if not isinstance(text, str):
            raise TypeError(f"GtidSet() takes GTID set text, not {type(text).__name__}")
        object.__setattr__(self, "_items", self._parse_items(text))

    # --- construction -------------------------------------------------------

    @classmethod
    def parse(cls, text: str) -> GtidSet:
        """Parse MySQL GTID set text; ``''`` (or only whitespace) is the empty set."""
        return cls(text)

    @classmethod
    def _from_map(cls, data: dict[_Key, Iterable[_Interval]]) -> GtidSet:
        new = cls.__new__(cls)
        items = tuple((key, _merge(ivs)) for key, ivs in sorted(data.items()))
        object.__setattr__(new, "_items", tuple((k, ivs) for k, ivs in items if ivs))
        return new

    @staticmethod
    def _parse_items(text: str) -> _Items:
        whole = text
        data: dict[_Key, list[_Interval]] = {}
        for element in _WHITESPACE.sub("", text).split(","):
            if not element:
                continue  # MySQL prints "a,\nb" and tolerates stray commas
            uuid_text, *parts = element.split(":")
            uuid = _normalise_uuid(uuid_text, whole)
            if not parts:
                raise ValueError(f"invalid GTID set {whole!r}: {uuid_text!r} has no transaction numbers")
            tag = ""
            tag_has_interval: bool | None = None  # None: nothing yet (empty untagged part is fine)
            for part in parts:
                m = _INTERVAL.fullmatch(part)
                if m:
                    start = int(m.group(1))
                    end = int(m.group(2)) if m.group(2) is not None else start
                    if not 1 <= start <= end <= MAX_GNO:
                        raise ValueError(f"invalid GTID set {whole!r}: interval {part!r} must satisfy "
                                         f"1 <= start <= end <= {MAX_GNO}")
                    data.setdefault((uuid, tag), []).append((start, end))
                    tag_has_interval = True
                elif _TAG.fullmatch(part.lower()):
                    if tag_has_interval is False:
                        raise ValueError(f"invalid GTID set {whole!r}: {tag or uuid!r} has no "
                                         "transaction numbers")
                    tag, tag_has_interval = part.lower(), False
                else:
                    raise ValueError(f"invalid GTID set {whole!r}: {part!r} is neither an interval "
                                     "(N or N-M) nor a tag")
            if not tag_has_interval:
                raise ValueError(f"invalid GTID set {whole!r}: tag {tag!r} has no transaction numbers")
        return tuple((key, _merge(ivs)) for key, ivs in sorted(data.items()))

    @staticmethod
    def _coerce(other: object) -> GtidSet:
        if isinstance(other, GtidSet):
            return other
        if isinstance(other, str):
            return GtidSet(other)
        raise TypeError(f"expected a GtidSet or GTID text, not {type(other).__name__}")

    def _map(self) -> dict[_Key, tuple[_Interval, ...]]:
        return dict(self._items)

    # --- set algebra --------------------------------------------------------

    def __or__(self, other: GtidSet) -> GtidSet:
        if not isinstance(other, GtidSet):
            return NotImplemented
        data: dict[_Key, list[_Interval]] = {}
        for key, ivs in self._items + other._items:
            data.setdefault(key, []).extend(ivs)
        return GtidSet._from_map(data)

    def __sub__(self, other: GtidSet) -> GtidSet:
        if not isinstance(other, GtidSet):
            return NotImplemented
        theirs = other._map()
        return GtidSet._from_map({k: _subtract(ivs, theirs.get(k, ())) for k, ivs in self._items})

    def __and__(self, other: GtidSet) -> GtidSet:
        if not isinstance(other, GtidSet):
            return NotImplemented
        theirs = other._map()
        return GtidSet._from_map({k: _intersect(ivs, theirs[k]) for k, ivs in self._items if k in theirs})

    def union(self, other: GtidSet | str) -> GtidSet:
        return self | self._coerce(other)

    def difference(self, other: GtidSet | str) -> GtidSet:
        return self - self._coerce(other)

    def intersection(self, other: GtidSet | str) -> GtidSet:
        return self & self._coerce(other)

    def issubset(self, other: GtidSet | str) -> bool:
        return not (self - self._coerce(other))

    def issuperset(self, other: GtidSet | str) -> bool:
        return self._coerce(other).issubset(self)

    def __le__(self, other: GtidSet) -> bool:
        return self.issubset(other) if isinstance(other, GtidSet) else NotImplemented

    def __ge__(self, other: GtidSet) -> bool:
        return self.issuperset(other) if isinstance(other, GtidSet) else NotImplemented

    def __lt__(self, other: GtidSet) -> bool:
        return self.issubset(other) and self != other if isinstance(other, GtidSet) else NotImplemented

    def __gt__(self, other: GtidSet) -> bool:
        return self.issuperset(other) and self != other if isinstance(other, GtidSet) else NotImplemented

    def __contains__(self, item: object) -> bool:
        """``'uuid:N' in s`` or ``subset in s``: every transaction of *item* is in this set."""
        return self._coerce(item).issubset(self)

    # --- value behaviour ----------------------------------------------------

    def __eq__(self, other: object) -> bool:
        return self._items == other._items if isinstance(other, GtidSet) else NotImplemented

    def __hash__(self) -> int:
        return hash(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("GtidSet is immutable")

    def __reduce__(self) -> tuple[type[GtidSet], tuple[str]]:
        return (GtidSet, (str(self),))

    def count(self) -> int:
        """Number of transactions in the set."""
        return sum(end - start + 1 for _, ivs in self._items for start, end in ivs)

    def uuids(self) -> tuple[str, ...]:
        """The server uuids present, sorted."""
        return tuple(sorted({uuid for (uuid, _), _ in self._items}))

    def intervals(self) -> Iterator[tuple[str, str, int, int]]:
        """Yield ``(uuid, tag, start, end)`` for each normalised interval."""
        for (uuid, tag), ivs in self._items:
            for start, end in ivs:
                yield uuid, tag, start, end

    def __str__(self) -> str:
        by_uuid: dict[str, list[str]] = {}
        for (uuid, tag), ivs in self._items:
            parts = by_uuid.setdefault(uuid, [uuid])
            if tag:
                parts.append(tag)
            parts.extend(str(s) if s == e else f"{s}-{e}" for s, e in ivs)
        return ",".join(":".join(parts) for parts in by_uuid.values())

    def __repr__(self) -> str:
        return f"GtidSet({str(self)!r})"
