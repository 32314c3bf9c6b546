"""Real mysqld instances for the lab: option files, initialize, start, stop, crash.

A :class:`MysqldInstance` runs Oracle MySQL either inside the cached root
filesystem (``chroot``) or, when ``RUNBOOK_LAB_MYSQLD`` names one, a host
``mysqld`` (for someone who has MySQL 8.0/8.4 of their own).  Paths are kept
twice: the host's view (to read and write files) and the server's view (what goes
into its option file); they differ only under chroot.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pymysql

from runbook_lib.core.errors import LabError


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs.  Reaps it if it is our own exited child (a zombie
    answers ``kill(pid, 0)`` as if alive)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass  # not our child: the kernel's answer below is the truth
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait until ``pid`` has exited (at most ``timeout`` s); False if it still runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_alive(pid):
            return True
        time.sleep(0.05)
    return False


@dataclass(frozen=True)
class Runner:
    """How to run mysqld: inside ``rootfs`` with chroot, or a host binary."""

    mysqld: str = "/usr/sbin/mysqld"
    rootfs: Path | None = None

    def command(self, *args: str) -> list[str]:
        prefix = ["chroot", str(self.rootfs)] if self.rootfs else []
        return [*prefix, self.mysqld, *args]

    def tool(self, name: str, *args: str) -> list[str]:
        """Another program of the same installation (mysqlbinlog, pt-table-checksum...)."""
        prefix = ["chroot", str(self.rootfs)] if self.rootfs else []
        return [*prefix, name, *args]

    def inside(self, host_path: Path) -> str:
        """The server's view of a host path."""
        if not self.rootfs:
            return str(host_path)
        return "/" + str(Path(host_path).resolve().relative_to(self.rootfs.resolve()))


