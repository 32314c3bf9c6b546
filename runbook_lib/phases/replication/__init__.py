"""Phase 5 (05_replication): replication accounts, both directions, binlog retention, routines."""
