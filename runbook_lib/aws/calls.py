"""A boto3 call with a readable error: :func:`aws_call` / :func:`aws_pages` run a call (or every page
of one) and turn botocore errors into :class:`~runbook_lib.core.errors.AwsError` with a hint for the
operator (:func:`aws_error`); :func:`error_code` reads the AWS error code behind one.
"""
from __future__ import annotations

from typing import Any

from runbook_lib.core.errors import AwsError

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
