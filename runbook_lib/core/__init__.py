"""The runbook's machinery, known to every layer: errors, plans and approvals, tables, redaction, the run record.

Imports nothing of runbook_lib outside core."""
