"""The lab's AWS API endpoint: moto in server mode, plus what moto lacks, wired to the lab's servers.

``python -m runbook_lib.lab.endpoint --lab-name NAME`` serves every moto service on
127.0.0.1:<endpoint port> and ``GET /_lab/health``.  A WSGI middleware sends the RDS
actions in :data:`LAB_ACTIONS` to :class:`LabRDSResponse` (moto's own request parser and
response serializer, so botocore reads the answers as AWS's); everything else goes to moto
untouched.  What the calls do to the ``aurora`` server is in :mod:`.aurora_wiring`:

* ``RestoreDBClusterFromS3``: validated like AWS; the backup (a MySQL clone-plugin data
  directory under the prefix) becomes the ``aurora`` server's data directory; an XtraBackup
  upload fails the cluster with the reason in DescribeEvents.
* ``DescribeEngineDefaultClusterParameters``, ``DescribeDBClusterParameters`` (``Source``
  honoured, the full merged list), ``ModifyDBClusterParameterGroup`` (unknown names, bad
  values and ``immediate`` on static parameters refused as AWS does), see :mod:`.aurora_defaults`.
* ``CreateDBCluster`` (aurora-mysql) restarts the server with its group, ``ModifyDBCluster``
  with another group marks a pending reboot, ``RebootDBInstance`` of the writer restarts it,
  ``FailoverDBCluster`` crashes it and brings it back read-only, then writable.
* ``DescribeDBEngineVersions`` (a small table); CloudWatch ``AuroraBinlogReplicaLag``.
"""
from __future__ import annotations

import argparse
import io
import logging
import os
import re
import signal
import sys
import threading
from urllib.parse import parse_qs

from botocore.exceptions import ClientError
from moto.core.request import Request as MotoRequest
from moto.core.responses import ActionResult
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.rds.exceptions import (
    InvalidDBClusterStateFault,
    InvalidParameterCombination,
    InvalidParameterValue,
    RDSClientError,
)
from moto.rds.models import DBInstanceClustered
from moto.rds.responses import RDSResponse
from werkzeug.serving import make_server
from werkzeug.wrappers import Response

from runbook_lib.core.errors import RunbookError
from runbook_lib.lab import aurora_defaults as ad
from runbook_lib.lab.aurora_wiring import AuroraWiring, Timings, group_of
from runbook_lib.lab.servers import MysqldInstance

log = logging.getLogger(__name__)
LAB_ACTIONS = frozenset({
    "RestoreDBClusterFromS3", "DescribeEngineDefaultClusterParameters", "DescribeDBClusterParameters",
    "ModifyDBClusterParameterGroup", "CreateDBCluster", "ModifyDBCluster", "DeleteDBCluster",
    "FailoverDBCluster", "RebootDBInstance", "DescribeDBEngineVersions"})
_RESTORE_REQUIRED = ("DBClusterIdentifier", "Engine", "MasterUsername", "MasterUserPassword", "SourceEngine",
                     "SourceEngineVersion", "S3BucketName", "S3IngestionRoleArn")


def _items(params) -> list[dict]:
    return [p.original_dict() if hasattr(p, "original_dict") else dict(p) for p in params or []]


