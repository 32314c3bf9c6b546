"""JupyterLab in a real browser (headless Chromium) on the 'bidir' lab (two servers replicating both ways,
shared with the consistency, heartbeat and watch modules): notebook 06_validation is run with nothing
approved; its heartbeat-table step shows an Apply button and the live view refreshes in place; a click
on Apply creates the table, which the test then finds on both servers; Run All again then reaches the
data comparison, whose progress line is one line updated in place.

JupyterLab serves a copy of the notebook (its autosave never touches notebooks/), on the port of the
``browser`` row of tests/support.py, with a token, configuration and workspaces of its own; the kernel
finds the lab's parameters through ``$RUNBOOK_PARAMS``.  Screenshots in the test's tmp directory:
``jupyterlab-live-view.png`` (the live view while it runs), ``jupyterlab-applied.png`` and
``jupyterlab-compared.png`` (the comparison's progress line and table).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from runbook_lib.run.kernel import NAME as KERNEL
from runbook_lib.run.runner import NOTEBOOKS
from tests.support import bidir_lab, params_variant, port_base, query, settle, wait_for

pytestmark = [pytest.mark.lab, pytest.mark.slow]

NOTEBOOK = "06_validation.ipynb"
TIMEOUT_MS = 90_000
SETTINGS = {"@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False}}
KERNEL_IDLE = """() => { const w = window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.name === 'aurora-fallback-runbook' && k.status === 'idle'; }"""


@pytest.fixture(scope="module")
def two_way(request):
    return bidir_lab(request)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def jupyterlab(two_way, tmp_path_factory):
    """(URL of the notebook, with its token); the server and its kernels are stopped afterwards."""
    home = tmp_path_factory.mktemp("jupyterlab")
    (home / "notebooks").mkdir()
    shutil.copy(NOTEBOOKS / NOTEBOOK, home / "notebooks" / NOTEBOOK)
    params = params_variant(two_way.params_file(home / "lab.yaml"), approvals=[])
    for plugin, values in SETTINGS.items():          # a fresh user's JupyterLab, minus its first-run questions
        path = home / "settings" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    port, token = port_base("browser"), secrets.token_hex(16)
    env = {**os.environ, "RUNBOOK_PARAMS": str(params), "JUPYTER_CONFIG_DIR": str(home / "config"),
           "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"), "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
           "JUPYTER_RUNTIME_DIR": str(home / "runtime")}
    log = (home / "jupyterlab.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--port-retries=0",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={home / 'notebooks'}",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.news_url=None",
         "--LabApp.extension_manager=readonly", "--LabApp.expose_app_in_browser=True", *(["--allow-root"] if os.geteuid() == 0 else [])],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        def up() -> bool:
            assert server.poll() is None, "JupyterLab exited: " + (home / "jupyterlab.log").read_text()[-2000:]
            return _answers(f"http://127.0.0.1:{port}/api/status?token={token}")
        wait_for("JupyterLab to answer", up, 60, 0.3, detail=lambda: (home / "jupyterlab.log").read_text()[-2000:])
        # the notebook's kernel, started the way JupyterLab does when a person opens it and picks the kernel
        # (the page then attaches to it without asking which kernel)
        session = {"path": NOTEBOOK, "name": NOTEBOOK, "type": "notebook", "kernel": {"name": KERNEL}}
        urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{port}/api/sessions?token={token}", data=json.dumps(session).encode(), method="POST",
            headers={"Content-Type": "application/json"}), timeout=60).close()
        yield f"http://127.0.0.1:{port}/lab/tree/{NOTEBOOK}?token={token}"
    finally:
        server.send_signal(signal.SIGTERM)           # JupyterLab shuts its kernels down, then exits
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(5)
        log.close()


def heartbeat_table_on(server) -> bool:
    return bool(query(server, "SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'runbook' "
                              "AND TABLE_NAME = 'heartbeat'")[0]["n"])


def test_run_all_shows_the_live_view_and_the_apply_button_creates_the_heartbeat_table(two_way, jupyterlab, browser,
                                                                                        tmp_path):
    onprem, aurora = two_way.instances["onprem"], two_way.instances["aurora"]
    query(onprem, "DROP TABLE IF EXISTS runbook.heartbeat")       # the step has something to do
    settle(two_way.instances)
    assert not heartbeat_table_on(onprem) and not heartbeat_table_on(aurora)

    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        run_the_notebook(page, jupyterlab, tmp_path, onprem, aurora)
    except Exception:
        page.screenshot(path=tmp_path / "jupyterlab-failed.png", full_page=True)
        raise
    finally:
        page.close()


def run_the_notebook(page, url, tmp_path, onprem, aurora) -> None:
    page.goto(url)
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for()
    page.wait_for_function(KERNEL_IDLE, timeout=TIMEOUT_MS)                          # the kernel is up
    # menu Run > Run All Cells (not awaited: its promise ends with the run)
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")

    # not approved: the plan, the SKIPPED line and the Apply button; the run goes on to the live view
    apply = page.locator("button", has_text="Apply replication")
    apply.wait_for()
    assert page.get_by_text("SKIPPED: step 'replication' not approved").count() == 1
    live = page.locator("div.runbook-watch[data-t]")
    live.wait_for()
    first_t = float(live.get_attribute("data-t"))
    wait_for("the live view to refresh", lambda: float(live.get_attribute("data-t")) >= first_t + 1, 10, 0.1)
    assert page.locator("div.runbook-watch").count() == 1                # updated in place, not appended
    live.scroll_into_view_if_needed()
    page.screenshot(path=tmp_path / "jupyterlab-live-view.png")
    panel = live.inner_text()
    assert "source → aurora" in panel and "aurora → source" in panel and "IO thread" in panel
    assert "no heartbeat table" in panel                                  # the step was skipped
    # the run stops at the lag cell, which needs the table: the kernel is idle again
    page.locator(".jp-OutputArea-output", has_text="NotApplied").first.wait_for()
    page.wait_for_function(KERNEL_IDLE, timeout=TIMEOUT_MS)
    assert not heartbeat_table_on(onprem)

    started = time.monotonic()
    apply.click()
    page.locator("button", has_text="Applied replication").wait_for()
    assert page.get_by_text("APPLIED: step 'replication'").count() == 1
    page.locator("button", has_text="Applied replication").scroll_into_view_if_needed()
    page.screenshot(path=tmp_path / "jupyterlab-applied.png")
    print(f"Apply took {time.monotonic() - started:.1f} s in the browser")
    assert heartbeat_table_on(onprem)                                     # created on the source
    wait_for("the table to reach aurora", lambda: heartbeat_table_on(aurora), 10)

    # with the table there, Run All goes on to the recorded data comparison and its progress line
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    compared = page.locator(".jp-Cell", has=page.locator(".jp-OutputArea-output",
                                                         has_text="recorded in runbook.consistency_run"))
    compared.wait_for()
    compared.scroll_into_view_if_needed()
    page.screenshot(path=tmp_path / "jupyterlab-compared.png")
    text = compared.inner_text()
    assert text.count("consistency:") == 1 and "100%" in text and "rows/s" in text, text   # refreshed in place
    page.wait_for_function(KERNEL_IDLE, timeout=TIMEOUT_MS)
