"""`runbook run` and the command line: ordered papermill runs, the archived report, the kernel spec."""
