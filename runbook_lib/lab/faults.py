"""`runbook lab break <fault>`: break the lab's bi-directional replication the way real life does,
so a trainee can rehearse notebook 09_troubleshooting (and its tests can).

Lab only: it connects as ``labroot`` (a superuser the real Aurora never gives anyone), which is how it
can write on the Aurora stand-in without the binary log.  Replication must run in both directions
first (notebooks 01-05).  Each fault says what it did and what the trainee should see.

* ``conflict``: the same row of ``app_billing.payment_log`` (a table without a primary key) changed
  differently on both sides while both appliers were stopped: both channels stop with error 1032
  (row not found).  On a table WITH a primary key the same double update does not stop anything: each
  side silently takes the other's version, and only a consistency check finds it.
* ``duplicate-key``: a row of ``app_crm.persona`` inserted on Aurora without the binary log, then the
  same id inserted on the source: Aurora's channel stops with error 1062.
* ``stopped-io``: Aurora's receiver (IO) thread stopped, as after a network outage that outlasted its
  retries; the source's changes pile up unread.
* ``purged-binlogs``: the source's channel stopped, rows written on Aurora, then Aurora's binary logs
  flushed and purged (as 'binlog retention hours' does when the source stays away too long): the
  source's IO thread fails with error 13114 (the source's 1236, purged binary logs).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import pymysql

from runbook_lib.core.errors import LabError
from runbook_lib.lab import control

FAULTS = ("conflict", "duplicate-key", "stopped-io", "purged-binlogs")


@dataclass(frozen=True)
class FaultReport:
    fault: str
    did: tuple[str, ...]
    expect: tuple[str, ...]

    def text(self) -> str:
        return "\n".join([f"fault {self.fault!r}:", *(f"  did: {d}" for d in self.did),
                          "what you should see now:", *(f"  - {e}" for e in self.expect)])


class _Lab:
    def __init__(self, name: str | None) -> None:
        self.state = control.load_state(name)
        self.servers = control.instances(self.state)

    def sql(self, server: str, statement: str, args=None, *, logged: bool = True) -> list[dict]:
        try:
            with self.servers[server].connect() as conn, conn.cursor() as cur:
                if not logged:
                    cur.execute("SET SESSION sql_log_bin = 0")
                cur.execute(statement, args)
                rows = list(cur.fetchall() or ())
                while cur.nextset():
                    pass
                return rows
        except pymysql.MySQLError as e:
            raise LabError(f"{server}: {statement.split()[0]} failed: {e}") from e

    def status(self, server: str) -> dict:
        rows = self.sql(server, "SHOW REPLICA STATUS")
        return rows[0] if rows else {}

    def wait(self, what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise LabError(f"the fault did not show within {timeout:.0f} s: {what}")
            time.sleep(0.2)

    def require_running(self) -> None:
        for server in ("onprem", "aurora"):
            s = self.status(server)
            if not s or (s["Replica_IO_Running"], s["Replica_SQL_Running"]) != ("Yes", "Yes"):
                raise LabError(f"replication into {server} is not running, so there is nothing to break",
                               hint="set up both directions first (notebooks 01-05), or fix what is broken "
                                    "with notebook 09_troubleshooting")

    def caught_up(self, timeout: float = 30.0) -> None:
        """Both sides have executed each other's transactions."""
        def equal() -> bool:
            g = [self.sql(s, "SELECT @@GLOBAL.gtid_executed AS g")[0]["g"] for s in ("onprem", "aurora")]
            return g[0].replace("\n", "") == g[1].replace("\n", "")
        self.wait("both sides caught up", equal, timeout)


def _conflict(lab: _Lab) -> FaultReport:
    table = "app_billing.payment_log"
    row = lab.sql("onprem", f"SELECT * FROM {table} ORDER BY invoice_id, paid_at LIMIT 1")
    if not row:
        raise LabError(f"{table} is empty on the source")
    r = row[0]
    where = "invoice_id = %s AND paid_at = %s AND method = %s AND amount = %s"
    args = (r["invoice_id"], r["paid_at"], r["method"], r["amount"])
    for server in ("onprem", "aurora"):
        lab.sql(server, "STOP REPLICA SQL_THREAD")
    lab.sql("onprem", f"UPDATE {table} SET method = 'src-fix', amount = amount + 1 WHERE {where} LIMIT 1", args)
    lab.sql("aurora", f"UPDATE {table} SET method = 'aur-fix', amount = amount + 2 WHERE {where} LIMIT 1", args)
    for server in ("onprem", "aurora"):
        lab.sql(server, "START REPLICA SQL_THREAD")
    lab.wait("error 1032 on both channels", lambda: all(
        lab.status(s).get("Last_SQL_Errno") == 1032 for s in ("onprem", "aurora")))
    return FaultReport("conflict", (
        "stopped both appliers (STOP REPLICA SQL_THREAD on both servers)",
        f"source: UPDATE {table} SET method='src-fix', amount=amount+1 for invoice_id {r['invoice_id']}",
        f"aurora: UPDATE {table} SET method='aur-fix', amount=amount+2 for the same row",
        "started both appliers again"), (
        ("BOTH channels stopped with error 1032 (Can't find record, HA_ERR_END_OF_FILE): the row each side's "
        "update expects is no longer there on the other side"),
        ("notebook 09: the failing GTID of each side and its Update_rows on app_billing.payment_log; "
        "fix with approve=['fix:aurora', 'fix:source'] (the source's version is kept by default)")))


