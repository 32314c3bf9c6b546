"""Phase 2 (02_source_binlog): binary log and GTID settings on the source."""
