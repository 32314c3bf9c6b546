"""Which DB instance of the cluster the lab's ``aurora`` server is: its server_id and server_uuid.

The lab runs one ``mysqld`` for the whole cluster.  A failover makes another DB instance the
writer over the same data (AWS "Failing over an Amazon Aurora DB cluster": a reader is promoted;
FailoverDBCluster: "each instance in a DB cluster has its own endpoint address"), so the server
starts again as that instance: its own ``server_id`` (``overrides.cnf``) and ``server_uuid``
(``auto.cnf``; none for a first-time writer, so mysqld makes one).  An instance keeps its identity:
failing back brings the first writer's ids back.  :class:`InstanceIdentities` keeps, in
``instances.json`` beside the server's files, what each instance was when it last was the writer.
"""
from __future__ import annotations

import json
import logging
import re
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

from runbook_lib.lab.servers import MysqldInstance

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InstanceIdentity:
    """Who a DB instance is to MySQL when it is the writer."""

    server_id: int
    server_uuid: str


def instance_server_id(instance: str, taken: set[int]) -> int:
    """A large server_id of its own for DB instance ``instance`` (Aurora picks large ids), not in ``taken``."""
    server_id = 1_000_000_000 + zlib.crc32(instance.encode()) % 1_000_000_000
    while server_id in taken:
        server_id += 1
    return server_id


class InstanceIdentities:
    """The identities of the cluster's DB instances the lab's ``aurora`` server has played."""

    def __init__(self, aurora: MysqldInstance) -> None:
        self.aurora = aurora

    @property
    def file(self) -> Path:
        return self.aurora.runtime_dir / "instances.json"

    def known(self) -> dict[str, InstanceIdentity]:
        try:
            data = json.loads(self.file.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return {name: InstanceIdentity(int(v["server_id"]), str(v["server_uuid"])) for name, v in data.items()}

    def _save(self, known: dict[str, InstanceIdentity]) -> None:
        self.file.write_text(json.dumps({n: asdict(v) for n, v in known.items()}, indent=1))

    def current(self) -> InstanceIdentity:
        """The server's server_id (overrides, else its option file) and server_uuid (auto.cnf), read
        from its files: the server may be down."""
        server_id = int(self.aurora.read_overrides().get("server-id") or self.aurora.server_id)
        auto = self.aurora.datadir / "auto.cnf"
        found = re.search(r"server-uuid\s*=\s*([0-9a-fA-F-]{36})", auto.read_text() if auto.exists() else "")
        return InstanceIdentity(server_id, found[1] if found else "")

    def leave(self, instance: str) -> None:
        """``instance`` stops being the writer: remember who it was."""
        if instance:
            self._save({**self.known(), instance: self.current()})

    def assume(self, instance: str) -> None:
        """Make the (stopped) server start as DB instance ``instance``: its server_id in the overrides,
        its server_uuid in auto.cnf, or no auto.cnf (a new uuid) for a first-time writer."""
        known = self.known()
        mine = known.get(instance)
        taken = {i.server_id for name, i in known.items() if name != instance}
        server_id = mine.server_id if mine else instance_server_id(instance, taken)
        self.aurora.write_overrides({**self.aurora.read_overrides(), "server-id": str(server_id)})
        auto = self.aurora.datadir / "auto.cnf"
        if mine and mine.server_uuid:
            auto.write_text(f"[auto]\nserver-uuid={mine.server_uuid}\n")
        else:
            auto.unlink(missing_ok=True)
        log.info("aurora server starts as DB instance %s (server_id %d, server_uuid %s)", instance,
                 server_id, mine.server_uuid if mine else "new")

    def started(self, instance: str) -> None:
        """The server runs as ``instance`` now: remember its ids (a new uuid is known only now)."""
        self._save({**self.known(), instance: self.current()})

    def forget(self) -> None:
        """A new cluster on the server (a restore, a create): no instance has been the writer yet."""
        self.file.unlink(missing_ok=True)
        overrides = self.aurora.read_overrides()
        if overrides.pop("server-id", None) is not None:
            self.aurora.write_overrides(overrides)
