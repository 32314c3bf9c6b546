"""runbook_lib.phases.backup_restore.s3_backup: what a backup already in S3 must be before a restore from it
(AWS, "Physical migration from MySQL by using Percona XtraBackup and Amazon S3"), without AWS."""
from __future__ import annotations

import yaml

from runbook_lib.context.params import parameters_from_mapping
from runbook_lib.mysql.gtid import GtidSet
from runbook_lib.phases.backup_restore.s3_backup import evaluate, layout, sidecar_key
from tests.support import REPO

U1 = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
P = "backup/full1/"
EXECUTED, PURGED = GtidSet(f"{U1}:1-500"), GtidSet(f"{U1}:1-50")
BINLOG_INFO = f"binlog.000012\t2345\t{U1}:1-100\n"


def statuses(result) -> dict[str, str]:
    return {r.item.split(" (")[0]: r.status for r in result.checks}


def test_layouts_aurora_reads_and_names_it_does_not():
    assert layout([f"{P}xtrabackup_checkpoints", f"{P}ibdata1", f"{P}app/t.ibd"], P) == ("directory", [])
    assert layout([f"{P}backup.xbstream00", f"{P}backup.xbstream01"], P) == ("stream", [])
    assert layout([f"{P}backup.tar.gz00", f"{P}backup.tar.gz"], P) == ("stream", [])
    assert layout([f"{P}backup.xbstream", f"{P}notes.txt"], P) == ("", ["notes.txt"])
    assert layout([], P) == ("", [])


def test_a_split_stream_with_its_position_passes_and_gives_the_pieces_in_order():
    objects = {f"{P}backup.xbstream01": 10, f"{P}backup.xbstream00": 500 * 2**20}
    found = evaluate(objects, P, BINLOG_INFO, "", EXECUTED, PURGED)
    assert set(statuses(found).values()) == {"pass"} and found.gtid == f"{U1}:1-100"
    assert [k for k, _ in found.objects] == [f"{P}backup.xbstream00", f"{P}backup.xbstream01"]


def test_what_fails_each_names_its_fix():
    big = {f"{P}backup.xbstream00": 6 * 10**12}
    found = evaluate(big, P, "", "partial = Y\n", EXECUTED, PURGED)
    rows = {r.item.split(" (")[0]: r for r in found.checks}
    assert rows["every object at most 5 TB"].status == "fail" and "split" in rows["every object at most 5 TB"].advice
    assert rows["full backup"].status == "fail"
    assert rows["GTID position"].status == "fail" and ".runbook/xtrabackup_binlog_info" in rows["GTID position"].advice
    assert statuses(evaluate({}, P, "", "", EXECUTED, PURGED))["objects under the prefix"] == "fail"


def test_the_position_must_still_seed_replication_from_this_source():
    objects = {f"{P}xtrabackup_checkpoints": 1, f"{P}ibdata1": 12 * 2**20}
    purged_later = evaluate(objects, P, BINLOG_INFO, "partial = N\n", EXECUTED, GtidSet(f"{U1}:1-200"))
    row = [r for r in purged_later.checks if r.item.startswith("GTID position")][0]
    assert row.status == "fail" and "purged binary logs after it" in row.advice
    ahead = evaluate(objects, P, f"binlog.000012\t2345\t{U1}:1-900\n", "", EXECUTED, PURGED)
    assert "does not have" in [r for r in ahead.checks if r.item.startswith("GTID position")][0].advice
    no_gtids = evaluate(objects, P, "binlog.000012\t2345\n", "", EXECUTED, PURGED)
    assert "no GTIDs" in [r for r in no_gtids.checks if r.item.startswith("GTID position")][0].advice


def test_a_streams_position_lies_beside_the_restores_prefix_not_inside_it():
    data = yaml.safe_load((REPO / "parameters" / "lab.yaml").read_text())
    p = parameters_from_mapping({**data, "s3_prefix": "backup/"})
    key = sidecar_key(p, "20261206T063751Z")
    assert key == "backup/20261206T063751Z.runbook/xtrabackup_binlog_info"
    assert not key.startswith("backup/20261206T063751Z/")
