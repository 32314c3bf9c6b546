"""`runbook lab up | status | down | reset`: the rehearsal lab's life cycle.

A lab instance is two real mysqld (``onprem``, ``aurora``) and one AWS API
endpoint process, all on 127.0.0.1.  Its state (ports, paths, generated
passwords) lives in ``$RUNBOOK_LAB_CACHE/lab-<name>/state.json`` (mode 0600).
"""
from __future__ import annotations

import json
import os
import re
import secrets as pysecrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pymysql

from runbook_lib.core.errors import LabError
from runbook_lib.lab import dataset, rootfs
from runbook_lib.lab.servers import MysqldInstance, Runner, process_alive, wait_gone

ONPREM_SERVER_ID = 1            # MySQL's default: an unprepared server still has it
AURORA_SERVER_ID = 1977146520   # Aurora picks large ids of its own

# An unprepared 8.0-era production server: binary log on (the 8.0 default), but no GTIDs,
# default auto-increment, a short binlog expiry, routines not trusted.
ONPREM_OPTIONS: dict[str, str | None] = {
    "log-bin": "binlog", "gtid_mode": "OFF", "enforce_gtid_consistency": "OFF",
    "binlog_expire_logs_seconds": "14400", "relay_log_recovery": "ON",
}
# Aurora with its default cluster parameter group: binlog_format=OFF (no binary log),
# gtid-mode OFF_PERMISSIVE.  The endpoint rewrites overrides from the custom group.
AURORA_OPTIONS: dict[str, str | None] = {
    "disable-log-bin": None, "gtid_mode": "OFF_PERMISSIVE", "enforce_gtid_consistency": "OFF",
    "relay_log_recovery": "ON",
}
#: The IAM role of parameters/lab.yaml's restore_role_arn (the endpoint's RestoreDBClusterFromS3 checks it exists).
RESTORE_ROLE = "runbook-restore-from-s3"
#: What `runbook lab up --aurora` accepts: Aurora MySQL 3 (8.0) or Aurora MySQL 8.4.
AURORA_CHOICES = ("3", "8.4")
SECRET_NAMES = {"onprem_dba": "runbook-lab/onprem/dba", "aurora_admin": "runbook-lab/aurora/admin",
                "replicator": "runbook-lab/replicator"}


@dataclass
class LabState:
    name: str
    port_base: int
    runtime_dir: str            # host path holding onprem/, aurora/, endpoint.log
    rootfs: str                 # '' when a host mysqld is used
    mysqld: str
    passwords: dict[str, str] = field(default_factory=dict)
    persona_rows: int = 500_000
    aurora: str = ""            # the Aurora major version the stand-in plays: "3" or "8.4" ('' before: 3)

    @property
    def onprem_port(self) -> int:
        return self.port_base

    @property
    def aurora_port(self) -> int:
        return self.port_base + 1

    @property
    def endpoint_port(self) -> int:
        return self.port_base + 2

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.endpoint_port}"

    @property
    def home(self) -> Path:
        return state_dir(self.name)

    @property
    def backup_dir(self) -> Path:
        """Where backups go: the same path on the host and inside the servers' root filesystem."""
        return Path(f"/tmp/runbook-lab-{self.name}-backup")

    def runner(self) -> Runner:
        return Runner(mysqld=self.mysqld, rootfs=Path(self.rootfs) if self.rootfs else None)


def lab_name(name: str | None = None) -> str:
    return name or os.environ.get("RUNBOOK_LAB_NAME") or "default"


def state_dir(name: str | None = None) -> Path:
    return rootfs.cache_dir() / f"lab-{lab_name(name)}"


def state_file(name: str | None = None) -> Path:
    return state_dir(name) / "state.json"


def load_state(name: str | None = None) -> LabState:
    path = state_file(name)
    if not path.exists():
        raise LabError(f"lab {lab_name(name)!r} has not been created", hint="run: runbook lab up")
    return LabState(**json.loads(path.read_text()))


def _save_state(state: LabState) -> None:
    path = state_file(state.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2))
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def mysqld_major(state: LabState) -> tuple[int, int]:
    """The lab mysqld's own major version, from ``mysqld --version``."""
    out = subprocess.run(state.runner().command("--version"), capture_output=True, text=True, check=True).stdout
    found = re.search(r"Ver (\d+)\.(\d+)", out)
    if not found:
        raise LabError(f"cannot read a version from `mysqld --version`: {out.strip()[:80]!r}")
    return int(found[1]), int(found[2])


