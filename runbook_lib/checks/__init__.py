"""The instruments several phases use: the two replication directions, lag (heartbeat and CloudWatch),
same data on both sides (consistency), the split-brain guard.  Never imports a phase."""
