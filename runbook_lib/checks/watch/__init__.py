"""The live view of both replication directions during the migration window (``runbook watch``)."""