def default_aurora(state: LabState) -> str:
    """The Aurora the stand-in plays unless told: the one closest to the lab's own MySQL (8.4 for a
    mysqld 8.4 or later, such as the lab's 9.7; 3 for an 8.0 mysqld)."""
    return "8.4" if mysqld_major(state) >= (8, 4) else "3"


def aurora_version(state: LabState) -> str:
    """The Aurora version the stand-in plays, as @@aurora_version reads (``'8.4.7'``, ``'3.08.0'``)."""
    from runbook_lib.lab.aurora_defaults import ENGINE_VERSION_FOR
    from runbook_lib.lab.aurora_defaults import aurora_version as of_engine
    return of_engine(ENGINE_VERSION_FOR[state.aurora or "3"])


def _new_state(name: str, port_base: int, persona_rows: int) -> LabState:
    host_mysqld = os.environ.get("RUNBOOK_LAB_MYSQLD", "")
    if host_mysqld:
        if not Path(host_mysqld).exists():
            raise LabError(f"RUNBOOK_LAB_MYSQLD={host_mysqld} does not exist")
        runtime, root, mysqld = state_dir(name) / "run", "", host_mysqld
    else:
        root_path = rootfs.ensure_rootfs()
        runtime, root, mysqld = root_path / "srv" / f"lab-{name}", str(root_path), "/usr/sbin/mysqld"
    pw = {k: pysecrets.token_urlsafe(18) for k in ("labroot", "onprem_dba", "aurora_admin", "replicator", "apps")}
    return LabState(name=name, port_base=port_base, runtime_dir=str(runtime), rootfs=root, mysqld=mysqld,
                    passwords=pw, persona_rows=persona_rows)


def instances(state: LabState) -> dict[str, MysqldInstance]:
    rt, runner, pw = Path(state.runtime_dir), state.runner(), state.passwords["labroot"]
    return {
        "onprem": MysqldInstance("onprem", state.onprem_port, ONPREM_SERVER_ID, rt / "onprem", runner, pw,
                                 dict(ONPREM_OPTIONS)),
        "aurora": MysqldInstance("aurora", state.aurora_port, AURORA_SERVER_ID, rt / "aurora", runner, pw,
                                 dict(AURORA_OPTIONS)),
    }


# -- building ----------------------------------------------------------------

def _build_onprem(inst: MysqldInstance, state: LabState, say) -> None:
    inst.initialize()
    inst.start()
    inst.bootstrap_labroot()
    with inst.connect(cursorclass=pymysql.cursors.DictCursor) as conn, conn.cursor() as cur:
        cur.execute("CREATE USER IF NOT EXISTS 'dba'@'%%' IDENTIFIED BY %s", (state.passwords["onprem_dba"],))
        cur.execute("GRANT ALL PRIVILEGES ON *.* TO 'dba'@'%' WITH GRANT OPTION")
        started = time.monotonic()
        counts = dataset.seed(conn, persona_rows=state.persona_rows, app_password=state.passwords["apps"])
    say(f"onprem: seeded {sum(counts.values()):,} rows in {len(counts)} tables "
        f"in {time.monotonic() - started:.1f} s")


def _build_aurora(inst: MysqldInstance, state: LabState) -> None:
    from runbook_lib.lab.aurora_standin import install_aurora_standin

    inst.initialize()
    inst.start()
    inst.bootstrap_labroot()
    with inst.connect(cursorclass=pymysql.cursors.Cursor) as conn:
        install_aurora_standin(conn, aurora_version=aurora_version(state),
                               admin_password=state.passwords["aurora_admin"])


# -- the endpoint process ----------------------------------------------------

def _endpoint_pid(state: LabState) -> int | None:
    try:
        pid = int((state.home / "endpoint.pid").read_text())
    except (FileNotFoundError, ValueError):
        return None
    return pid if process_alive(pid) else None


def endpoint_healthy(state: LabState, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"{state.endpoint_url}/_lab/health", timeout=timeout) as resp:
            return resp.status == 200
    except OSError:
        return False


