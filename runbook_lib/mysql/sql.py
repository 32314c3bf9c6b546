"""A statement as the runbook sends it: :class:`Sql` (text with ``%s`` placeholders, its arguments,
which of them are secret), and the checks of the values statements are built from (an integer in
range, exactly one GTID, an identifier quoted with :func:`q`)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pymysql.converters import escape_item

from runbook_lib.core.errors import ParameterError
from runbook_lib.mysql.gtid import GtidSet


@dataclass(frozen=True, repr=False)
class Sql:
    """One statement: ``text`` with ``%s`` placeholders, ``args``, and which args are secret.

    ``str()``/``shown()`` is what a plan displays (secrets as ``'********'``); only
    :meth:`Server.execute` uses the real ``args``.
    """

    text: str
    args: tuple[Any, ...] = ()
    secret_args: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        placeholders = re.findall(r"%[%s]", self.text).count("%s")
        if placeholders != len(self.args):
            raise ValueError(f"{self.text!r} has {placeholders} placeholders for {len(self.args)} args")
        if any(not 0 <= i < len(self.args) for i in self.secret_args):
            raise ValueError(f"secret_args {self.secret_args} out of range for {len(self.args)} args")

    def shown(self) -> str:
        if not self.args:
            return self.text
        return self.text % tuple("'********'" if i in self.secret_args else escape_item(arg, "utf8mb4")
                                 for i, arg in enumerate(self.args))

    __str__ = shown

    def __repr__(self) -> str:
        return f"Sql({self.shown()!r})"


def int_param(name: str, value: int, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ParameterError(name, f"must be an integer from {low} to {high}, not {value!r}")
    return value


def single_gtid(gtid: str) -> str:
    """Canonical text of exactly one GTID ('uuid:N' or 'uuid:tag:N')."""
    try:
        one = GtidSet.parse(gtid)
    except ValueError as e:
        raise ParameterError("gtid", str(e)) from e
    if one.count() != 1:
        raise ParameterError("gtid", f"{gtid!r} is not exactly one GTID (uuid:N)")
    return str(one)


def q(name: str) -> str:
    """``name`` as a quoted MySQL identifier."""
    return "`" + name.replace("`", "``") + "`"
