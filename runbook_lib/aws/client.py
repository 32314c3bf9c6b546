"""boto3 sessions and clients for the run's region, endpoint URL (the lab) and profile."""
from __future__ import annotations

import os
from typing import Any

LAB_CREDENTIAL = "testing"  # what moto accepts; used only with aws_endpoint_url and no credentials


def boto_session(params: Any) -> Any:
    """A boto3 Session for the parameters' region and profile (see :meth:`Session.aws` on credentials)."""
    import boto3
    kwargs: dict[str, Any] = {"region_name": params.aws_region}
    if params.aws_profile:
        kwargs["profile_name"] = params.aws_profile
    elif params.aws_endpoint_url and not (os.environ.get("AWS_ACCESS_KEY_ID")
                                          or os.environ.get("AWS_PROFILE")):
        kwargs.update(aws_access_key_id=LAB_CREDENTIAL, aws_secret_access_key=LAB_CREDENTIAL)
    return boto3.session.Session(**kwargs)


def aws_client(params: Any, service: str, *, session: Any = None) -> Any:
    """A boto3 client for ``service`` with the parameters' region, endpoint URL and profile."""
    from botocore.config import Config
    config = Config(connect_timeout=5, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"})
    return (session or boto_session(params)).client(
        service, endpoint_url=params.aws_endpoint_url or None, config=config)
