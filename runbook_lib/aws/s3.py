"""What a bucket holds: :func:`s3_objects` and :func:`bucket_exists`."""
from __future__ import annotations

from typing import Any

from runbook_lib.aws.calls import aws_call, aws_pages, error_code
from runbook_lib.core.errors import AwsError


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
