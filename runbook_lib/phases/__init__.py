"""One package per notebook, named like it (07_failover_test.ipynb -> phases/failover_test/), holding
everything that phase alone uses.  A phase may use an earlier phase's steps, never the reverse."""
