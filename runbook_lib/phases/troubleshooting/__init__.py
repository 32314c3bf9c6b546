"""Phase 9 (09_troubleshooting): diagnose a stopped channel, fix it with an approval."""
