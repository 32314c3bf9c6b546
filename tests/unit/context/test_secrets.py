"""runbook_lib.context.secrets (and Session's AWS side): references, resolution, the Redactor.

Secrets Manager is a real moto server on 127.0.0.1, as the notebooks use it (a kernel is another
process, so an in-process mock_aws would not reach it).
"""
from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import pytest
import yaml
from botocore.config import Config

from runbook_lib.context import secrets
from runbook_lib.context.secrets import SecretRef, is_reference, parse_reference, resolve
from runbook_lib.context.session import open_session
from runbook_lib.core.errors import SecretError
from runbook_lib.core.redact import MASK, Redactor, redact
from tests.support import REPO

MOTO_SERVER = Path(sys.executable).with_name("moto_server")
LAB = REPO / "parameters" / "lab.yaml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def moto_url():
    if not MOTO_SERVER.exists():
        pytest.skip(f"{MOTO_SERVER} is not installed (pip install 'moto[server]')")
    port = free_port()
    proc = subprocess.Popen([str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto_server did not answer on {url}")
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def factory(moto_url):
    def client(service: str):
        return boto3.client(service, endpoint_url=moto_url, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing",
                            config=Config(retries={"max_attempts": 1}))
    sm = client("secretsmanager")
    sm.create_secret(Name="unit/plain", SecretString="Pl@in-Secret-1")
    sm.create_secret(Name="unit/json",
                     SecretString=json.dumps({"username": "admin", "password": "J$on-Secret-2"}))
    sm.create_secret(Name="unit/notjson", SecretString="NotJson-Secret-3")
    sm.create_secret(Name="runbook-lab/replicator", SecretString="Repl-Secret-4")
    return client


# --- references -----------------------------------------------------------------------------

@pytest.mark.parametrize("text, ref", [
    ("env:RUNBOOK_PW", SecretRef("env", "RUNBOOK_PW")),
    ("secretsmanager:runbook-lab/onprem/dba", SecretRef("secretsmanager", "runbook-lab/onprem/dba")),
    ("secretsmanager:arn:aws:secretsmanager:us-east-1:1:secret:x#password",
     SecretRef("secretsmanager", "arn:aws:secretsmanager:us-east-1:1:secret:x", "password")),
    ("prompt:", SecretRef("prompt")),
])
def test_references_parse_and_print_back(text, ref):
    assert parse_reference(text) == ref and str(ref) == text and is_reference(text)


@pytest.mark.parametrize("text", ["hunter2", "env:", "env:1X", "secretsmanager:", "secretsmanager:a#b#c",
                                  "prompt:please", "ENV:X", "", None, 5])
def test_non_references_are_refused_without_repeating_them(text):
    assert not is_reference(text)
    with pytest.raises(SecretError) as e:
        parse_reference(text)
    if text:
        assert str(text) not in e.value.message


# --- env: -----------------------------------------------------------------------------------

def test_env_resolves_and_registers(monkeypatch):
    monkeypatch.setenv("RUNBOOK_UNIT_PW", "Env-Secret-0")
    mine = Redactor()
    assert resolve("env:RUNBOOK_UNIT_PW", redactor=mine) == "Env-Secret-0"
    assert mine.names() == ["env:RUNBOOK_UNIT_PW"]
    assert "env:RUNBOOK_UNIT_PW" in Redactor.default().names()
    assert redact("pw=Env-Secret-0;") == f"pw={MASK};"


def test_env_missing_names_the_variable(monkeypatch):
    monkeypatch.delenv("RUNBOOK_UNIT_NOPE", raising=False)
    with pytest.raises(SecretError, match="environment variable RUNBOOK_UNIT_NOPE is not set"):
        resolve("env:RUNBOOK_UNIT_NOPE")


def test_empty_value_is_refused(monkeypatch):
    monkeypatch.setenv("RUNBOOK_UNIT_EMPTY", "")
    with pytest.raises(SecretError, match="is empty"):
        resolve("env:RUNBOOK_UNIT_EMPTY")


# --- secretsmanager: against a moto server ---------------------------------------------------

def test_secretsmanager_plain_and_json_key(factory):
    mine = Redactor()
    plain = resolve("secretsmanager:unit/plain", aws_session_factory=factory, redactor=mine)
    assert plain == "Pl@in-Secret-1"
    assert resolve("secretsmanager:unit/json#password", aws_session_factory=factory,
                   label="aurora_admin_password", redactor=mine) == "J$on-Secret-2"
    assert mine.names() == ["aurora_admin_password", "secretsmanager:unit/plain"]


def test_secretsmanager_missing_key_lists_key_names_not_values(factory):
    with pytest.raises(SecretError, match="has no key 'pass'") as e:
        resolve("secretsmanager:unit/json#pass", aws_session_factory=factory)
    assert "password, username" in str(e.value) and "J$on-Secret-2" not in str(e.value)


def test_secretsmanager_key_of_non_json(factory):
    with pytest.raises(SecretError, match="is not JSON") as e:
        resolve("secretsmanager:unit/notjson#password", aws_session_factory=factory)
    assert "NotJson-Secret-3" not in str(e.value)


def test_secretsmanager_not_found(factory):
    with pytest.raises(SecretError, match="ResourceNotFoundException"):
        resolve("secretsmanager:unit/none", aws_session_factory=factory)


def test_secretsmanager_unreachable_endpoint():
    port = free_port()

    def dead(service):
        return boto3.client(service, endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing",
                            config=Config(retries={"max_attempts": 1}, connect_timeout=1))
    with pytest.raises(SecretError, match="cannot ask Secrets Manager"):
        resolve("secretsmanager:unit/plain", aws_session_factory=dead)


def test_session_resolves_through_its_aws_clients(factory, moto_url, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    lab = yaml.safe_load(LAB.read_text())
    lab["aws_endpoint_url"] = moto_url
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(lab), encoding="utf-8")
    rb = open_session(path, approve="replication")
    line = capsys.readouterr().out
    assert f"AWS endpoint {moto_url}" in line and "127.0.0.1:23306" in line and "Repl-Secret-4" not in line
    assert rb.replication_password() == "Repl-Secret-4"
    assert rb.aws("secretsmanager") is rb.aws("secretsmanager")
    assert rb.aws("s3").meta.endpoint_url == moto_url and rb.aws("s3").meta.region_name == "us-east-1"
    assert "replication_password" in Redactor.default().names()
    assert "Repl-Secret-4" not in repr(rb)
    rb.close()


def test_session_summary_says_real_aws(tmp_path, capsys):
    lab = yaml.safe_load(LAB.read_text())
    lab["aws_endpoint_url"] = ""
    path = tmp_path / "env.yaml"
    path.write_text(yaml.safe_dump(lab), encoding="utf-8")
    open_session(path)
    assert "real AWS (us-east-1)" in capsys.readouterr().out


# --- prompt: --------------------------------------------------------------------------------

def test_prompt_refused_headless(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    with pytest.raises(SecretError, match="nobody is at a terminal") as e:
        resolve("prompt:", label="aurora_admin_password")
    assert "env:NAME or secretsmanager:ID" in e.value.hint


def test_prompt_asks_at_a_terminal(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True
    asked = []
    monkeypatch.setattr(sys, "stdin", Tty(""))
    monkeypatch.setattr(secrets.getpass, "getpass", lambda text: asked.append(text) or "Typed-Secret-5")
    assert resolve("prompt:", label="replication_password") == "Typed-Secret-5"
    assert asked == ["replication_password: "]
    assert "replication_password" in Redactor.default().names()


def test_prompt_in_a_kernel_without_input(monkeypatch):
    from IPython.core.error import StdinNotImplementedError

    def no_input(text):
        raise StdinNotImplementedError("getpass was called, but this frontend does not support input")
    monkeypatch.setattr(secrets, "_in_kernel", lambda: True)
    monkeypatch.setattr(secrets.getpass, "getpass", no_input)
    with pytest.raises(SecretError, match="does not accept input"):
        resolve("prompt:")


# --- Redactor -------------------------------------------------------------------------------

def test_redact_masks_every_value_longest_first():
    r = Redactor()
    r.register("abc-Secret", "short")
    r.register("abc-Secret-and-more", "long")
    r.register("", "ignored")
    assert r.redact("x abc-Secret-and-more y abc-Secret z") == f"x {MASK} y {MASK} z"
    assert len(r) == 2 and "abc" not in repr(r)


def test_redact_masks_json_and_html_forms():
    r = Redactor()
    r.register('qu"ote\\<b>', "odd")
    assert r.redact(json.dumps({"text": 'qu"ote\\<b>'})) == json.dumps({"text": MASK})
    assert r.redact("<td>qu&quot;ote\\&lt;b&gt;</td>") == f"<td>{MASK}</td>"


def test_scan_files_finds_values_in_run_folders(tmp_path):
    r = Redactor()
    r.register("Leak-Secret-6", "aurora_admin_password")
    r.register('We"ird-Secret-7', "replication_password")
    run = tmp_path / "run"
    (run / "nb").mkdir(parents=True)
    (run / "clean.html").write_text("<p>all good</p>")
    (run / "nb" / "03_restore.ipynb").write_text(json.dumps({"outputs": ["pw We\"ird-Secret-7"]}))
    (run / "summary.json").write_text("Leak-Secret-6")
    found = r.scan_files([run])
    assert found == [(str(run / "nb" / "03_restore.ipynb"), "replication_password"),
                     (str(run / "summary.json"), "aurora_admin_password")]
    assert r.scan_files([run / "clean.html"]) == []
    assert Redactor().scan_files([run]) == []


# --- Session: passwords for connections ------------------------------------------------------

class FakeServer:
    def __init__(self, endpoint, password):
        self.endpoint, self.password, self.closed = endpoint, password, False

    def close(self):
        self.closed = True


def test_session_connects_lazily_once_with_resolved_passwords(tmp_path, monkeypatch, capsys):
    """connect() is replaced by a recorder: this checks the session's plumbing, not a database."""
    import types
    calls = []

    def connect(endpoint, password):
        calls.append(endpoint.role)
        return FakeServer(endpoint, password)

    class Endpoint:
        def __init__(self, **fields):
            self.__dict__.update(fields)

    monkeypatch.setitem(sys.modules, "runbook_lib.mysql.connection",
                        types.SimpleNamespace(connect=connect, Endpoint=Endpoint))
    monkeypatch.setenv("RUNBOOK_UNIT_SRC", "Src-Secret-8")
    monkeypatch.setenv("RUNBOOK_UNIT_AUR", "Aur-Secret-9")
    lab = yaml.safe_load(LAB.read_text())
    lab.update(source_admin_password="env:RUNBOOK_UNIT_SRC", aurora_admin_password="env:RUNBOOK_UNIT_AUR")
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(lab), encoding="utf-8")
    with open_session(path, quiet=True) as rb:
        assert calls == []
        source = rb.source()
        assert rb.source() is source and calls == ["source"]
        assert (source.endpoint.host, source.endpoint.port) == ("127.0.0.1", 23306)
        assert source.password == "Src-Secret-8"
        assert rb.aurora().password == "Aur-Secret-9" and calls == ["source", "aurora"]
        assert {"source_admin_password", "aurora_admin_password"} <= set(Redactor.default().names())
    assert source.closed
    assert rb.source() is not source and calls == ["source", "aurora", "source"]  # reopens after close
    assert "Secret" not in capsys.readouterr().out


# --- for the runner: every secret of a parameter set, and a scan for given values -------------

def test_resolve_all_resolves_every_secret_parameter(factory, moto_url, monkeypatch):
    from runbook_lib.context.params import parameters_from_mapping
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("RUNBOOK_UNIT_ALL", "All-Secret-11")
    lab = yaml.safe_load(LAB.read_text())
    lab.update(aws_endpoint_url=moto_url, source_admin_password="env:RUNBOOK_UNIT_ALL",
               aurora_admin_password="secretsmanager:unit/json#password")
    values = secrets.resolve_all(parameters_from_mapping(lab))
    assert values == {"source_admin_password": "All-Secret-11", "aurora_admin_password": "J$on-Secret-2",
                      "replication_password": "Repl-Secret-4"}


def test_scan_files_for_given_values_each_file_once(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "out.ipynb").write_text("x Given-Secret-12 x")
    paths = sorted(tmp_path.rglob("*"))  # the directory and the file, as the runner lists them
    assert Redactor.scan_files_for({"replication_password": "Given-Secret-12"}, paths) == [
        (str(tmp_path / "d" / "out.ipynb"), "replication_password")]