@dataclass
class MysqldInstance:
    """One lab server.  ``base_options`` describe the server as first built;
    ``overrides.cnf`` (written by :meth:`write_overrides`) is read after them."""

    name: str
    port: int
    server_id: int
    runtime_dir: Path            # host path: <runtime>/<name>/
    runner: Runner
    password: str                # labroot's password (lab only)
    base_options: dict[str, str | None] = field(default_factory=dict)

    # -- paths -----------------------------------------------------------
    @property
    def datadir(self) -> Path:
        return self.runtime_dir / "data"

    @property
    def option_file(self) -> Path:
        return self.runtime_dir / "my.cnf"

    @property
    def overrides_file(self) -> Path:
        return self.runtime_dir / "overrides.cnf"

    @property
    def socket(self) -> Path:
        return self.runtime_dir / "mysqld.sock"

    @property
    def pid_file(self) -> Path:
        return self.runtime_dir / "mysqld.pid"

    @property
    def error_log(self) -> Path:
        return self.runtime_dir / "error.log"

    # -- option files ----------------------------------------------------
    def write_option_file(self) -> None:
        self.runtime_dir.mkdir(parents=True, exist_ok=True)
        i = self.runner.inside
        lines = ["[mysqld]",
                 f"datadir={i(self.datadir)}", f"socket={i(self.socket)}", f"pid-file={i(self.pid_file)}",
                 f"log-error={i(self.error_log)}", f"port={self.port}", "bind-address=127.0.0.1",
                 "mysqlx=OFF", "secure-file-priv=", f"server-id={self.server_id}",
                 "skip-name-resolve", "innodb_buffer_pool_size=256M", "innodb_redo_log_capacity=256M", "max_connections=300"]
        # A directory outside the data directory that InnoDB knows, as a DBA's second disk would be:
        # where `runbook lab break outside-datadir` puts a table (DATA DIRECTORY needs a known one).
        elsewhere = self.runtime_dir.parent / "elsewhere"
        elsewhere.mkdir(exist_ok=True)
        lines.append(f"innodb_directories={i(elsewhere)}")
        lines += [k if v is None else f"{k}={v}" for k, v in self.base_options.items()]
        lines.append(f"!include {i(self.overrides_file)}")
        self.option_file.write_text("\n".join(lines) + "\n")
        if not self.overrides_file.exists():
            self.overrides_file.write_text("[mysqld]\n")

    def write_overrides(self, options: dict[str, str | None]) -> None:
        """Options read after the base ones at the next start (``None``: a bare flag)."""
        body = [k if v is None else f"{k}={v}" for k, v in options.items()]
        self.overrides_file.write_text("\n".join(["[mysqld]", *body]) + "\n")

    def read_overrides(self) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        if self.overrides_file.exists():
            for line in self.overrides_file.read_text().splitlines()[1:]:
                if line.strip():
                    k, sep, v = line.partition("=")
                    out[k.strip()] = v.strip() if sep else None
        return out

    # -- lifecycle -------------------------------------------------------
    def initialize(self) -> None:
        """Create an empty data directory (root@localhost without password, socket only)."""
        if self.datadir.exists():
            raise LabError(f"{self.name}: {self.datadir} exists already")
        self.write_option_file()
        proc = subprocess.run(self.runner.command(f"--defaults-file={self.runner.inside(self.option_file)}",
                                                  "--initialize-insecure", "--user=root"),
                              capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise LabError(f"{self.name}: mysqld --initialize failed: {proc.stderr.strip()[-400:]}",
                           hint=f"see {self.error_log}")

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if process_alive(pid) else None

    def is_running(self) -> bool:
        return self.pid() is not None

    def start(self, wait: float = 60.0, extra_args: tuple[str, ...] = ()) -> None:
        """Start in the background and wait until it accepts connections."""
        if self.is_running():
            return
        self.write_option_file()
        self.pid_file.unlink(missing_ok=True)
        log = (self.runtime_dir / "mysqld.out").open("ab")
        proc = subprocess.Popen(self.runner.command(f"--defaults-file={self.runner.inside(self.option_file)}",
                                                    "--user=root", *extra_args),
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        log.close()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LabError(f"{self.name}: mysqld exited at start (code {proc.returncode}): "
                               f"{self._last_error_line()}", hint=f"see {self.error_log}")
            if self.socket.exists() and self.pid():
                try:
                    self.root_socket().close()
                    return
                except pymysql.err.OperationalError:
                    pass
            time.sleep(0.1)
        raise LabError(f"{self.name} did not start within {wait:.0f}s", hint=f"see {self.error_log}")

    def _last_error_line(self) -> str:
        try:
            lines = [ln for ln in self.error_log.read_text(errors="replace").splitlines() if "[ERROR]" in ln]
        except FileNotFoundError:
            return "no error log"
        # mysqld ends with a bare "Aborting"; the cause (e.g. the port taken) is the error before it
        causes = [ln for ln in lines if not ln.rstrip().endswith("] Aborting")] or lines
        return causes[-1].split("] ", 3)[-1][:300] if causes else "no [ERROR] line in the error log"

    def stop(self, timeout: float = 60.0) -> None:
        """Clean shutdown, made quick: replication stopped and the peers' binlog dump threads
        closed first (mysqld otherwise waits ~10 s at shutdown for an idle dump thread)."""
        pid = self.pid()
        if pid is None:
            return
        try:
            with self.root_socket() as conn, conn.cursor() as cur:
                cur.execute("STOP REPLICA")
                cur.execute("SELECT PROCESSLIST_ID FROM performance_schema.threads "
                            "WHERE PROCESSLIST_COMMAND LIKE 'Binlog Dump%'")
                for (thread_id,) in cur.fetchall():
                    try:
                        cur.execute(f"KILL {int(thread_id)}")
                    except pymysql.err.MySQLError:
                        pass  # already gone
        except pymysql.err.MySQLError:
            pass  # not a replica, or not answering: SIGTERM below still stops it
        os.kill(pid, signal.SIGTERM)
        if not wait_gone(pid, timeout):
            self.kill()

    def kill(self) -> None:
        """A crash: SIGKILL, no shutdown.  InnoDB recovers at the next start."""
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid, 10)
        self.pid_file.unlink(missing_ok=True)

    def destroy(self) -> None:
        self.kill()
        shutil.rmtree(self.runtime_dir, ignore_errors=True)

    def replace_datadir(self, src: Path) -> None:
        """Make a copy of ``src`` the data directory (server must be stopped).  The
        copy gets a new server_uuid (auto.cnf) and none of the old persisted settings."""
        if self.is_running():
            raise LabError(f"{self.name} must be stopped before its data directory is replaced")
        shutil.rmtree(self.datadir, ignore_errors=True)
        shutil.copytree(src, self.datadir, symlinks=True)
        for name in ("auto.cnf", "mysqld-auto.cnf"):
            (self.datadir / name).unlink(missing_ok=True)

    # -- connections -----------------------------------------------------
    def root_socket(self) -> pymysql.Connection:
        """root@localhost over the socket: used once to create ``labroot`` and for shutdown."""
        try:
            return pymysql.connect(unix_socket=str(self.socket), user="root", password="",
                                   autocommit=True, connect_timeout=3)
        except pymysql.err.OperationalError as e:
            if e.args and e.args[0] == 1045:   # root's password was set: use labroot's
                return pymysql.connect(unix_socket=str(self.socket), user="root", password=self.password,
                                       autocommit=True, connect_timeout=3)
            raise

    def connect(self, user: str = "labroot", password: str | None = None, database: str | None = None,
                **kw) -> pymysql.Connection:
        """A TCP connection to 127.0.0.1:port (labroot unless told otherwise)."""
        return pymysql.connect(host="127.0.0.1", port=self.port, user=user,
                               password=self.password if password is None else password,
                               database=database, autocommit=True, connect_timeout=kw.pop("connect_timeout", 5),
                               cursorclass=kw.pop("cursorclass", pymysql.cursors.DictCursor), **kw)

    def bootstrap_labroot(self) -> None:
        """Create the lab's internal superuser, unlogged, so no GTID history is made."""
        with self.root_socket() as conn, conn.cursor() as cur:
            cur.execute("SET SESSION sql_log_bin=0")
            cur.execute("CREATE USER IF NOT EXISTS 'labroot'@'127.0.0.1' IDENTIFIED BY %s", (self.password,))
            cur.execute("ALTER USER 'labroot'@'127.0.0.1' IDENTIFIED BY %s", (self.password,))
            cur.execute("GRANT ALL PRIVILEGES ON *.* TO 'labroot'@'127.0.0.1' WITH GRANT OPTION")