class LabRDSResponse(RDSResponse):
    """The RDS actions of :data:`LAB_ACTIONS`: moto's where it has them, then wired to the lab."""

    wiring: AuroraWiring   # set by serve()
    default_engine_version: str = ad.DEFAULT_ENGINE_VERSION   # the Aurora the lab plays (`lab up --aurora`)

    # -- checks ------------------------------------------------------------
    @staticmethod
    def _check_version(version: str) -> None:
        if version not in dict(ad.ENGINE_VERSIONS):
            raise InvalidParameterCombination(f"Cannot find version {version} for aurora-mysql")

    def _check_group(self, name: str | None, family: str) -> None:
        if name:
            found, _ = group_of(self.backend, name)
            if found != family:
                raise InvalidParameterCombination(
                    f"The Parameter Group {name} with DBParameterGroupFamily {found} cannot be used for this "
                    f"instance. Please use a Parameter Group with DBParameterGroupFamily {family}")

    def _check_restore(self, p) -> tuple[str, str]:
        for key in _RESTORE_REQUIRED:
            if not p.get(key):
                raise InvalidParameterValue(f"The parameter {key} must be provided and must not be blank.")
        if p["Engine"] != "aurora-mysql":
            raise InvalidParameterValue(f"Invalid DB engine: {p['Engine']}; S3 restores make aurora-mysql")
        if p["SourceEngine"] != "mysql":
            raise InvalidParameterValue(f"Invalid source engine: {p['SourceEngine']}. Valid value: mysql")
        version = p.get("EngineVersion") or self.default_engine_version
        self._check_version(version)
        family = ad.family_of(version)
        source = re.match(r"\d+\.\d+", p["SourceEngineVersion"])
        majors = {version.split(".mysql_aurora.")[0], self.wiring.standin_major()}
        if not source or source[0] not in majors:
            raise InvalidParameterCombination(
                f"Source engine version {p['SourceEngineVersion']} is not compatible with engine version "
                f"{version}: restore a MySQL {' or '.join(sorted(majors))} backup")
        if p["DBClusterIdentifier"] in self.backend.clusters:
            raise RDSClientError("DBClusterAlreadyExistsFault", "DB Cluster already exists")
        self._check_group(p.get("DBClusterParameterGroupName"), family)
        self._check_s3(p["S3BucketName"], p.get("S3Prefix") or "", p["S3IngestionRoleArn"])
        return version, family

    def _check_s3(self, bucket: str, prefix: str, role_arn: str) -> None:
        role = re.fullmatch(r"arn:aws:iam::\d{12}:role/(?:[\w+=,.@/-]*/)?([\w+=,.@-]+)", role_arn)
        bad_role = ("IAM role ARN value is invalid or does not include the required permissions for: "
                    "S3_SNAPSHOT_INGESTION")
        if not role:
            raise InvalidParameterValue(bad_role)
        try:
            self.wiring.client("iam", "us-east-1", self.current_account).get_role(RoleName=role[1])
        except ClientError as e:
            raise InvalidParameterValue(bad_role) from e
        s3 = self.wiring.client("s3", self.region, self.current_account)
        try:
            found = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1).get("KeyCount", 0)
        except ClientError as e:
            raise RDSClientError("InvalidS3BucketFault", f"The specified Amazon S3 bucket {bucket} can't be "
                                 "found or Amazon RDS isn't authorized to access it.") from e
        if not found:
            raise RDSClientError("InvalidS3BucketFault", f"No backup files found in s3://{bucket}/{prefix}")

    # -- new actions -----------------------------------------------------------
    def restore_db_cluster_from_s3(self) -> ActionResult:
        p = self.params
        version, family = self._check_restore(p)
        cluster = self.backend.create_db_cluster(p)
        cluster.engine_version = version
        cluster.parameter_group = p.get("DBClusterParameterGroupName") or f"default.{family}"
        w, backend = self.wiring, self.backend
        w.adopt(cluster, "creating")      # the server plays it once the restore replaces its data
        bucket, prefix = p["S3BucketName"], p.get("S3Prefix") or ""
        w.event(backend, cluster, f"Restoring DB cluster from s3://{bucket}/{prefix}")

        def finish(error: str | None) -> None:
            cluster.status, cluster.lab_pending_reboot = ("failed" if error else "available"), False
            w.event(backend, cluster, f"Restore from Amazon S3 failed: {error}" if error
                    else "Restored DB cluster from Amazon S3", "failure" if error else "creation")

        user, password, account = p["MasterUsername"], p["MasterUserPassword"], self.current_account
        w.run("restore", lambda: w.restore(backend, cluster, bucket, prefix, account, user, password), finish)
        return ActionResult({"DBCluster": cluster})

    def describe_engine_default_cluster_parameters(self) -> ActionResult:
        family = self.params.get("DBParameterGroupFamily")
        if family not in ad.FAMILIES:
            raise InvalidParameterValue(f"Invalid DB parameter group family: {family} "
                                        f"(the lab knows {', '.join(ad.FAMILIES)})")
        params = [p.as_api() for p in ad.defaults(family).values()]
        return ActionResult({"EngineDefaults": {"DBParameterGroupFamily": family, "Parameters": params}})

    def describe_db_engine_versions(self) -> ActionResult:
        p = self.params
        rows = [ad.engine_version_api(v, m) for v, m in ad.ENGINE_VERSIONS
                if p.get("Engine") in (None, "aurora-mysql") and p.get("EngineVersion") in (None, v)
                and p.get("DBParameterGroupFamily") in (None, ad.family_of(v))]
        if p.get("DefaultOnly"):
            rows = list({r["MajorEngineVersion"]: r for r in rows}.values())   # the newest of each major
        return ActionResult({"DBEngineVersions": rows})

    # -- moto's actions, completed -----------------------------------------------
    def describe_db_cluster_parameters(self) -> ActionResult:
        name = self.params.get("DBClusterParameterGroupName")
        family, _ = group_of(self.backend, name)
        if family not in ad.FAMILIES:
            return super().describe_db_cluster_parameters()
        group = self.backend.db_cluster_parameter_groups.get(name)
        stored = group.parameters if group is not None else {}
        rows = []
        for pname, param in ad.defaults(family).items():
            mine = stored.get(pname, {})
            row = (param.as_api(mine["ParameterValue"], "user", mine.get("ApplyMethod") or "pending-reboot")
                   if mine.get("ParameterValue") is not None else param.as_api())
            if self.params.get("Source") in (None, row["Source"]):
                rows.append(row)
        return ActionResult({"Parameters": rows})

    def modify_db_cluster_parameter_group(self) -> ActionResult:
        name = self.params.get("DBClusterParameterGroupName")
        family, _ = group_of(self.backend, name)
        if name.startswith("default."):
            raise InvalidParameterValue(f"Default parameter group {name} cannot be modified")
        items = _items(self.params.get("Parameters"))
        if family in ad.FAMILIES:
            if len(items) > ad.MAX_PARAMETERS_PER_MODIFY:
                raise InvalidParameterValue(f"A maximum of {ad.MAX_PARAMETERS_PER_MODIFY} parameters can be "
                                            "modified in a single request")
            for item in items:
                problem = ad.change_problem(family, item.get("ParameterName"), item.get("ParameterValue"),
                                            item.get("ApplyMethod"))
                if problem:
                    raise RDSClientError(*problem)
        result = super().modify_db_cluster_parameter_group()
        if family in ad.FAMILIES:
            self.wiring.group_modified(self.backend, name, {i["ParameterName"]: (i["ParameterValue"],
                                                                                i.get("ApplyMethod"))
                                                            for i in items})
        return result

    def create_db_cluster(self) -> ActionResult:
        p = self.params
        if p.get("Engine") != "aurora-mysql":
            return super().create_db_cluster()
        version = p.get("EngineVersion") or self.default_engine_version
        self._check_version(version)
        self._check_group(p.get("DBClusterParameterGroupName"), ad.family_of(version))
        super().create_db_cluster()
        cluster = self.backend.clusters[p["DBClusterIdentifier"]]
        cluster.engine_version = version
        cluster.parameter_group = p.get("DBClusterParameterGroupName") or f"default.{ad.family_of(version)}"
        w, backend = self.wiring, self.backend
        w.bind(backend, w.adopt(cluster, "creating"))

        def work() -> None:
            w.write_group(backend, cluster)
            w.restart()

        def finish(error: str | None) -> None:
            cluster.status, cluster.lab_pending_reboot = ("failed" if error else "available"), False
            w.event(backend, cluster, f"DB cluster create failed: {error}" if error else "DB cluster created",
                    "failure" if error else "creation")

        w.run("create", work, finish)
        return ActionResult({"DBCluster": cluster})

    def modify_db_cluster(self) -> ActionResult:
        group = self.params.get("DBClusterParameterGroupName")
        cluster = self.wiring.bound_cluster(self.backend, self.params.get("DBClusterIdentifier"))
        if group and cluster is not None:
            self._check_group(group, ad.family_of(cluster.engine_version))
        result = super().modify_db_cluster()
        if group and cluster is not None and cluster.parameter_group == group:
            self.wiring.write_group(self.backend, cluster)
            cluster.lab_pending_reboot = True
        return result

    def delete_db_cluster(self) -> ActionResult:
        bound = self.wiring.bound_cluster(self.backend, self.params.get("DBClusterIdentifier"))
        result = super().delete_db_cluster()
        if bound is not None:
            self.wiring.bound = None
            log.info("cluster %s deleted: the aurora server plays no cluster", bound.db_cluster_identifier)
        return result

    def failover_db_cluster(self) -> ActionResult:
        cluster_id = self.params.get("DBClusterIdentifier")
        cluster = self.wiring.bound_cluster(self.backend, cluster_id)
        if cluster is not None and cluster.status != "available":
            raise InvalidDBClusterStateFault(f"DbCluster {cluster_id} is not in available state.")
        result = super().failover_db_cluster()
        if cluster is None:
            return result
        w, backend, writer = self.wiring, self.backend, cluster.writer.db_instance_identifier
        cluster.status = "failing-over"
        w.event(backend, cluster, f"Started cross AZ failover to DB instance: {writer}")

        def finish(error: str | None) -> None:
            cluster.status, cluster.lab_pending_reboot = ("failed" if error else "available"), False
            w.event(backend, cluster, f"Failover failed: {error}" if error
                    else f"Completed failover to DB instance: {writer}", "failure" if error else "failover")

        w.run("failover", w.failover, finish)
        return ActionResult({"DBCluster": cluster})

    def reboot_db_instance(self) -> ActionResult:
        result = super().reboot_db_instance()
        db = self.backend.databases[self.params.get("DBInstanceIdentifier")]
        cluster = (self.wiring.bound_cluster(self.backend, db.db_cluster_identifier)
                   if isinstance(db, DBInstanceClustered) else None)
        if cluster is None or not db.is_cluster_writer:
            return result
        db.status = "rebooting"

        def finish(error: str | None) -> None:
            db.status = "failed" if error else "available"
            cluster.lab_pending_reboot = bool(error)
            self.wiring.event(self.backend, cluster, f"Reboot of {db.db_instance_identifier} failed: {error}"
                              if error else f"DB instance {db.db_instance_identifier} restarted")

        self.wiring.run("reboot", self.wiring.restart, finish)
        return ActionResult({"DBInstance": db})


