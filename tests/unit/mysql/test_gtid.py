"""GtidSet: parsing, canonical text and set algebra, checked against MySQL 9.7's own answers."""
from __future__ import annotations

import pickle
import random

import pytest

from runbook_lib.mysql.gtid import MAX_GNO, GtidSet
from tests.support import UNIT_DATA

DATA = UNIT_DATA
A = "f5490ab2-e770-11f1-b41c-02fc00000001"
B = "f71d3ef7-e770-11f1-91dc-02fc00000001"
C = "3e11fa47-71ca-11e1-9e33-c80aa9429562"


def oracle_rows() -> list[list[str]]:
    rows = []
    for line in (DATA / "gtid_oracle_mysql97.txt").read_text().splitlines():
        if line.startswith("#"):
            continue
        rows.append([f.replace("\\n", "\n") for f in line.split("\t")])
    return rows


# --- parsing and canonical text -------------------------------------------------

@pytest.mark.parametrize("text, canonical", [
    ("", ""),
    (" \n", ""),
    (f"{A}:1-5", f"{A}:1-5"),
    (f"{A}:1-5:7", f"{A}:1-5:7"),
    (f"{A.upper()}:3:1-2", f"{A}:1-3"),                             # case, order, adjacency
    (f"{A}:1-5:3-9:11", f"{A}:1-9:11"),                             # overlap
    (f"{B}:1-3,\n{A}:1-8", f"{A}:1-8,{B}:1-3"),                     # as MySQL prints it; sorted by uuid
    (f"{A}:1,{A}:2", f"{A}:1-2"),                                   # the same uuid twice
    (f"{A}:1 , {A}:3", f"{A}:1:3"),
    (f"{A}:1,", f"{A}:1"),                                           # MySQL tolerates stray commas
    (f"{A}:1-1", f"{A}:1"),
    (f"{A}:01", f"{A}:1"),
    (f"{A.replace('-', '')}:1", f"{A}:1"),                          # MySQL's other uuid spellings
    (f"{{{A}}}:1", f"{A}:1"),
    (f"{A}:{MAX_GNO}", f"{A}:{MAX_GNO}"),
    # MySQL 8.4+ tagged GTIDs: untagged first, then tags sorted; tags lower case
    (f"{A}:1-5:TAG_A:2", f"{A}:1-5:tag_a:2"),
    (f"{A}:tag_a:1-3:tag_b:2:tag_a:4", f"{A}:tag_a:1-4:tag_b:2"),
    (f"{A}:_x:1:abcdefghijabcdefghijabcdefghij12:3", f"{A}:_x:1:abcdefghijabcdefghijabcdefghij12:3"),
])
def test_parse_canonical(text: str, canonical: str) -> None:
    assert str(GtidSet.parse(text)) == canonical
    assert GtidSet.parse(canonical) == GtidSet(text)


def test_parses_real_status_output_with_tags() -> None:
    # Executed_Gtid_Set captured from MySQL 9.7 (show_replica_status_mysql97_running_tagged.txt)
    text = (f"{A}:1-12,\n{B}:1-3:cutover_1:1:runbook_heartbeat:1")
    s = GtidSet(text)
    assert s.count() == 12 + 3 + 1 + 1
    assert s.uuids() == (A, B)
    assert f"{B}:runbook_heartbeat:1" in s
    assert f"{B}:4" not in s
    assert str(s) == text.replace("\n", "")
    assert list(s.intervals())[-1] == (B, "runbook_heartbeat", 1, 1)


@pytest.mark.parametrize("text, fragment", [
    (A, "has no transaction numbers"),                 # MySQL silently reads this as empty
    (f"{A}:", "neither an interval"),
    (f"{A}:1:", "neither an interval"),
    (f"{A}:tag_a", "has no transaction numbers"),      # MySQL: empty
    (f"{A}:tag_a:tag_b:1", "has no transaction numbers"),
    (f"{A}:1:tag_a", "has no transaction numbers"),
    (f"{A}:0", "1 <= start <= end"),
    (f"{A}:5-3", "1 <= start <= end"),                 # MySQL: empty
    (f"{A}:{MAX_GNO + 1}", "1 <= start <= end"),
    (f"{A}:1:1abc:3", "neither an interval"),
    (f"{A}:1:abcdefghijabcdefghijabcdefghij123:3", "neither an interval"),   # tag > 32 chars
    (f"{A}:+3", "neither an interval"),
    ("not-a-uuid:1", "is not a server uuid"),
    (f"{A[:-1]}:1", "is not a server uuid"),
])
def test_invalid_text_raises_value_error(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment) as info:
        GtidSet.parse(text)
    assert repr(text) in str(info.value)


def test_rejects_non_text() -> None:
    with pytest.raises(TypeError):
        GtidSet(5)  # type: ignore[arg-type]


# --- value behaviour --------------------------------------------------------------

