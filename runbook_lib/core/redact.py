"""The Redactor: a registry of secret values, masked in any text shown or archived, found in files.

``Redactor.default()`` is the process-wide registry that resolving a secret reference fills
(:mod:`runbook_lib.context.secrets`); tables, plans and reports pass their text through
:func:`redact`.
"""
from __future__ import annotations

import html
import json
import threading
import urllib.parse
from collections.abc import Iterable
from pathlib import Path

MASK = "********"


class Redactor:
    """A registry of secret values: mask them in text, find them in files.

    ``Redactor.default()`` is the process-wide registry that :func:`resolve` fills; separate
    instances are for tests and for checks limited to some secrets.
    """

    _default: Redactor | None = None
    _default_lock = threading.Lock()

    def __init__(self) -> None:
        self._names: dict[str, str] = {}  # value -> secret name
        self._lock = threading.Lock()

    @classmethod
    def default(cls) -> Redactor:
        with cls._default_lock:
            if cls._default is None:
                cls._default = cls()
            return cls._default

    def register(self, value: str, name: str) -> None:
        """Remember ``value`` (the secret called ``name``).  Empty values are ignored."""
        if value:
            with self._lock:
                self._names[value] = name

    def names(self) -> list[str]:
        """Names of the registered secrets (never their values)."""
        with self._lock:
            return sorted(set(self._names.values()))

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return f"<Redactor of {len(self)} secret(s)>"

    @classmethod
    def scan_files_for(cls, values: dict[str, str], paths: Iterable[str | Path]) -> list[tuple[str, str]]:
        """:meth:`scan_files` for the given {secret name: value} only (not the process registry)."""
        redactor = cls()
        for name, value in values.items():
            redactor.register(value, name)
        return redactor.scan_files(paths)

    def _forms(self) -> list[tuple[str, str]]:
        """(text form, name): each value as written raw, in JSON, in HTML and URL-encoded; longest first."""
        with self._lock:
            items = list(self._names.items())
        forms: dict[str, str] = {}
        for value, name in items:
            for form in (value, json.dumps(value)[1:-1], html.escape(value),
                         urllib.parse.quote(value, safe="")):
                forms.setdefault(form, name)
        return sorted(forms.items(), key=lambda item: -len(item[0]))

    def redact(self, text: str) -> str:
        """``text`` with every registered value (in any of its written forms) replaced by MASK."""
        for form, _ in self._forms():
            text = text.replace(form, MASK)
        return text

    def scan_files(self, paths: Iterable[str | Path]) -> list[tuple[str, str]]:
        """Files (directories are searched recursively) that contain a registered value.

        Returns (path, secret name) pairs, never the values.  Raises nothing itself (the caller
        raises SecretLeak); an OSError reading a file propagates: an unreadable file cannot be
        vouched for.
        """
        forms = self._forms()
        found: list[tuple[str, str]] = []
        for path in _files(paths):
            if not forms:
                break
            text = path.read_bytes().decode("utf-8", errors="replace")
            hits = {name for form, name in forms if form in text}
            found.extend((str(path), name) for name in sorted(hits))
        return found


def _files(paths: Iterable[str | Path]) -> Iterable[Path]:
    """Each file once: listed files, and the files under listed directories."""
    seen: set[Path] = set()
    for p in map(Path, paths):
        for f in sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p]:
            if f not in seen:
                seen.add(f)
                yield f


def redact(text: str) -> str:
    """Mask every secret resolved in this process."""
    return Redactor.default().redact(text)