class LabMiddleware:
    """WSGI: ``/_lab/health``, the RDS actions of :data:`LAB_ACTIONS`, and moto for the rest."""

    def __init__(self, moto_app) -> None:
        self.moto_app = moto_app

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == "/_lab/health":
            return Response("ok", mimetype="text/plain")(environ, start_response)
        if not self._lab_action(environ):
            return self.moto_app(environ, start_response)
        request = MotoRequest(environ)
        status, headers, body = LabRDSResponse.dispatch(request, request.raw_url, dict(request.headers))
        headers = {k: v for k, v in headers.items() if k.lower() not in ("status", "date", "server")}
        return Response(body, status=status, headers=headers)(environ, start_response)

    @staticmethod
    def _lab_action(environ) -> bool:
        """True for an RDS Query-protocol POST naming one of :data:`LAB_ACTIONS` (body kept readable)."""
        scope = re.search(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/", environ.get("HTTP_AUTHORIZATION", ""))
        if (environ.get("REQUEST_METHOD") != "POST" or not scope or scope[1] != "rds"
                or environ.get("HTTP_CONTENT_ENCODING")
                or not environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded")):
            return False
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        return parse_qs(body.decode("utf-8", "replace")).get("Action", [""])[0] in LAB_ACTIONS


def serve(aurora: MysqldInstance, port: int, timings: Timings | None = None, host: str = "127.0.0.1",
          restore_gtids: str = "kept", engine_version: str = ad.DEFAULT_ENGINE_VERSION) -> None:
    """Serve until SIGTERM or SIGINT (blocking); *engine_version*: the default of CreateDBCluster and
    RestoreDBClusterFromS3 (so its family's ``default.<family>`` group), the Aurora the lab plays."""
    LabRDSResponse.default_engine_version = engine_version
    os.environ.setdefault("MOTO_PORT", str(port))
    url, timings = f"http://{host}:{port}", timings or Timings()
    wiring = AuroraWiring(aurora, url, timings)
    wiring.restore_gtids = restore_gtids
    LabRDSResponse.wiring = wiring
    server = make_server(host, port, LabMiddleware(DomainDispatcherApplication(create_backend_app)),
                         threaded=True, request_handler=MotoRequestHandler)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    threading.Thread(target=server.serve_forever, name="lab-endpoint-http", daemon=True).start()
    threading.Thread(target=wiring.publish_metrics, name="lab-metrics", daemon=True).start()
    log.info("lab endpoint on %s; aurora server on 127.0.0.1:%d; %s", url, aurora.port, timings)
    while not stop.wait(1.0):
        pass
    log.info("stopping")
    wiring.stopping.set()
    server.shutdown()
    server.server_close()


def main(argv: list[str] | None = None) -> int:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m runbook_lib.lab.endpoint",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--lab-name", default=env("RUNBOOK_LAB_NAME"), help="lab instance (default: default)")
    parser.add_argument("--failover-down", type=float, default=float(env("RUNBOOK_LAB_FAILOVER_DOWN", "1.5")),
                        help="seconds the writer refuses connections during a failover")
    parser.add_argument("--failover-read-only", type=float,
                        default=float(env("RUNBOOK_LAB_FAILOVER_READ_ONLY", "1.5")),
                        help="seconds it then answers read-only")
    parser.add_argument("--metric-interval", type=float,
                        default=float(env("RUNBOOK_LAB_METRIC_INTERVAL", "1")),
                        help="seconds between AuroraBinlogReplicaLag data points")
    parser.add_argument("--restore-gtids", choices=("kept", "lost"), default=env("RUNBOOK_LAB_RESTORE_GTIDS", "kept"),
                        help="whether a restore from S3 keeps the backup's GTID history (AWS promises neither)")
    parser.add_argument("--verbose", action="store_true", help="log every HTTP request too")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(threadName)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.INFO if args.verbose else logging.WARNING)
    from runbook_lib.lab.control import instances, load_state

    try:
        state = load_state(args.lab_name)
        serve(instances(state)["aurora"], state.endpoint_port,
              Timings(args.failover_down, args.failover_read_only, args.metric_interval),
              restore_gtids=args.restore_gtids, engine_version=ad.ENGINE_VERSION_FOR[state.aurora or "3"])
    except (RunbookError, OSError) as e:
        log.error("lab endpoint: %s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
