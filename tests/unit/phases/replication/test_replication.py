"""runbook_lib.phases.replication.steps, pure parts: SHOW GRANTS parsing, the run-summary figures.  The channel
helpers (runbook_lib.checks.channels) are tested in test_channels."""
from __future__ import annotations

from runbook_lib.checks import channels
from runbook_lib.phases.replication import steps as r

AUTH_FAILED = dict(io_running="Connecting", last_io_errno=1045, last_io_error="Error connecting to source "
                   "'replicator@127.0.0.1:23307'. Message: Access denied")


# --- accounts --------------------------------------------------------------------------------

def test_parse_grants_mysql97_lines():
    lines = ["GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `replicator`@`%`",
             "GRANT BACKUP_ADMIN ON *.* TO `replicator`@`%`",
             "GRANT SELECT ON `app_crm`.* TO `replicator`@`%`"]
    privileges, others = r.parse_grants(lines)
    assert privileges == {"REPLICATION SLAVE", "REPLICATION CLIENT", "BACKUP_ADMIN"}
    assert others == ("GRANT SELECT ON `app_crm`.* TO `replicator`@`%`",)


def test_parse_grants_usage_grant_option_and_roles():
    privileges, others = r.parse_grants(["GRANT USAGE ON *.* TO `r`@`%`",
                                         "GRANT SELECT, INSERT ON *.* TO `r`@`%` WITH GRANT OPTION",
                                         "GRANT `app_role`@`%` TO `r`@`%`"])
    assert privileges == {"SELECT", "INSERT", "GRANT OPTION"}
    assert others == ("GRANT `app_role`@`%` TO `r`@`%`",)
    assert r.parse_grants(["GRANT USAGE ON *.* TO `r`@`%`"]) == (frozenset(), ())


# --- figures ----------------------------------------------------------------------------------

def test_figures(replica_status):
    figures = r.figures({channels.TO_AURORA: None, channels.TO_SOURCE: replica_status(**AUTH_FAILED)})
    assert figures[channels.TO_AURORA] == {"state": "missing"}
    assert figures[channels.TO_SOURCE] == {"state": "connecting", "seconds_behind": 0, "io_errno": 1045,
                                    "sql_errno": 0}
    assert figures["canary"] == {}
