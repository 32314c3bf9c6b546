"""Talking to AWS: the boto3 clients and the calls every phase shares (nothing here knows a phase)."""
