"""The Aurora cluster: :class:`Cluster` and :func:`describe_cluster` (what DescribeDBClusters says; None
when there is no cluster); :func:`wait_until_available` and :func:`wait_instance_available` poll until
AWS reports ``available`` (AwsError with the cluster's recent events, :func:`cluster_events`, when it
failed).
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runbook_lib.aws.calls import aws_call, error_code
from runbook_lib.core.errors import AwsError, NotApplied, RunbookError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: Cluster/instance statuses from which AWS does not go on to 'available' by itself.
FAILED_STATES = ("failed", "migration-failed", "cloning-failed", "inaccessible-encryption-credentials",
                 "incompatible-parameters", "incompatible-restore", "incompatible-network", "storage-full",
                 "stopped")



@dataclass(frozen=True)
class Cluster:
    """What DescribeDBClusters says about the cluster."""

    identifier: str
    status: str
    parameter_group: str
    engine_version: str
    endpoint: str
    members: tuple[tuple[str, bool, str], ...]    # (instance, is writer, parameter group status)

    @classmethod
    def from_aws(cls, d: dict) -> Cluster:
        members = tuple((m["DBInstanceIdentifier"], bool(m.get("IsClusterWriter")),
                         m.get("DBClusterParameterGroupStatus", "")) for m in d.get("DBClusterMembers", []))
        return cls(d["DBClusterIdentifier"], d.get("Status", ""), d.get("DBClusterParameterGroup", ""),
                   d.get("EngineVersion", ""), d.get("Endpoint", ""), members)

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd
        rows = [{"instance": i, "role": "writer" if w else "reader", "parameter group status": s}
                for i, w, s in self.members]
        return pd.DataFrame(rows, columns=["instance", "role", "parameter group status"])


def describe_cluster(rds: Any, cluster_id: str) -> Cluster | None:
    """The cluster as DescribeDBClusters gives it; None if it does not exist."""
    try:
        found = aws_call(rds, "describe_db_clusters", DBClusterIdentifier=cluster_id)["DBClusters"]
    except AwsError as e:
        if error_code(e) in ("DBClusterNotFoundFault", "DBClusterNotFound"):
            return None
        raise
    return Cluster.from_aws(found[0]) if found else None


def cluster_events(rds: Any, cluster_id: str) -> str:
    """The cluster's last three events of the past day, as one line ('' if none)."""
    answer = aws_call(rds, "describe_events", SourceIdentifier=cluster_id, SourceType="db-cluster", Duration=1440)
    return "; ".join(e.get("Message", "") for e in answer.get("Events", [])[-3:])


def _wait(what: str, read: Callable[[], str], timeout_minutes: float, failed: Callable[[str], Exception]) -> None:
    """Poll ``read()`` (1 s, doubling to 30 s) until 'available', showing the status and the time taken."""
    from tqdm import tqdm
    deadline, pause = time.monotonic() + timeout_minutes * 60, 1.0
    with tqdm(desc=what, bar_format="{desc} ({elapsed} elapsed)", file=sys.stdout, mininterval=1) as bar:
        while (status := read()) != "available":
            bar.set_description_str(f"{what}: {status}")
            if status in FAILED_STATES:
                raise failed(status)
            if time.monotonic() > deadline:
                raise RunbookError(f"{what} is still {status} after {timeout_minutes:g} min",
                                   hint="AWS goes on working on it: run this cell again later (nothing is done twice)")
            time.sleep(pause)
            pause = min(pause * 2, 30.0)
        bar.set_description_str(f"{what}: available")


def wait_until_available(rds: Any, cluster_id: str, timeout_minutes: float) -> Cluster:
    """Wait for the cluster; NotApplied if there is none, AwsError (with its events) if it failed."""
    seen: list[Cluster] = []

    def read() -> str:
        cluster = describe_cluster(rds, cluster_id)
        if cluster is None:
            raise NotApplied(f"cluster {cluster_id}", "restore")
        seen.append(cluster)
        return cluster.status

    def failed(status: str) -> AwsError:
        return AwsError("RestoreDBClusterFromS3", f"cluster {cluster_id} is {status}: "
                        f"{cluster_events(rds, cluster_id) or 'no event'}",
                        hint="fix the cause the event names, delete the failed cluster (it keeps the identifier), "
                             "then run this phase again")

    _wait(f"cluster {cluster_id}", read, timeout_minutes, failed)
    return seen[-1]


def wait_instance_available(rds: Any, instance: str, timeout_minutes: float) -> None:
    """Wait for a DB instance as :func:`wait_until_available` does for the cluster."""
    def read() -> str:
        return aws_call(rds, "describe_db_instances", DBInstanceIdentifier=instance)["DBInstances"][0]["DBInstanceStatus"]

    def failed(status: str) -> AwsError:
        return AwsError("CreateDBInstance", f"instance {instance} is {status}",
                        hint="read the instance's events in the RDS console; delete it and run this phase again")

    _wait(f"instance {instance}", read, timeout_minutes, failed)
