"""Helpers shared by the unit tests of more than one module."""
from __future__ import annotations

import dataclasses

import pytest

from runbook_lib.mysql.gtid import GtidSet
from runbook_lib.mysql.status import ReplicaStatus

SRC_UUID = "4a2160d0-e772-11f1-a03c-02fc00000001"


@pytest.fixture
def replica_status():
    """``replica_status(**changes)``: a running channel of the lab's aurora → source direction, with
    *changes* (tests of runbook_lib.checks.channels and runbook_lib.phases.replication.steps)."""
    def status(**changes) -> ReplicaStatus:
        base = ReplicaStatus(
            channel="", source_host="127.0.0.1", source_port=23307, source_user="replicator",
            source_uuid=SRC_UUID,
            source_server_id=1977146520, io_running="Yes", sql_running="Yes",
            io_state="Waiting for source to send event", sql_state="Replica has read all relay log",
            last_io_errno=0, last_io_error="", last_io_error_timestamp="", last_sql_errno=0,
            last_sql_error="", last_sql_error_timestamp="", seconds_behind=0,
            retrieved_gtid_set=GtidSet(f"{SRC_UUID}:1-3"), executed_gtid_set=GtidSet(f"{SRC_UUID}:1-3"),
            auto_position=True, connect_retry=2, ssl_allowed=True)
        return dataclasses.replace(base, **changes)
    return status
