"""A cached Debian sid root filesystem that holds Oracle MySQL and percona-toolkit.

The machine's own Debian ships only MariaDB, which cannot be a GTID peer of
Aurora MySQL; Debian sid carries Oracle MySQL whose binaries need a newer glibc,
so they run inside a sid root filesystem built once with mmdebstrap and reused.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from pathlib import Path

from runbook_lib.core.errors import LabError

PACKAGES = ("mysql-server-core", "mysql-client-core", "percona-toolkit")
ROOTFS_NAME = "rootfs-sid-mysql"
MARKER = ".runbook-rootfs-ok"


def cache_dir() -> Path:
    """Where the lab keeps what it builds: ``$RUNBOOK_LAB_CACHE`` or ``~/.cache/runbook-lab``."""
    return Path(os.environ.get("RUNBOOK_LAB_CACHE") or Path.home() / ".cache" / "runbook-lab")


def rootfs_path() -> Path:
    return cache_dir() / ROOTFS_NAME


def rootfs_ready(path: Path | None = None) -> bool:
    path = path or rootfs_path()
    return (path / MARKER).exists() and (path / "usr/sbin/mysqld").exists()


def _run(cmd: list[str], log: Path, what: str) -> None:
    with log.open("ab") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise LabError(f"{what} failed (exit {proc.returncode}); see {log}",
                       hint="the lab needs root and the Debian package registry")


def _ensure_mmdebstrap(log: Path) -> None:
    if shutil.which("mmdebstrap"):
        return
    if os.geteuid() != 0:
        raise LabError("mmdebstrap is not installed and this user is not root",
                       hint="apt-get install mmdebstrap, or set RUNBOOK_LAB_MYSQLD to a mysqld of your own")
    apt = ["apt-get", "install", "-y", "-q", "mmdebstrap"]
    env_ok = subprocess.run(apt, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL).returncode == 0
    if not env_ok:
        _run(["apt-get", "update", "-q"], log, "apt-get update")
        _run(apt, log, "apt-get install mmdebstrap")


def ensure_rootfs(progress=print) -> Path:
    """Return the cached root filesystem, building it first if needed (about 35 s)."""
    path = rootfs_path()
    if rootfs_ready(path):
        return path
    if os.geteuid() != 0:
        raise LabError("building the MySQL root filesystem needs root (chroot, mmdebstrap)",
                       hint="run as root, or set RUNBOOK_LAB_MYSQLD to a mysqld 8.0/8.4 of your own")
    path.parent.mkdir(parents=True, exist_ok=True)
    # One builder at a time: parallel test workers (or two `lab up`s) may all find it missing.
    with (path.parent / ".rootfs-build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if rootfs_ready(path):          # built by whoever held the lock before us
            return path
        return _build(path, progress)


def _build(path: Path, progress) -> Path:
    log = path.parent / "rootfs-build.log"
    _ensure_mmdebstrap(log)
    tmp = path.with_name(path.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    progress(f"building the MySQL root filesystem in {path} (once; about 35 s)...")
    started = time.monotonic()
    # Check-Valid-Until: the registry's sid Release file is older than its validity window.
    _run(["mmdebstrap", "--mode=root", "--variant=apt",
          "--aptopt=Acquire::Check-Valid-Until \"false\"",
          "--include=" + ",".join(PACKAGES), "sid", str(tmp)], log, "mmdebstrap")
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    (path / MARKER).write_text(" ".join(PACKAGES) + "\n")
    progress(f"root filesystem ready in {time.monotonic() - started:.0f} s")
    return path
