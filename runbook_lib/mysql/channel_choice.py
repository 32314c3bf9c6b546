"""Which replication account and channel TLS a source/Aurora pair can really use.

One account (created on the source, replicated to Aurora) serves both directions: Aurora's channel
logs in to the source with it, and the source's channel logs in to Aurora with it.  What works
depends on both versions:

* ``caching_sha2_password`` (MySQL 8.0's default) needs TLS on the connection, or the source's RSA
  public key, which Aurora's procedures cannot ask for.  On a channel without TLS it fails to
  authenticate (error 2061, "Authentication requires secure connection"), whatever the password --
  at the latest once the server's authentication cache is emptied (a restart, FLUSH PRIVILEGES).
* Aurora ignores the ``ssl_encryption`` argument of ``rds_set_external_{master,source}_with_auto_position``
  ("This option isn't currently implemented"); its channel gets TLS only from
  ``mysql.rds_set_binlog_source_ssl``, "supported for Aurora MySQL version 3.06 and higher"
  (AWS, "Configuring, starting, and stopping binary log (binlog) replication").  Aurora MySQL 8.4
  "supports the same Aurora features as the latest Aurora MySQL version 3 releases" (AWS, "Aurora
  MySQL version 8.4 compatible with MySQL 8.4"), so it has the procedure too.
* ``mysql_native_password`` works without TLS; MySQL deprecated it in 8.0.34, 8.4 loads it only when
  ``mysql_native_password=ON``, 9.0 removed it.  Aurora 8.4 keeps it enabled.
* Aurora 8.4 sets ``require_secure_transport=ON`` by default (AWS, "Comparing Aurora MySQL version 3
  and Aurora MySQL version 8.4"): the source's channel to it must use TLS.

:func:`choose_channel` is pure; the caller says whether the source's ``mysql_native_password`` plugin
is active (``information_schema.PLUGINS``).
"""
from __future__ import annotations

from dataclasses import dataclass

from runbook_lib.core.errors import ParameterError, UnsupportedServer
from runbook_lib.mysql.aurora_procedures import BINLOG_SOURCE_SSL_SINCE
from runbook_lib.mysql.identity import Flavor, ServerIdentity

__all__ = ["ChannelChoice", "choose_channel", "native_password_active"]

SHA2, NATIVE = "caching_sha2_password", "mysql_native_password"
NO_TLS_TRADE_OFF = (
    "Without TLS the binary log stream from the source to Aurora (every row change, personal data "
    "included) crosses the network unencrypted, and mysql_native_password's challenge-response can be "
    "captured and attacked offline; the plugin is deprecated since MySQL 8.0.34, off by default in 8.4 "
    "and gone in 9.0. Keep this channel on a private network or VPN")


@dataclass(frozen=True)
class ChannelChoice:
    """The replication account's plugin and each direction's TLS, with the reasons."""

    plugin: str
    to_aurora_tls: bool         # Aurora's channel from the source (mysql.rds_set_binlog_source_ssl)
    to_source_tls: bool         # the source's channel from Aurora (SOURCE_SSL = 1)
    why: str
    trade_off: str = ""         # what the choice gives up ('' when both directions use TLS)

    def notes(self) -> list[str]:
        """Lines for a plan: the choice, why, and what it trades away."""
        tls = {True: "TLS", False: "no TLS"}
        out = [f"Replication account and channels: {self.plugin}; source → aurora {tls[self.to_aurora_tls]}"
               f"{' (mysql.rds_set_binlog_source_ssl(1))' if self.to_aurora_tls else ''}; aurora → source "
               f"{tls[self.to_source_tls]}{' (SOURCE_SSL = 1)' if self.to_source_tls else ''}.",
               f"Why: {self.why}"]
        if self.trade_off:
            out.append(f"Trade-off: {self.trade_off}")
        return out


def native_password_active(source: ServerIdentity, plugin_status: str | None) -> bool:
    """Whether the source can hold a ``mysql_native_password`` account: its ``PLUGIN_STATUS`` in
    ``information_schema.PLUGINS`` (None: not listed)."""
    if source.version >= (9, 0, 0):
        return False
    if source.version < (8, 4, 0):
        return plugin_status in (None, "ACTIVE")      # built in up to 8.3
    return plugin_status == "ACTIVE"


def _binlog_source_ssl(aurora: ServerIdentity) -> bool:
    return aurora.is_aurora and aurora.aurora_release >= BINLOG_SOURCE_SSL_SINCE


def choose_channel(source: ServerIdentity, aurora: ServerIdentity, *, tls: bool = True,
                   native_password: bool = True) -> ChannelChoice:
    """The account plugin and channel TLS that connect both directions between *source* and *aurora*.

    *tls*: the operator wants TLS (parameter ``replication_ssl``).  *native_password*: the source can
    hold a ``mysql_native_password`` account (:func:`native_password_active`).  ParameterError when
    TLS is turned off but only ``caching_sha2_password`` is possible; UnsupportedServer when no
    account can connect.
    """
    aurora_name = f"Aurora MySQL {aurora.aurora_version or '?'}"
    proc = _binlog_source_ssl(aurora)
    requires_tls = aurora.flavor is Flavor.AURORA84          # require_secure_transport=ON by default
    to_source_tls = tls or requires_tls
    sha2 = source.version >= (8, 0, 0) and aurora.version >= (8, 0, 0)
    if tls and proc and sha2:
        return ChannelChoice(SHA2, True, True,
                             f"{aurora_name} sets TLS on its channel with mysql.rds_set_binlog_source_ssl "
                             f"(3.06 and later), so the account keeps caching_sha2_password, the default of "
                             f"MySQL {source.major}, with TLS in both directions.")
    if native_password:
        if not tls:
            why = "replication_ssl is false: no TLS, so the account needs mysql_native_password."
        elif not sha2:
            why = (f"MySQL {min(source.major, aurora.major)} has no caching_sha2_password, and {aurora_name} "
                   "cannot encrypt its channel (mysql.rds_set_binlog_source_ssl needs 3.06 or later; the "
                   "ssl_encryption argument is not implemented).")
        else:
            why = (f"{aurora_name} cannot encrypt its channel (mysql.rds_set_binlog_source_ssl needs 3.06 or "
                   "later; the ssl_encryption argument is not implemented), and caching_sha2_password fails "
                   "to authenticate without TLS (error 2061): mysql_native_password works without it.")
        if requires_tls and not tls:
            why += f" The source's channel uses TLS all the same: {aurora_name} requires secure transport."
        return ChannelChoice(NATIVE, False, to_source_tls, why,
                             NO_TLS_TRADE_OFF + ("" if to_source_tls else "; the aurora → source channel "
                                                 "is unencrypted too") + ".")
    if not tls and sha2:
        raise ParameterError("replication_ssl", f"is false, but MySQL {source.version_text} on the source has "
                             "no mysql_native_password, and caching_sha2_password needs TLS (Aurora's procedure "
                             "cannot ask for the source's public key)", hint="set replication_ssl: true")
    raise UnsupportedServer("aurora", f"no replication account can connect MySQL {source.version_text} and "
                            f"{aurora_name}: caching_sha2_password needs TLS on Aurora's channel "
                            "(mysql.rds_set_binlog_source_ssl, Aurora 3.06 and later) and the source has no "
                            "mysql_native_password",
                            hint="upgrade Aurora to 3.06 or later, or (MySQL 8.4) start the source with "
                                 "mysql_native_password=ON")
