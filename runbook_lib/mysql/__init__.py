"""Talking to MySQL: connections, which server it is, version-aware SQL (the only place that spells
SLAVE / REPLICA / mysql.rds_*), replica status, GTID sets.  Imports core only."""
