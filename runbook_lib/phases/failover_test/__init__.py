"""Phase 7 (07_failover_test): writes on both sides while Aurora fails over; nothing lost."""
