"""Helper library for the Aurora MySQL fallback runbook (bi-directional GTID replication)."""
__version__ = "0.1.0"
