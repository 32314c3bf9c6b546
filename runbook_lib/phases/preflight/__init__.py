"""Phase 1 (01_preflight): what the source, Aurora and AWS are, and whether the plan can work. Changes nothing."""
