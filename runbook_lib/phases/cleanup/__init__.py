"""Phase 10 (10_cleanup): stop replication, drop accounts, delete the Aurora resources and backup."""
