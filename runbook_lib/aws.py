"""The AWS side shared by every phase: calls with readable errors, S3 objects, the Aurora cluster.

* :func:`aws_call` / :func:`aws_pages` run a boto3 call (or every page of one) and turn botocore
  errors into :class:`~runbook_lib.errors.AwsError` with a hint for the operator (:func:`aws_error`);
  :func:`error_code` reads the AWS error code behind one.
* :func:`s3_objects` and :func:`bucket_exists`: what a bucket holds.
* :class:`Cluster` and :func:`describe_cluster`: what DescribeDBClusters says (None when there is no
  cluster); :func:`wait_until_available` and :func:`wait_instance_available` poll until AWS reports
  ``available`` (AwsError with the cluster's recent events, :func:`cluster_events`, when it failed).
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runbook_lib.errors import AwsError, NotApplied, RunbookError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: Cluster/instance statuses from which AWS does not go on to 'available' by itself.
FAILED_STATES = ("failed", "migration-failed", "cloning-failed", "inaccessible-encryption-credentials",
                 "incompatible-parameters", "incompatible-restore", "incompatible-network", "storage-full",
                 "stopped")

# --- errors -------------------------------------------------------------------------------------

_HINTS = {
    "AccessDenied": "the AWS identity in use lacks the permission for {op}: grant it in IAM, or use "
                    "aws_profile of a role that has it",
    "InvalidClientTokenId": "the AWS credentials are not valid: check aws_profile / AWS_* variables",
    "UnrecognizedClientException": "the AWS credentials are not valid: check aws_profile / AWS_* variables",
    "SignatureDoesNotMatch": "the AWS secret key does not match its key id: check aws_profile",
    "ExpiredToken": "the AWS session token expired: log in again (aws sso login / new credentials)",
    "DBParameterGroupNotFound": "check aurora_parameter_group and aws_region (a group lives in one region)",
    "DBClusterParameterGroupNotFound": "check aurora_parameter_group and aws_region "
                                       "(a group lives in one region)",
    "DBParameterGroupAlreadyExists": "a group of that name exists: describe it, or choose another name",
    "DBParameterGroupQuotaExceeded": "delete unused parameter groups or ask AWS for a higher quota",
    "InvalidDBParameterGroupState": "the group is being changed or used: wait and run the cell again",
    "InvalidParameterValue": "AWS refused a value: its message names it; fix that parameter",
    "ModifyDBClusterParameterGroup/InvalidParameterValue":
        "AWS refused a parameter: check the names (Aurora spells gtid-mode with a hyphen) and values "
        "against aurora_parameter_group_family",
    "RestoreDBClusterFromS3/InvalidParameterValue":
        "check restore_role_arn: the role must exist, trust rds.amazonaws.com and allow s3:GetObject and "
        "s3:ListBucket on the backup; and check aurora_engine_version",
    "InvalidS3BucketFault": "check s3_bucket/s3_prefix (same region as the cluster) and that restore_role_arn "
                            "may read them",
    "InvalidParameterCombination": "AWS refused this combination of arguments: check the parameters file",
    "DBClusterNotFoundFault": "check aurora_cluster_id and aws_region (a cluster lives in one region)",
    "DBClusterAlreadyExistsFault": "a cluster of that name exists: this runbook never restores over it",
    "NoSuchBucket": "the bucket does not exist in this account/region: check s3_bucket and aws_region",
    "PermanentRedirect": "the bucket is in another region: set aws_region to the bucket's region "
                         "(the restore needs bucket and cluster in the same region)",
    "AuthorizationHeaderMalformed": "the bucket is in another region: set aws_region to the bucket's region",
    "Throttling": "AWS is throttling this account: wait a minute and run the cell again",
}
_CODE_ALIASES = {"AccessDeniedException": "AccessDenied", "UnauthorizedOperation": "AccessDenied",
                 "ExpiredTokenException": "ExpiredToken", "ThrottlingException": "Throttling",
                 "DBParameterGroupNotFoundFault": "DBParameterGroupNotFound",
                 "DBClusterNotFound": "DBClusterNotFoundFault",
                 "DBClusterAlreadyExists": "DBClusterAlreadyExistsFault",
                 "AllAccessDisabled": "AccessDenied", "403": "AccessDenied"}


def _operation(client: Any, method: str) -> str:
    return client.meta.method_to_api_mapping.get(method, method)


def aws_error(exc: Exception, operation: str, *, hint: str = "") -> AwsError:
    """The AwsError for a botocore ClientError/BotoCoreError; the caller raises it ``from exc``."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, NoRegionError
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "ClientError"))
        detail = f"{code}: {error.get('Message') or exc}"
        code = _CODE_ALIASES.get(code, code)
        hint = hint or _HINTS.get(f"{operation}/{code}", _HINTS.get(code, "")).format(op=operation)
    else:
        detail = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, EndpointConnectionError):
            hint = hint or ("cannot reach the AWS API: check aws_region (a real region name), "
                            "aws_endpoint_url (the lab's endpoint runs?) and this machine's network")
        elif isinstance(exc, NoCredentialsError):
            hint = hint or "no AWS credentials: set aws_profile or the AWS_* environment variables"
        elif isinstance(exc, NoRegionError):
            hint = hint or "set aws_region"
    return AwsError(operation, detail, hint=hint)


def aws_call(client: Any, method: str, **kwargs: Any) -> dict:
    """``client.<method>(**kwargs)`` with botocore errors raised as AwsError."""
    from botocore.exceptions import BotoCoreError, ClientError
    try:
        return getattr(client, method)(**kwargs)
    except (ClientError, BotoCoreError) as e:
        raise aws_error(e, _operation(client, method)) from e


def aws_pages(client: Any, method: str, key: str, **kwargs: Any) -> list[dict]:
    """Every item under ``key`` (a JMESPath, e.g. 'EngineDefaults.Parameters') of all pages."""
    from botocore.exceptions import BotoCoreError, ClientError
    try:
        pages = client.get_paginator(method).paginate(**kwargs)
        return [item for item in pages.search(key) if item is not None]
    except (ClientError, BotoCoreError) as e:
        raise aws_error(e, _operation(client, method)) from e


def error_code(exc: BaseException) -> str:
    """The AWS error code behind an AwsError (or ClientError), '' if none."""
    cause = exc.__cause__ if isinstance(exc, AwsError) else exc
    response = getattr(cause, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


# --- S3 ------------------------------------------------------------------------------------------

def s3_objects(s3: Any, bucket: str, prefix: str) -> dict[str, int]:
    """key -> size of every object under ``prefix``."""
    return {o["Key"]: o["Size"] for o in aws_pages(s3, "list_objects_v2", "Contents", Bucket=bucket, Prefix=prefix)}


def bucket_exists(s3: Any, bucket: str) -> bool:
    """False when the bucket does not exist; AwsError when it is in another region (or on any other error)."""
    try:
        aws_call(s3, "head_bucket", Bucket=bucket)
    except AwsError as e:
        if error_code(e) in ("404", "NoSuchBucket", "NotFound"):
            return False
        if error_code(e) == "301":
            raise AwsError("HeadBucket", f"bucket {bucket} is in another region",
                           hint="set aws_region to the bucket's region: the restore needs bucket and cluster "
                                "in the same region") from e
        raise
    return True


# --- the cluster ---------------------------------------------------------------------------------

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
