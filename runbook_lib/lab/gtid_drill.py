"""`runbook lab break gtid-unsafe`: an application that runs a statement GTIDs cannot log safely, so a
trainee (and the tests) can see phase 02's WARN window catch it.

The statement: a transaction that updates an InnoDB table and then writes a MyISAM table (an audit
row).  MySQL 9.7 still flags this one at ``enforce_gtid_consistency=WARN`` (warning 1785, error log
MY-013098 "Statement violates GTID consistency: Updates to non-transactional tables ..."), unlike
``CREATE TABLE ... SELECT`` (safe since 8.0.21) and temporary tables in a transaction (safe with
ROW format since 8.0.13), which 9.7 no longer flags.  MySQL Reference Manual: "Restrictions on
Replication with GTIDs".

The drill's tables live in their own schema ``drill_gtid``, dropped when the drill ends, so nothing
of it reaches the backup or a consistency check.  Lab only: it connects as ``labroot``.
"""
from __future__ import annotations

import signal
import threading
from collections.abc import Callable

import pymysql

from runbook_lib.core.errors import LabError
from runbook_lib.lab import control

SCHEMA = "drill_gtid"
UNSAFE_STATEMENT = f"INSERT INTO {SCHEMA}.audit (order_id, note) VALUES (1, 'paid')"


def _setup(cur) -> None:
    cur.execute(f"CREATE DATABASE IF NOT EXISTS {SCHEMA}")
    cur.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA}.orders (id INT PRIMARY KEY, paid INT NOT NULL) ENGINE=InnoDB")
    cur.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA}.audit (id INT AUTO_INCREMENT PRIMARY KEY, order_id INT, "
                "note VARCHAR(32)) ENGINE=MyISAM")
    cur.execute(f"INSERT IGNORE INTO {SCHEMA}.orders VALUES (1, 0)")


def run_unsafe_app(instance, stop: threading.Event, *, every: float = 0.5) -> int:
    """Run the unsafe transaction on lab server ``instance`` every ``every`` s until ``stop`` is set;
    then drop the drill's schema.  Returns how many transactions ran."""
    done = 0
    try:
        with instance.connect() as conn, conn.cursor() as cur:
            _setup(cur)
            while not stop.is_set():
                cur.execute("START TRANSACTION")
                cur.execute(f"UPDATE {SCHEMA}.orders SET paid = paid + 1 WHERE id = 1")
                cur.execute(UNSAFE_STATEMENT)
                cur.execute("COMMIT")
                done += 1
                stop.wait(every)
    except pymysql.MySQLError as e:
        raise LabError(f"the GTID-unsafe application stopped: {e.args[-1]}",
                       hint="at enforce_gtid_consistency=ON the server refuses it (error 1785): that is the point") \
            from e
    finally:
        with instance.connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {SCHEMA}")
    return done


def drill(name: str | None = None, seconds: float = 120.0, *, say: Callable[[str], None] = print) -> int:
    """The CLI's drill: the unsafe application on the lab's onprem for ``seconds`` (Ctrl-C ends it)."""
    onprem = control.instances(control.load_state(name))["onprem"]
    stop = threading.Event()
    say(f"GTID-unsafe application on onprem for {seconds:g} s: a transaction updating InnoDB "
        f"{SCHEMA}.orders, then MyISAM {SCHEMA}.audit.\nRun 02_source_binlog now (another terminal or "
        "JupyterLab): its WARN window must stop at WARN and name this statement.")
    timer = threading.Timer(seconds, stop.set)
    timer.start()
    for sig in (signal.SIGINT, signal.SIGTERM):      # Ctrl-C or kill: end the loop, drop the schema
        signal.signal(sig, lambda *_: stop.set())
    try:
        done = run_unsafe_app(onprem, stop)
    finally:
        timer.cancel()
    say(f"{done} unsafe transactions ran; schema {SCHEMA} dropped.")
    return done
