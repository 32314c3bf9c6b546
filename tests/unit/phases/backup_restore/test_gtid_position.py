"""runbook_lib.phases.backup_restore.gtid_position: which statement sets the backup's GTID position on
which Aurora version (pure: Dialects of detected identities, no server)."""
from __future__ import annotations

import pytest

from runbook_lib.core.errors import CheckFailed
from runbook_lib.mysql.dialect import dialect_for
from runbook_lib.mysql.gtid import GtidSet
from runbook_lib.mysql.identity import Flavor, ServerIdentity
from runbook_lib.phases.backup_restore.gtid_position import MAX_SKIPS, missing_gtids, statements

SRC = "38cb7491-e775-11f1-ac1e-02fc00000001"
POSITION = GtidSet.parse(f"{SRC}:1-250000")     # a backup's xtrabackup_binlog_info GTID set


def aurora(version: str):
    generation = version[0]
    ident = ServerIdentity((8, 0, 39) if generation == "3" else (5, 7, 44), "x", "",
                           Flavor.AURORA3 if generation == "3" else Flavor.AURORA2, version, 1, "u")
    return dialect_for(ident, role="aurora")


def test_missing_part_of_the_position():
    assert missing_gtids(POSITION, GtidSet()) == POSITION
    assert missing_gtids(POSITION, POSITION) == GtidSet()
    later = GtidSet.parse(f"{SRC}:1-250010")
    assert missing_gtids(POSITION, later) == GtidSet()
    assert missing_gtids(POSITION, GtidSet.parse(f"{SRC}:1-100")) == GtidSet.parse(f"{SRC}:101-250000")


def test_a_position_read_after_a_clone_during_writes_is_never_declared():
    """The clone's position was read after it: Aurora's own history is the position; none at all stops."""
    assert missing_gtids(POSITION, GtidSet.parse(f"{SRC}:1-249990"), exact=False) == GtidSet()
    with pytest.raises(CheckFailed, match="GTID position"):
        missing_gtids(POSITION, GtidSet(), exact=False)


@pytest.mark.parametrize("version", ["3.04.0", "3.08.2", "3.12.0"])
def test_aurora_3_04_and_later_declare_the_whole_position_in_one_call(version):
    sqls = statements(aurora(version), POSITION)
    assert [s.shown() for s in sqls] == [f"CALL mysql.rds_gtid_purged('+{SRC}:1-250000')"]


@pytest.mark.parametrize("version", ["3.03.1", "2.12.5", "2.11.6"])
def test_older_aurora_skips_a_few_one_by_one_and_stops_with_the_steps_for_many(version):
    few = statements(aurora(version), GtidSet.parse(f"{SRC}:7-9"))
    assert [s.shown() for s in few] == [f"CALL mysql.rds_skip_transaction_with_gtid('{SRC}:{n}')" for n in (7, 8, 9)]
    assert len(statements(aurora(version), GtidSet.parse(f"{SRC}:1-{MAX_SKIPS}"))) == MAX_SKIPS
    with pytest.raises(CheckFailed) as info:
        statements(aurora(version), POSITION)
    assert "3.04" in info.value.hint and "Do not start replication" in info.value.hint


def test_nothing_missing_nothing_to_run():
    assert statements(aurora("3.08.0"), GtidSet()) == []
