"""Phase 6 (06_validation): both directions running, errors, lag, same data."""
