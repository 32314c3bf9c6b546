"""One error hierarchy for the runbook.

Every error the library raises on purpose is a :class:`RunbookError`.  Each
subclass carries the fields an operator needs (which server, which check, what
to do) and renders them in its message, so a failed notebook cell or a failed
papermill run reads as an instruction, not a traceback puzzle.
"""
from __future__ import annotations


class RunbookError(Exception):
    """Base of every error raised by runbook_lib.

    ``hint`` says what to do about it; it is appended to the message.
    """

    hint: str = ""

    def __init__(self, message: str, *, hint: str = "") -> None:
        self.message = message
        if hint:
            self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        return f"{self.message}\n  -> {self.hint}" if self.hint else self.message


# --- parameters and secrets -------------------------------------------------

class ParameterError(RunbookError):
    """A parameter is missing, unknown or of the wrong type."""

    def __init__(self, name: str, problem: str, *, source: str = "", hint: str = "") -> None:
        self.name = name
        self.problem = problem
        self.source = source
        where = f" in {source}" if source else ""
        super().__init__(f"parameter {name!r}{where}: {problem}", hint=hint)


class UnknownParameter(ParameterError):
    def __init__(self, name: str, *, source: str = "", known: tuple[str, ...] = ()) -> None:
        close = [k for k in known if k.split("_")[0] == name.split("_")[0]][:5]
        hint = f"did you mean one of {', '.join(close)}?" if close else "remove it or check its spelling"
        super().__init__(name, "is not a parameter of this runbook", source=source, hint=hint)


class MissingParameter(ParameterError):
    def __init__(self, name: str, *, source: str = "") -> None:
        super().__init__(name, "is required and has no value", source=source,
                         hint="set it in the parameters file of this environment")


class SecretError(RunbookError):
    """A secret reference cannot be resolved.  Never carries the secret's value."""

    def __init__(self, reference: str, problem: str, *, hint: str = "") -> None:
        self.reference = reference
        super().__init__(f"secret {reference!r}: {problem}", hint=hint)


class SecretLeak(RunbookError):
    """A secret value was found in a file that is about to be archived."""

    def __init__(self, path: str, secret_name: str) -> None:
        self.path = path
        self.secret_name = secret_name
        super().__init__(f"{path} contains the value of secret {secret_name!r}",
                         hint="the run is failed and its folder must not be shared; find what printed it")


# --- servers ----------------------------------------------------------------

class ServerError(RunbookError):
    """Something about one MySQL server (``server`` is its role: source / aurora)."""

    def __init__(self, server: str, message: str, *, hint: str = "") -> None:
        self.server = server
        super().__init__(f"[{server}] {message}", hint=hint)


class ConnectionFailed(ServerError):
    """The server could not be reached (refused, timed out, unknown host)."""

    def __init__(self, server: str, host: str, port: int, reason: str, *, hint: str = "") -> None:
        self.host, self.port, self.reason = host, port, reason
        super().__init__(server, f"cannot connect to {host}:{port}: {reason}",
                         hint=hint or "check the host name, the port, that the server runs and that "
                                      "firewalls/security groups allow this machine")


class UnknownHost(ConnectionFailed):
    def __init__(self, server: str, host: str, port: int) -> None:
        super().__init__(server, host, port, "unknown host name",
                         hint=f"check the spelling of {host!r} and this machine's DNS")


class AuthenticationFailed(ServerError):
    def __init__(self, server: str, user: str, host: str, port: int, detail: str = "") -> None:
        self.user = user
        super().__init__(server, f"access denied for user {user!r} at {host}:{port}"
                                 + (f" ({detail})" if detail else ""),
                         hint="check the user name and the secret that holds its password")


class PrivilegeMissing(ServerError):
    def __init__(self, server: str, user: str, privilege: str, statement: str = "") -> None:
        self.user, self.privilege, self.statement = user, privilege, statement
        super().__init__(server, f"user {user!r} lacks {privilege}"
                                 + (f" needed for: {statement}" if statement else ""),
                         hint=f"GRANT {privilege} to {user!r} or use an account that has it")


class QueryFailed(ServerError):
    """A statement failed for a reason that is not one of the above."""

    def __init__(self, server: str, statement: str, errno: int, detail: str, *, hint: str = "") -> None:
        self.statement, self.errno, self.detail = statement, errno, detail
        super().__init__(server, f"error {errno} running {statement!r}: {detail}", hint=hint)


