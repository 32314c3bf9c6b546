"""Secret references and the Redactor.

A parameter that is secret holds a *reference*, resolved only when a connection needs it:

* ``env:NAME`` - the environment variable NAME;
* ``secretsmanager:ID`` - the SecretString of AWS Secrets Manager secret ID (name or ARN);
  ``secretsmanager:ID#key`` - the value of ``key`` in that SecretString read as JSON;
* ``prompt:`` - asked with getpass; only with a person at the keyboard (a terminal, or a
  JupyterLab kernel that accepts input).  Headless runs need ``env:`` or ``secretsmanager:``.

Every value :func:`resolve` returns is registered with the process-wide :class:`Redactor`
(``Redactor.default()``), which masks it in text and finds it in files before they are archived.
No error message here ever contains a secret's value.
"""
from __future__ import annotations

import dataclasses
import getpass
import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runbook_lib.core.errors import SecretError
from runbook_lib.core.redact import Redactor

HEADLESS_HINT = "headless runs (papermill, CI) need an env:NAME or secretsmanager:ID reference"

_ENV = re.compile(r"^env:([A-Za-z_][A-Za-z0-9_]*)$")
_SM = re.compile(r"^secretsmanager:([^#\s]+)(?:#([^#\s]+))?$")
_PROMPT = "prompt:"


@dataclass(frozen=True)
class SecretRef:
    """A parsed secret reference.  ``kind`` is 'env', 'secretsmanager' or 'prompt'."""

    kind: str
    name: str = ""
    key: str = ""

    def __str__(self) -> str:
        if self.kind == "prompt":
            return _PROMPT
        return f"{self.kind}:{self.name}" + (f"#{self.key}" if self.key else "")


def parse_reference(text: str) -> SecretRef:
    """Parse a reference; anything else -> SecretError (which does not repeat the text)."""
    if isinstance(text, str):
        if m := _ENV.match(text):
            return SecretRef("env", m.group(1))
        if m := _SM.match(text):
            return SecretRef("secretsmanager", m.group(1), m.group(2) or "")
        if text == _PROMPT:
            return SecretRef("prompt")
    # The text may be a literal password: never put it in the message.
    raise SecretError("<not a reference>", "is not a secret reference",
                      hint="use env:NAME, secretsmanager:ID, secretsmanager:ID#key or prompt:")


def is_reference(text: Any) -> bool:
    """True if ``text`` is a well-formed secret reference."""
    try:
        parse_reference(text)
    except SecretError:
        return False
    return True


def resolve(reference: str, *, aws_session_factory: Callable[[str], Any] | None = None,
            label: str = "", redactor: Redactor | None = None) -> str:
    """Return the secret a reference points to, registered with the Redactor(s).

    ``aws_session_factory(service)`` returns a boto3 client for ``service`` (``Session.aws`` is one;
    it carries the region, endpoint URL and profile).  Without it, ``boto3.client`` with the
    environment's defaults is used.  ``label`` names the secret in prompts and in the Redactor
    (default: the reference itself).  ``redactor`` is registered with in addition to the default.
    """
    ref = parse_reference(reference)
    name = label or str(ref)
    if ref.kind == "env":
        value = _from_env(ref)
    elif ref.kind == "secretsmanager":
        value = _from_secrets_manager(ref, aws_session_factory)
    else:
        value = _from_prompt(label or "password")
    if value == "":
        raise SecretError(str(ref), "is empty", hint="store the password there (an empty password is "
                                                     "never right for these accounts)")
    Redactor.default().register(value, name)
    if redactor is not None:
        redactor.register(value, name)
    return value


def _from_env(ref: SecretRef) -> str:
    if ref.name not in os.environ:
        raise SecretError(str(ref), f"environment variable {ref.name} is not set",
                          hint=f"export {ref.name} in the environment that starts Jupyter or the runner")
    return os.environ[ref.name]


def _from_secrets_manager(ref: SecretRef, factory: Callable[[str], Any] | None) -> str:
    from botocore.exceptions import BotoCoreError, ClientError
    try:
        if factory is None:
            import boto3
            client = boto3.client("secretsmanager")
        else:
            client = factory("secretsmanager")
        answer = client.get_secret_value(SecretId=ref.name)
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "ClientError")
        hints = {"ResourceNotFoundException": "check the secret's name and the region/endpoint in use",
                 "AccessDeniedException": "grant secretsmanager:GetSecretValue on it (and kms:Decrypt)"}
        raise SecretError(f"secretsmanager:{ref.name}", f"Secrets Manager answered {code}",
                          hint=hints.get(code, "")) from e
    except BotoCoreError as e:  # no credentials, no region, endpoint unreachable...
        raise SecretError(f"secretsmanager:{ref.name}", f"cannot ask Secrets Manager: {e}",
                          hint="check AWS credentials, aws_region and aws_endpoint_url") from e
    text = answer.get("SecretString")
    if text is None:
        raise SecretError(str(ref), "holds binary data, not a SecretString")
    if not ref.key:
        return text
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise SecretError(str(ref), "is not JSON, so #key cannot pick a value",
                          hint=f"use secretsmanager:{ref.name} without #{ref.key}") from e
    if not isinstance(doc, dict) or ref.key not in doc:
        keys = ", ".join(sorted(map(str, doc))) if isinstance(doc, dict) else "none (not an object)"
        raise SecretError(str(ref), f"has no key {ref.key!r}", hint=f"its keys are: {keys}")
    value = doc[ref.key]
    if isinstance(value, (dict, list)) or value is None:
        raise SecretError(str(ref), f"key {ref.key!r} does not hold a plain value")
    return str(value)


def resolve_all(params: Any, *, aws_session_factory: Callable[[str], Any] | None = None) -> dict[str, str]:
    """Resolve every secret parameter of ``params`` (RunbookParameters): {parameter name: value}.

    For the runner, whose own process must know the values to scan a run folder for them.
    Without a factory, AWS clients are built from the parameters (region, endpoint, profile).
    """
    if aws_session_factory is None:
        from runbook_lib.aws.client import aws_client

        def aws_session_factory(service: str) -> Any:
            return aws_client(params, service)
    return {f.name: resolve(getattr(params, f.name), aws_session_factory=aws_session_factory, label=f.name)
            for f in dataclasses.fields(params) if f.metadata.get("secret")}


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _from_prompt(label: str) -> str:
    if not _in_kernel() and not (sys.stdin is not None and sys.stdin.isatty()):
        raise SecretError(_PROMPT, "cannot prompt: nobody is at a terminal", hint=HEADLESS_HINT)
    try:
        return getpass.getpass(f"{label}: ")
    except (EOFError, NotImplementedError) as e:  # IPython's StdinNotImplementedError (papermill)
        raise SecretError(_PROMPT, "cannot prompt: this run does not accept input", hint=HEADLESS_HINT) from e