def _start_endpoint(state: LabState, wait: float = 30.0) -> None:
    if _endpoint_pid(state) and endpoint_healthy(state):
        return
    log = (state.home / "endpoint.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "runbook_lib.lab.endpoint", "--lab-name", state.name],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, env={**os.environ, "RUNBOOK_LAB_NAME": state.name})
    log.close()
    (state.home / "endpoint.pid").write_text(str(proc.pid))
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabError(f"the lab's AWS endpoint exited ({proc.returncode})",
                           hint=f"see {state.home / 'endpoint.log'}")
        if endpoint_healthy(state, 0.5):
            return
        time.sleep(0.1)
    raise LabError("the lab's AWS endpoint did not answer", hint=f"see {state.home / 'endpoint.log'}")


def _stop_endpoint(state: LabState) -> None:
    pid = _endpoint_pid(state)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    if not wait_gone(pid, 5.0):
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid, 5.0)            # its port is free only once the process is gone
    (state.home / "endpoint.pid").unlink(missing_ok=True)


def _publish_secrets(state: LabState) -> None:
    import boto3

    sm = boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=state.endpoint_url,
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    for key, name in SECRET_NAMES.items():
        try:
            sm.put_secret_value(SecretId=name, SecretString=state.passwords[key])
        except sm.exceptions.ResourceNotFoundException:
            sm.create_secret(Name=name, SecretString=state.passwords[key])


def _publish_restore_role(state: LabState) -> None:
    """What an environment has before the runbook runs: the role RDS assumes to read the backup in S3."""
    import boto3

    iam = boto3.client("iam", region_name="us-east-1", endpoint_url=state.endpoint_url,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                     "Principal": {"Service": "rds.amazonaws.com"}}]}
    read = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket",
                                                                                  "s3:GetBucketLocation"],
                                                    "Resource": ["arn:aws:s3:::*"]}]}
    try:
        iam.get_role(RoleName=RESTORE_ROLE)
    except iam.exceptions.NoSuchEntityException:
        iam.create_role(RoleName=RESTORE_ROLE, AssumeRolePolicyDocument=json.dumps(trust),
                        Description="lab: RDS reads backups from S3 (RestoreDBClusterFromS3)")
        iam.put_role_policy(RoleName=RESTORE_ROLE, PolicyName="read-backups", PolicyDocument=json.dumps(read))


def _ensure_backup_dir(state: LabState) -> None:
    """Under chroot the server writes <rootfs>/tmp/...; a host symlink of the same name
    makes one path string valid on both sides (CLONE ... DATA DIRECTORY, then upload)."""
    host = state.backup_dir
    if not state.rootfs:
        host.mkdir(parents=True, exist_ok=True)
        return
    real = Path(state.rootfs) / host.relative_to("/")
    real.mkdir(parents=True, exist_ok=True)
    if host.is_symlink() and host.resolve() == real.resolve():
        return
    if host.is_symlink() or host.is_file():
        host.unlink()
    elif host.exists():
        shutil.rmtree(host)
    host.symlink_to(real)


def _remove_backup_dir(state: LabState) -> None:
    host = state.backup_dir
    if host.is_symlink():
        shutil.rmtree(host.resolve(), ignore_errors=True)
        host.unlink()
    else:
        shutil.rmtree(host, ignore_errors=True)


def _servers_hold_runbook_state(servers: dict[str, MysqldInstance]) -> bool:
    """True when a rehearsal has changed the servers (GTIDs on the source, a channel anywhere)."""
    try:
        with servers["onprem"].connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT @@gtid_mode AS g")
            if cur.fetchone()["g"] != "OFF":
                return True
        for inst in servers.values():
            with inst.connect() as conn, conn.cursor() as cur:
                cur.execute("SELECT COUNT(*) AS n FROM performance_schema.replication_connection_configuration")
                if cur.fetchone()["n"]:
                    return True
    except pymysql.err.MySQLError:
        return False
    return False