def _duplicate_key(lab: _Lab) -> FaultReport:
    table = "app_crm.persona"
    top = max(int(lab.sql(s, f"SELECT COALESCE(MAX(id), 0) AS m FROM {table}")[0]["m"]) for s in ("onprem", "aurora"))
    key = top + 1000 + (top % 2)              # even: an id the source's auto_increment_offset could give
    cols = "(id, first_name, last_name, email, country, score, created_at, origin)"
    lab.sql("aurora", f"INSERT INTO {table} {cols} VALUES (%s, 'Stray', 'Row', 'stray@aurora.example', 'US', "
                      "1, NOW(6), 'aurora')", (key,), logged=False)
    lab.sql("onprem", f"INSERT INTO {table} {cols} VALUES (%s, 'Real', 'Customer', 'real@source.example', 'CO', "
                      "2, NOW(6), 'source')", (key,))
    lab.wait("error 1062 on Aurora's channel", lambda: lab.status("aurora").get("Last_SQL_Errno") == 1062)
    return FaultReport("duplicate-key", (
        f"aurora: INSERT INTO {table} id {key} with sql_log_bin=0 (a write that never reached the source)",
        f"source: INSERT INTO {table} the same id {key}, another person"), (
        (f"Aurora's channel (source → aurora) stopped with error 1062: Duplicate entry '{key}' for key "
        "'persona.PRIMARY'; the source's channel still runs"),
        ("notebook 09: fix with approve=['fix:aurora']: skips the insert on Aurora and makes Aurora's row the "
        "source's version (re-logged from the source, since Aurora's writes replicate)")))


def _stopped_io(lab: _Lab) -> FaultReport:
    lab.sql("aurora", "STOP REPLICA IO_THREAD")
    lab.sql("onprem", "INSERT INTO tenant_acme.orders (sku, qty, placed_at) VALUES ('fault-io', 1, NOW())")
    return FaultReport("stopped-io", (
        "aurora: STOP REPLICA IO_THREAD (its receiver no longer reads the source's binary log)",
        "source: INSERT INTO tenant_acme.orders one row (sku 'fault-io') that Aurora now lacks"), (
        "Aurora's channel: IO thread 'No', SQL thread 'Yes', no error; the row is not on Aurora",
        "notebook 09: state 'stopped'; fix with approve=['fix:aurora'] (stop, then start procedure)"))


def _purged_binlogs(lab: _Lab) -> FaultReport:
    lab.sql("onprem", "STOP REPLICA")
    lab.sql("aurora", "INSERT INTO tenant_globex.orders (sku, qty, placed_at) VALUES "
                      "('fault-purged-1', 1, NOW()), ('fault-purged-2', 2, NOW())")
    first = lab.sql("aurora", "SELECT MIN(id) AS m FROM tenant_globex.orders")[0]["m"]
    lab.sql("aurora", "UPDATE tenant_globex.orders SET qty = qty + 100 WHERE id = %s", (first,))
    lab.sql("aurora", "FLUSH BINARY LOGS")
    current = lab.sql("aurora", "SHOW BINARY LOGS")[-1]["Log_name"]
    lab.sql("aurora", "PURGE BINARY LOGS TO %s", (current,))
    lab.sql("onprem", "START REPLICA")
    lab.wait("the source's IO thread failing on purged binary logs", lambda: lab.status("onprem").get(
        "Last_IO_Errno") in (1236, 13114))
    return FaultReport("purged-binlogs", (
        "source: STOP REPLICA (its channel from Aurora)",
        "aurora: 2 rows inserted into tenant_globex.orders, then 1 row updated (2 transactions)",
        f"aurora: FLUSH BINARY LOGS, PURGE BINARY LOGS TO '{current}' (as binlog retention hours would)",
        "source: START REPLICA"), (
        ("the source's channel (aurora → source): IO thread 'No' with error 13114 (1236 from Aurora: it purged "
        "binary logs with GTIDs the source needs)"),
        ("notebook 09: state 'purged-binlogs' with the missing GTIDs; fix with approve=['fix:source']: "
        "declares them applied on the source, restarts, and copies the differing rows from Aurora")))


_BREAKERS = {"conflict": _conflict, "duplicate-key": _duplicate_key, "stopped-io": _stopped_io,
             "purged-binlogs": _purged_binlogs}


def break_lab(fault: str, name: str | None = None, *, say: Callable[[str], None] = print) -> FaultReport:
    """Inject *fault* (one of :data:`FAULTS`) into lab *name*; both channels must be running."""
    if fault not in _BREAKERS:
        raise LabError(f"{fault!r} is not a fault", hint=f"faults: {', '.join(FAULTS)}")
    lab = _Lab(name)
    lab.require_running()
    lab.caught_up()
    report = _BREAKERS[fault](lab)
    say(report.text())
    return report
