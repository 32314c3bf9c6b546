"""runbook_lib.aws.calls: botocore errors as AwsError with a hint, and the wait for a cluster that failed
(botocore Stubber against the real RDS service model)."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from botocore.stub import Stubber

from runbook_lib.aws import calls as aws
from runbook_lib.aws import clusters
from runbook_lib.context.session import open_session
from runbook_lib.core.errors import AwsError
from tests.support import REPO

LAB = REPO / "parameters" / "lab.yaml"
GROUP = "runbook-bidir-aurora8"


@pytest.fixture
def rb():
    session = open_session(LAB, quiet=True)
    yield session
    session.close()


@pytest.mark.parametrize("code, hint", [
    ("AccessDenied", "lacks the permission for ModifyDBClusterParameterGroup"),
    ("InvalidParameterValue", "gtid-mode with a hyphen"),
    ("ExpiredToken", "log in again"),
])
def test_client_errors_become_aws_errors_with_a_hint(rb, code, hint):
    with Stubber(rb.aws("rds")) as s:
        s.add_client_error("modify_db_cluster_parameter_group", code, "refused", 400)
        with pytest.raises(AwsError) as e:
            aws.aws_call(rb.aws("rds"), "modify_db_cluster_parameter_group",
                         DBClusterParameterGroupName=GROUP,
                         Parameters=[{"ParameterName": "x", "ParameterValue": "1", "ApplyMethod": "immediate"}])
    assert e.value.operation == "ModifyDBClusterParameterGroup" and code in e.value.detail
    assert hint in e.value.hint and aws.error_code(e.value) == code


def test_unreachable_endpoint_hints_at_region_and_endpoint():
    from botocore.exceptions import EndpointConnectionError
    err = aws.aws_error(EndpointConnectionError(endpoint_url="https://rds.xx-nowhere-1.amazonaws.com"),
                        "DescribeDBClusters")
    assert "aws_region" in err.hint and "aws_endpoint_url" in err.hint


def test_a_failed_restore_reports_the_event(rb, monkeypatch):
    monkeypatch.setattr(clusters.time, "sleep", lambda s: None)
    failed = {"DBClusters": [{"DBClusterIdentifier": "runbook-aurora", "Status": "migration-failed"}]}
    with Stubber(rb.aws("rds")) as s:
        s.add_response("describe_db_clusters", failed, {"DBClusterIdentifier": "runbook-aurora"})
        s.add_response("describe_events", {"Events": [{"Message": "Unable to find xtrabackup_checkpoints",
                                                       "Date": datetime.now(timezone.utc)}]},
                       {"SourceIdentifier": "runbook-aurora", "SourceType": "db-cluster", "Duration": 1440})
        with pytest.raises(AwsError, match="xtrabackup_checkpoints") as e:
            clusters.wait_until_available(rb.aws("rds"), "runbook-aurora", 1)
    assert "delete the failed cluster" in e.value.hint