def _refuse_ephemeral_ports(base: int) -> None:
    """A lab port inside the kernel's ephemeral range can be taken at any moment by the local
    end of some client connection (mysqld then aborts at start): refuse it up front."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        return
    if base + 2 >= low and base <= high:
        raise LabError(f"lab ports {base}-{base + 2} lie in this machine's ephemeral port range {low}-{high}, "
                       "where client connections take their local ports",
                       hint=f"choose a port base below {low - 2} (the default is 23306)")


# -- public operations -------------------------------------------------------

def up(name: str | None = None, *, port_base: int | None = None, persona_rows: int | None = None,
       aurora: str | None = None, say=print) -> LabState:
    """Bring the lab up; idempotent.  Builds what is missing, starts what is stopped.

    *aurora*: the Aurora major version the stand-in plays ("3" or "8.4"), remembered in the lab's
    state; default for a new lab: :func:`default_aurora`.
    """
    started = time.monotonic()
    name = lab_name(name)
    if aurora is not None and aurora not in AURORA_CHOICES:
        raise LabError(f"--aurora {aurora!r} is not one of {', '.join(AURORA_CHOICES)}")
    try:
        state = load_state(name)
        if port_base is not None and port_base != state.port_base:
            raise LabError(f"lab {name!r} exists on port base {state.port_base}, not {port_base}",
                           hint="run `runbook lab down --destroy` first, or use another RUNBOOK_LAB_NAME")
        if aurora is not None and aurora != (state.aurora or "3"):
            raise LabError(f"lab {name!r} plays Aurora {state.aurora or '3'}, not {aurora}",
                           hint=f"run `runbook lab reset --aurora {aurora}` (a fresh lab), or use another "
                                "RUNBOOK_LAB_NAME")
    except LabError:
        if state_file(name).exists():
            raise
        base = port_base or int(os.environ.get("RUNBOOK_LAB_PORT_BASE", "23306"))
        rows = persona_rows or int(os.environ.get("RUNBOOK_LAB_ROWS", "500000"))
        _refuse_ephemeral_ports(base)
        state = _new_state(name, base, rows)
        state.aurora = aurora or default_aurora(state)
        _save_state(state)
    state.home.mkdir(parents=True, exist_ok=True)
    _ensure_backup_dir(state)
    servers = instances(state)
    builders = {"onprem": lambda i: _build_onprem(i, state, say), "aurora": lambda i: _build_aurora(i, state)}
    missing = [n for n, i in servers.items() if not i.datadir.exists()]
    for inst_name in servers:
        if inst_name not in missing:
            servers[inst_name].start()
    # The two new servers are built side by side: aurora's set-up overlaps onprem's data load.
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {}
        for inst_name in missing:
            say(f"{inst_name}: creating a new MySQL server on 127.0.0.1:{servers[inst_name].port}")
            futures[inst_name] = pool.submit(builders[inst_name], servers[inst_name])
        failures = []
        for inst_name, fut in futures.items():
            try:
                fut.result()
            except BaseException as e:   # a half-built server would be mistaken for a good one next time
                servers[inst_name].destroy()
                failures.append(e)
        if failures:
            raise failures[0]
    endpoint_was_up = _endpoint_pid(state) is not None and endpoint_healthy(state)
    _start_endpoint(state)
    if not endpoint_was_up and not missing and _servers_hold_runbook_state(servers):
        say("note: the AWS endpoint started afresh (it keeps its resources in memory), but the servers "
            "still hold an earlier rehearsal's state; for a clean rehearsal run `runbook lab reset`")
    _publish_secrets(state)
    _publish_restore_role(state)
    say(f"lab {name!r} up in {time.monotonic() - started:.1f} s")
    return state


def down(name: str | None = None, *, destroy: bool = False, say=print) -> None:
    """Stop every process of the lab; with ``destroy`` also delete its servers' data."""
    try:
        state = load_state(name)
    except LabError:
        say(f"lab {lab_name(name)!r} does not exist")
        return
    _stop_endpoint(state)
    for inst in instances(state).values():
        inst.stop()
        if destroy:
            inst.destroy()
    if destroy:
        _remove_backup_dir(state)
        shutil.rmtree(state.runtime_dir, ignore_errors=True)
        shutil.rmtree(state.home, ignore_errors=True)
    say(f"lab {state.name!r} {'destroyed' if destroy else 'stopped'}")


def reset(name: str | None = None, say=print, **kw) -> LabState:
    """A fresh lab: destroy servers and endpoint state, then up again."""
    down(name, destroy=True, say=say)
    return up(name, say=say, **kw)
