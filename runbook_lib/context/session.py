"""What every notebook opens in its second cell::

    rb = open_session(params_file, approve=approve)

The session loads and checks the parameters, builds the run's approvals (notebook parameter
``approve`` plus the yaml's ``approvals``) and a :class:`~runbook_lib.core.approval.Gate`, prints a
one-line summary (never a secret), and then opens things only when asked, once:
``rb.source()`` / ``rb.aurora()`` (connected servers), ``rb.replication_password()``,
``rb.aws(service)`` (boto3 clients for the configured region / endpoint / profile).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runbook_lib.aws.client import aws_client, boto_session
from runbook_lib.context.params import RunbookParameters, load_parameters
from runbook_lib.context.secrets import resolve
from runbook_lib.core.approval import Approvals, Gate
from runbook_lib.core.redact import Redactor

if TYPE_CHECKING:  # pragma: no cover
    from runbook_lib.mysql.connection import Server

class Session:
    """Parameters, approvals and lazily opened connections for one notebook run."""

    def __init__(self, params: RunbookParameters, approvals: Approvals, *, params_file: str = "") -> None:
        self.params = params
        self.params_file = params_file
        self.approvals = approvals
        self.gate = Gate(approvals)
        self.redactor = Redactor.default()
        self._servers: dict[str, Server] = {}
        self._clients: dict[str, Any] = {}
        self._boto_session: Any = None
        self._secrets: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"<Session {self.summary()}>"

    # --- what the operator sees first ---

    def summary(self) -> str:
        """One line: environment, both servers, the AWS side, the approvals.  No secrets."""
        p = self.params
        aws = f"AWS endpoint {p.aws_endpoint_url}" if p.aws_endpoint_url else "real AWS"
        aws += f" ({p.aws_region})"
        approved = ", ".join(sorted(self.approvals.all)) or "none"
        return (f"environment {p.environment} | source {p.source_label} {p.source_host}:{p.source_port}"
                f" | aurora {p.aurora_cluster_id} {p.aurora_host}:{p.aurora_port} | {aws}"
                f" | approved: {approved}")

    # --- secrets ---

    def secret(self, parameter: str) -> str:
        """The value behind a secret parameter (resolved once per session, registered for redaction)."""
        if parameter not in self._secrets:
            reference = getattr(self.params, parameter)
            self._secrets[parameter] = resolve(reference, aws_session_factory=self.aws, label=parameter)
        return self._secrets[parameter]

    def replication_password(self) -> str:
        return self.secret("replication_password")

    # --- servers ---

    def source(self) -> Server:
        """The connected source server (administrative account); opened on first use."""
        return self._server("source", self.params.source_endpoint, "source_admin_password")

    def aurora(self) -> Server:
        """The connected Aurora writer (master user); opened on first use."""
        return self._server("aurora", self.params.aurora_endpoint, "aurora_admin_password")

    def _server(self, role: str, endpoint: Any, password_parameter: str) -> Server:
        if role not in self._servers:
            from runbook_lib.mysql.connection import connect
            self._servers[role] = connect(endpoint(), self.secret(password_parameter))
        return self._servers[role]

    # --- AWS ---

    def aws(self, service: str) -> Any:
        """A boto3 client for ``service`` with the run's region, endpoint URL and profile (cached).

        With ``aws_endpoint_url`` set (the lab), no ``aws_profile`` and neither AWS_ACCESS_KEY_ID nor
        AWS_PROFILE in the environment, the fixed credentials 'testing'/'testing' are used: the lab
        endpoint accepts any, and the credential chain is not searched (no instance-metadata timeouts).
        """
        if service not in self._clients:
            if self._boto_session is None:
                self._boto_session = boto_session(self.params)
            self._clients[service] = aws_client(self.params, service, session=self._boto_session)
        return self._clients[service]

    # --- end ---

    def close(self) -> None:
        """Close the server connections; the session stays usable (they reopen on next use)."""
        servers, self._servers = self._servers, {}
        for server in servers.values():
            server.close()
        self._clients.clear()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


DEFAULT_PARAMS = Path(__file__).resolve().parents[2] / "parameters" / "lab.yaml"


def resolve_params_file(params_file: str | Path) -> Path:
    """``params_file`` if given, else ``$RUNBOOK_PARAMS``, else the lab's parameters."""
    if str(params_file or "").strip():
        return Path(params_file)
    return Path(os.environ.get("RUNBOOK_PARAMS") or DEFAULT_PARAMS)


def open_session(params_file: str | Path, approve: list[str] | str | None = (), *,
                 quiet: bool = False) -> Session:
    """Load ``params_file``, build approvals from ``approve`` and the yaml, print the summary line.

    An empty ``params_file`` means ``$RUNBOOK_PARAMS`` or, failing that, the lab's
    ``parameters/lab.yaml`` (relative to the notebooks folder, where kernels start).
    Parameter errors propagate (UnknownParameter, MissingParameter, ParameterError).
    """
    params_file = resolve_params_file(params_file)
    params = load_parameters(params_file)
    approvals = Approvals.build(approve, params.approvals, scopes=params.scopes)
    session = Session(params, approvals, params_file=str(params_file))
    if not quiet:
        print(session.summary())
    return session