def test_immutable_hashable_picklable() -> None:
    s = GtidSet(f"{A}:1-5")
    with pytest.raises(AttributeError):
        s._items = ()  # type: ignore[misc]
    assert {s, GtidSet(f"{A}:1-3:4-5")} == {s}
    assert pickle.loads(pickle.dumps(s)) == s
    assert repr(s) == f"GtidSet('{A}:1-5')"


def test_bool_count_uuids() -> None:
    assert not GtidSet("")
    assert GtidSet("").count() == 0
    s = GtidSet(f"{B}:1-3,{A}:1-5:7,{A}:t:1-2")
    assert s and s.count() == 3 + 5 + 1 + 2
    assert s.uuids() == (A, B)
    assert GtidSet(f"{A}:1-{MAX_GNO}").count() == MAX_GNO


def test_not_equal_to_strings() -> None:
    s = GtidSet(f"{A}:1")
    assert s != f"{A}:1"     # compare objects, never text
    with pytest.raises(TypeError):
        _ = s <= f"{A}:1"  # type: ignore[operator]


# --- algebra ---------------------------------------------------------------------

def test_operators() -> None:
    a = GtidSet(f"{A}:1-10,{B}:1-3")
    b = GtidSet(f"{A}:5-20,{C}:1")
    assert str(a | b) == f"{C}:1,{A}:1-20,{B}:1-3"
    assert str(a - b) == f"{A}:1-4,{B}:1-3"
    assert str(b - a) == f"{C}:1,{A}:11-20"
    assert str(a & b) == f"{A}:5-10"
    assert a.union(f"{C}:1") == a | GtidSet(f"{C}:1")
    assert a.difference(f"{A}:1-10") == GtidSet(f"{B}:1-3")
    assert a.intersection(f"{B}:2-9") == GtidSet(f"{B}:2-3")


def test_subset_and_contains() -> None:
    source = GtidSet(f"{A}:1-100")
    replica = GtidSet(f"{A}:1-100,{B}:1-7")
    assert source in replica and source <= replica and source < replica
    assert replica >= source and replica > source and replica.issuperset(source)
    assert not replica <= source and replica not in source
    assert source <= source and not source < source
    assert f"{A}:100" in source and f"{A}:101" not in source
    assert f"{A.upper()}:5" in source
    assert f"{A}:1-50" in source            # any GTID text works too
    assert GtidSet("") in source and GtidSet("") <= GtidSet("")
    assert source.issubset(f"{A}:1-200")
    with pytest.raises(ValueError):
        _ = "nonsense" in source


def test_tags_are_distinct_from_untagged() -> None:
    plain = GtidSet(f"{A}:1-5")
    tagged = GtidSet(f"{A}:hb:1-5")
    assert not plain & tagged
    assert (plain | tagged).count() == 10
    assert plain not in tagged and f"{A}:hb:3" in tagged


@pytest.mark.parametrize("row", oracle_rows(), ids=lambda r: "")
def test_matches_mysql_97(row: list[str]) -> None:
    """200 random pairs whose normalisation, union, difference, intersection and subset MySQL computed."""
    text_a, text_b, norm_a, union, diff, inter, subset = row
    a, b = GtidSet(text_a), GtidSet(text_b)
    assert str(a) == norm_a
    assert str(a | b) == union
    assert str(a - b) == diff
    assert str(a & b) == inter
    assert (a <= b) is (subset == "1")


def _random_set(rnd: random.Random) -> GtidSet:
    parts = []
    for _ in range(rnd.randint(0, 5)):
        uuid = rnd.choice((A, B, C))
        tag = rnd.choice(("", "", "hb"))
        start = rnd.randint(1, 60)
        end = start + rnd.choice((0, 0, 1, 3, 20))
        parts.append(f"{uuid}{':' + tag if tag else ''}:{start}-{end}")
    return GtidSet(",".join(parts))


def _members(s: GtidSet) -> set[tuple[str, str, int]]:
    return {(u, t, n) for u, t, lo, hi in s.intervals() for n in range(lo, hi + 1)}


def test_algebra_laws_on_random_sets() -> None:
    """Property-style (no hypothesis installed): laws of sets, and agreement with Python's set."""
    rnd = random.Random(7)
    for _ in range(500):
        a, b, c = _random_set(rnd), _random_set(rnd), _random_set(rnd)
        ma, mb = _members(a), _members(b)
        assert _members(a | b) == ma | mb
        assert _members(a - b) == ma - mb
        assert _members(a & b) == ma & mb
        assert a.count() == len(ma)
        assert (a <= b) == (ma <= mb)
        assert (a | b) - b == a - b
        assert (a - b) | (a & b) == a
        assert a | (b | c) == (a | b) | c
        assert a & (b | c) == (a & b) | (a & c)
        assert GtidSet(str(a)) == a
        assert a in (a | b) and (a & b) in a
