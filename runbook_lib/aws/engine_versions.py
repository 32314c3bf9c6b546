"""Aurora MySQL engine versions and the MySQL version each is compatible with.

A restore from S3 refuses a backup of a newer MySQL *minor* version than the Aurora engine's
(Aurora User Guide, "Physical migration from MySQL by using Percona XtraBackup and Amazon S3":
backward migration is supported for neither major nor minor versions), so preflight needs the MySQL
version behind each engine version.  :data:`MYSQL_OF_AURORA` is read from the Aurora MySQL Release
Notes ("Database engine updates for Amazon Aurora MySQL version 2", "... version 3", "... version
8.4" and "Document history for the Aurora MySQL Release Notes"): every release of one Aurora minor
line is compatible with the same MySQL version, except Aurora 2.12 (2.12.0-2.12.1: MySQL 5.7.40,
2.12.2 and later: 5.7.44).  Add a row when AWS publishes a new minor line.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

#: (Aurora major, minor, first patch) -> MySQL version, oldest first.  A row holds from its patch on.
MYSQL_OF_AURORA: tuple[tuple[tuple[int, int, int], tuple[int, int, int]], ...] = (
    ((2, 11, 0), (5, 7, 12)),
    ((2, 12, 0), (5, 7, 40)),
    ((2, 12, 2), (5, 7, 44)),
    ((3, 4, 0), (8, 0, 28)),
    ((3, 5, 0), (8, 0, 32)),
    ((3, 6, 0), (8, 0, 34)),
    ((3, 7, 0), (8, 0, 36)),
    ((3, 8, 0), (8, 0, 39)),
    ((3, 9, 0), (8, 0, 40)),
    ((3, 10, 0), (8, 0, 42)),
    ((3, 11, 0), (8, 0, 43)),
    ((3, 12, 0), (8, 0, 44)),
    ((8, 4, 7), (8, 4, 7)),          # Aurora MySQL 8.4 numbers its releases like MySQL itself
)
#: Where the table comes from (lines older than 2.11 and 3.04 are deprecated and left out).
RELEASE_NOTES = ("Aurora MySQL Release Notes: 'Database engine updates for Amazon Aurora MySQL version 2', "
                 "'... version 3', '... version 8.4'")

_ENGINE = re.compile(r"^(?P<major>\d+\.\d+)\.mysql_aurora\.(?P<aurora>\d+\.\d+\.\d+)$")


def version_text(version: tuple[int, ...]) -> str:
    """``(8, 0, 39)`` -> ``'8.0.39'``; Aurora 3 minors keep their two digits (``3.08.0``)."""
    if len(version) == 3 and version[0] in (2, 3) and version[1] < 100:
        return f"{version[0]}.{version[1]:02d}.{version[2]}"
    return ".".join(map(str, version))


@dataclass(frozen=True)
class AuroraEngine:
    """One Aurora MySQL engine version: its name, the Aurora release and the MySQL version behind it."""

    engine_version: str                  # '8.0.mysql_aurora.3.08.0'
    aurora: tuple[int, int, int]         # (3, 8, 0)
    mysql: tuple[int, int, int] | None   # (8, 0, 39); None: a release this table does not know

    @property
    def mysql_text(self) -> str:
        return version_text(self.mysql) if self.mysql else "unknown"

    def describe(self) -> str:
        return f"{self.engine_version} (Aurora MySQL {version_text(self.aurora)}, MySQL {self.mysql_text})"


def engine_name(aurora: tuple[int, int, int]) -> str:
    """The engine version string of an Aurora release: (3, 8, 0) -> '8.0.mysql_aurora.3.08.0'."""
    mysql = mysql_of(aurora)
    major = f"{mysql[0]}.{mysql[1]}" if mysql else {2: "5.7", 3: "8.0"}.get(aurora[0], "8.4")
    return f"{major}.mysql_aurora.{version_text(aurora)}"


def mysql_of(aurora: tuple[int, int, int]) -> tuple[int, int, int] | None:
    """The MySQL version of an Aurora release, from :data:`MYSQL_OF_AURORA` (None if unknown)."""
    found = None
    for first, mysql in MYSQL_OF_AURORA:
        if first[:2] == aurora[:2] and first <= aurora:
            found = mysql
    return found


def parse_engine_version(text: str) -> AuroraEngine | None:
    """``'8.0.mysql_aurora.3.08.0'`` -> :class:`AuroraEngine`; None when it is not of that form."""
    m = _ENGINE.match(text.strip())
    if not m:
        return None
    aurora = tuple(int(p) for p in m["aurora"].split("."))
    return AuroraEngine(text.strip(), aurora, mysql_of(aurora))     # type: ignore[arg-type]


def oldest_engine_for(source: tuple[int, int, int]) -> AuroraEngine | None:
    """The oldest Aurora release (of the table) whose MySQL version is the source's major and at least
    its version: where a backup of ``source`` can be restored.  None when there is none (yet)."""
    for first, mysql in MYSQL_OF_AURORA:
        if mysql[:2] == source[:2] and mysql >= source:
            return AuroraEngine(engine_name(first), first, mysql)
    return None


def newest_mysql(major: tuple[int, int]) -> tuple[int, int, int] | None:
    """The newest MySQL version any Aurora release of the table is compatible with, for one major."""
    found = [mysql for _, mysql in MYSQL_OF_AURORA if mysql[:2] == major]
    return max(found) if found else None