class UnsupportedServer(ServerError):
    """A server version or flavour this runbook cannot work with."""


class VersionMismatch(RunbookError):
    def __init__(self, source_version: str, target_version: str, *, hint: str = "") -> None:
        self.source_version, self.target_version = source_version, target_version
        super().__init__(f"source MySQL {source_version} and Aurora {target_version} are not the "
                         "same major version", hint=hint or "bi-directional replication is supported only "
                                                            "between equal major versions")


# --- replication ------------------------------------------------------------

class ReplicationError(ServerError):
    """A replication channel is stopped or failing."""

    def __init__(self, server: str, message: str, *, errno: int = 0, gtid: str = "", hint: str = "") -> None:
        self.errno, self.gtid = errno, gtid
        super().__init__(server, message, hint=hint)


class NotCaughtUp(ReplicationError):
    """A wait for a replica gave up.  ``cause``: what its channel reports (errors, or how far behind)."""

    def __init__(self, server: str, missing: str, waited: float, *, cause: str = "", hint: str = "") -> None:
        self.missing, self.cause = missing, cause
        super().__init__(server, f"did not catch up within {waited:.0f}s; still missing {missing}"
                                 + (f"; its channel reports: {cause}" if cause else ""),
                         hint=hint or "check the replica status of this direction for errors and lag")


# --- workflow ---------------------------------------------------------------

class CheckFailed(RunbookError):
    """One or more checks failed; ``table`` holds the rows to show."""

    def __init__(self, what: str, failed: list[str], *, table=None, hint: str = "") -> None:
        self.what, self.failed, self.table = what, failed, table
        super().__init__(f"{what}: {len(failed)} check(s) failed: {', '.join(failed)}",
                         hint=hint or "fix each failed item as its row says, then run this phase again")


class NotApproved(RunbookError):
    """A change was planned but not approved, so it was not applied."""

    def __init__(self, step: str) -> None:
        self.step = step
        super().__init__(f"step {step!r} was not approved, so nothing was changed",
                         hint=f"click its Apply button, or pass approve='{step}' to a headless run")


class NotApplied(RunbookError):
    """A later step needs a change that has not been made yet."""

    def __init__(self, needed: str, step: str, *, hint: str = "") -> None:
        self.needed, self.step = needed, step
        super().__init__(f"{needed} is not in place yet",
                         hint=hint or f"approve and apply step {step!r} first")


class PlanStale(RunbookError):
    """What a plan was built from changed before it was applied."""


class SwitchRolledBack(RunbookError):
    """A cut-over or fallback failed or ran out of time part-way and was undone: the scope is served
    where it was before.  ``cause``: what failed; ``undone``: what was done to put it back."""

    def __init__(self, step: str, cause: str, undone: list[str], served_on: str, *, hint: str = "") -> None:
        self.step, self.cause, self.undone, self.served_on = step, cause, undone, served_on
        super().__init__(f"step {step!r} did not complete and was ROLLED BACK: {cause}. Undone: "
                         f"{'; '.join(undone) or 'nothing had changed yet'}. The scope is served on {served_on} "
                         "as before", hint=hint or "fix the cause, then run this notebook again")


class RollbackIncomplete(RunbookError):
    """A failed switch could not be put back entirely: ``left`` says what is still out of place."""

    def __init__(self, step: str, cause: str, undone: list[str], left: list[str], *, hint: str = "") -> None:
        self.step, self.cause, self.undone, self.left = step, cause, undone, left
        super().__init__(f"step {step!r} failed ({cause}) and its ROLLBACK IS INCOMPLETE: still out of place: "
                         f"{'; '.join(left)}. Undone so far: {'; '.join(undone) or 'nothing'}",
                         hint=hint or "the scope may be open on both sides or on neither: keep its application "
                                      "stopped, fix the cause, then run this notebook again in either direction")


# --- cloud and lab ----------------------------------------------------------

class AwsError(RunbookError):
    """An AWS API call failed.  ``operation`` is the API name."""

    def __init__(self, operation: str, detail: str, *, hint: str = "") -> None:
        self.operation, self.detail = operation, detail
        super().__init__(f"AWS {operation} failed: {detail}", hint=hint)


class LabError(RunbookError):
    """The rehearsal lab cannot do what was asked."""
