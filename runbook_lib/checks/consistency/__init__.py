"""Same data on both sides: chunked checksums of both servers at a common GTID point."""
