"""report.html in a real browser (headless Chromium): the first screen shows the run's verdict, the key
figures and the failover plots; the page fetches nothing; printed, the summary is a page of its own.
Screenshots: ``report-first-screen.png`` and ``report-print.png`` in the test's tmp directory."""
from __future__ import annotations

from runbook_lib.run import report
from tests.browser.conftest import VIEWPORT
from tests.unit.run.test_report import SUMMARY, executed_failover_notebook


def test_the_first_screen_shows_the_verdict_the_key_figures_and_the_failover_plots(browser, tmp_path):
    notebook = tmp_path / "07_failover_test.ipynb"
    executed_failover_notebook(notebook, size=(12, 4.2))         # the plots' real size
    page_file = report.write_html(tmp_path, [notebook], SUMMARY)
    page = browser.new_page()
    browser.requests.clear()
    page.goto(page_file.as_uri())
    page.wait_for_load_state("load")
    page.screenshot(path=tmp_path / "report-first-screen.png")

    def on_first_screen(selector: str) -> dict:
        element = page.locator(selector).first
        assert element.is_visible(), selector
        box = element.bounding_box()
        assert box["y"] >= 0 and box["y"] + min(box["height"], 200) <= VIEWPORT["height"], (selector, box)
        return box

    on_first_screen(".runbook-verdict.ok")
    assert page.locator(".runbook-verdict").inner_text().startswith("Run PASSED: lab")
    on_first_screen(".runbook-key-figures")
    cells = page.locator(".runbook-key-figures tr").all_inner_texts()
    assert any(c.startswith("rows lost in the failover test (per side)") and "source: 0, aurora: 0" in c for c in cells)
    assert any(c.startswith("tables differing") and "app_crm.persona" in c for c in cells)
    assert page.locator(".runbook-key-figures tr.failed").count() == 2       # a lag over 1 s, a table differing
    plot = on_first_screen("img[alt='Failover test: rows on both sides']")
    assert plot["width"] > 600                                               # shown at a readable size
    decoded = page.eval_on_selector_all(".runbook-plot img", "imgs => imgs.map(i => i.complete && i.naturalWidth)")
    assert len(decoded) == 2 and all(w >= 1000 for w in decoded)             # both PNGs decoded
    assert [u for u in browser.requests if not u.startswith(("file:", "data:"))] == []

    page.emulate_media(media="print")
    assert page.eval_on_selector(".runbook-summary", "e => getComputedStyle(e).breakAfter") == "page"
    page.screenshot(path=tmp_path / "report-print.png")
    page.close()
