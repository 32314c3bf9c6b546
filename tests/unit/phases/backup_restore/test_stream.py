"""runbook_lib.phases.backup_restore.stream: piece names and sizes within S3's limits (the uploads themselves
run against the lab's S3 in tests/integration/phases/backup_restore/test_backup_stream_lab.py)."""
from __future__ import annotations

import io

import pytest

from runbook_lib.core.errors import RunbookError
from runbook_lib.phases.backup_restore import stream as s3stream


def test_pieces_are_named_like_split_d_and_sort_in_order():
    keys = [s3stream.piece_key("backup/T/", "backup", ".xbstream", i) for i in (0, 1, 9, 10, 99)]
    assert keys[:2] == ["backup/T/backup.xbstream00", "backup/T/backup.xbstream01"]
    assert sorted(keys) == keys


def test_a_piece_stays_under_5_tb_and_10000_parts():
    assert s3stream.parts_per_piece(64 * 2**20) == 10_000                     # 625 GiB pieces
    assert s3stream.parts_per_piece(5 * 2**30) * 5 * 2**30 <= s3stream.MAX_PIECE   # 5 GiB parts: 931 of them
    assert s3stream.parts_per_piece(5 * 2**30) == 931


def test_parts_outside_s3s_limits_are_refused_before_any_call():
    with pytest.raises(RunbookError, match="outside S3's limits"):
        s3stream.upload_stream(None, "b", "p/", "backup", ".xbstream", io.BytesIO(b"x"), part_bytes=2**20)


def test_what_s3_holds_is_described_with_the_parts_kept():
    state = s3stream.Pending((("p/backup.xbstream00", 10 * 2**20),), "p/backup.xbstream01", "abcdefabcdef0123",
                             (s3stream.Part(1, 5 * 2**20, '"e1"'),))
    assert state.bytes_done == 15 * 2**20 and not state.empty
    assert state.describe() == ("1 piece(s) complete, p/backup.xbstream01 open with 1 part(s) kept "
                                "(upload id abcdefabcdef...): 15.0 MiB in S3")
    assert s3stream.Pending().describe() == "nothing in S3 yet"
