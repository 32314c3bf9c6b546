"""runbook_lib.aws.engine_versions: the Aurora release -> MySQL version table and its look-ups."""
from __future__ import annotations

from runbook_lib.aws.engine_versions import (
    MYSQL_OF_AURORA,
    engine_name,
    mysql_of,
    oldest_engine_for,
    parse_engine_version,
)


def test_release_notes_pairs():
    # "Database engine updates for Amazon Aurora MySQL version 3/2" and the release notes' history
    assert mysql_of((3, 8, 0)) == mysql_of((3, 8, 2)) == (8, 0, 39)
    assert mysql_of((3, 4, 4)) == (8, 0, 28)
    assert mysql_of((3, 9, 0)) == (8, 0, 40)
    assert mysql_of((3, 12, 0)) == (8, 0, 44)
    assert mysql_of((2, 11, 6)) == (5, 7, 12)
    assert mysql_of((2, 12, 1)) == (5, 7, 40) and mysql_of((2, 12, 5)) == (5, 7, 44)
    assert mysql_of((3, 3, 0)) is None            # a deprecated line the table does not carry


def test_table_is_ordered_and_mysql_never_goes_back_within_a_major():
    firsts = [a for a, _ in MYSQL_OF_AURORA]
    assert firsts == sorted(firsts)
    for (a1, m1), (a2, m2) in zip(MYSQL_OF_AURORA, MYSQL_OF_AURORA[1:]):
        if m1[:2] == m2[:2]:
            assert m1 <= m2, (a1, a2)


def test_parse_engine_version():
    e = parse_engine_version("8.0.mysql_aurora.3.08.0")
    assert (e.aurora, e.mysql, e.mysql_text) == ((3, 8, 0), (8, 0, 39), "8.0.39")
    assert "Aurora MySQL 3.08.0, MySQL 8.0.39" in e.describe()
    assert parse_engine_version("3.08.0") is None
    assert parse_engine_version("8.0.mysql_aurora.3.99.0").mysql is None


def test_oldest_engine_that_takes_a_source():
    assert oldest_engine_for((8, 0, 40)).engine_version == "8.0.mysql_aurora.3.09.0"
    assert oldest_engine_for((8, 0, 39)).engine_version == "8.0.mysql_aurora.3.08.0"
    assert oldest_engine_for((8, 0, 20)).engine_version == "8.0.mysql_aurora.3.04.0"
    assert oldest_engine_for((5, 7, 41)).engine_version == "5.7.mysql_aurora.2.12.2"
    assert oldest_engine_for((8, 0, 99)) is None
    assert oldest_engine_for((9, 7, 4)) is None
    assert engine_name((3, 10, 0)) == "8.0.mysql_aurora.3.10.0"
