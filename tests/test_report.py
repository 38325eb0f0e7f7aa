"""The HTML report: self-contained, escaped, and checked in headless Chromium (Debian's chromium + chromedriver).

The browser test skips when Chromium is not installed, unless ARENA_REQUIRE_BROWSER=1 (set by .ci/run, which
installs it). Its screenshot goes to test-artifacts/ (or $ARENA_TEST_ARTIFACTS).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_config

from arena_eval import Arena, load_config

PAYLOAD = "<script>alert(1)</script> and {{ 7*7 }}"
ARTIFACTS = Path(os.environ.get("ARENA_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts"))


@pytest.fixture
def report_run(tmp_path, fake_server):
    """A scored run whose question (and so every answer, which echoes it) carries HTML and template syntax."""
    server = fake_server(judge_verdict="longer")
    cfg_path = write_config(tmp_path, f"http://127.0.0.1:{server.port}/v1", n_questions=6,
                            contestants=[{"name": "base", "model": "model-base"},
                                         {"name": "longer <b>bold</b>", "model": "model-much-longer-name"},
                                         {"name": "c2", "model": "m2"}])
    with (tmp_path / "questions.jsonl").open("a") as handle:
        handle.write(json.dumps({"question_id": "xss", "category": "<i>cat</i>", "turns": [{"content": PAYLOAD}]}) + "\n")
    result = Arena(load_config(cfg_path)).run_sync()
    assert result.exit_code == 0
    return cfg_path, result


def test_report_is_written_by_run_escaped_and_offline(report_run):
    cfg_path, result = report_run
    report = result.output_dir / "report.html"
    assert report in result.files
    html = report.read_text()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "{{ 7*7 }}" in html
    assert "<b>bold</b>" not in html and "longer &lt;b&gt;bold&lt;/b&gt;" in html
    assert "&lt;i&gt;cat&lt;/i&gt;" in html
    # Self-contained: nothing is fetched (no src/href to anywhere), and a CSP forbids it anyway.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html)
    assert "default-src 'none'" in html
    assert html.count("<script>") == 1
    # Every section is there, with the data of this run.
    for section in ("leaderboard", "tradeoff", "categories", "judge", "per-question"):
        assert f'id="{section}"' in html
    assert result.run_id in html and "Position consistency" in html and "cat0" in html
    # The leaderboard files sit beside it, Parquet included.
    import pandas as pd

    parquet = pd.read_parquet(result.output_dir / "leaderboard.parquet")
    assert sorted(parquet.model) == sorted(result.leaderboard.model)


@pytest.mark.slow
def test_report_command_rebuilds_from_the_store(report_run, tmp_path):
    cfg_path, result = report_run
    target = tmp_path / "elsewhere.html"
    done = subprocess.run([sys.executable, "-m", "arena_eval.cli", "report", "-c", str(cfg_path), "--out", str(target)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    html = target.read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "longer &lt;b&gt;bold&lt;/b&gt;" in html
    # Same leaderboard numbers as the run wrote (the bootstrap is seeded).
    row = result.leaderboard.set_index("model").loc["c2"]
    assert f"{row.score:.1f}" in html


@pytest.mark.slow
def test_report_without_results_is_a_clear_error(tmp_path, fake_server):
    server = fake_server()
    cfg_path = write_config(tmp_path, f"http://127.0.0.1:{server.port}/v1")
    done = subprocess.run([sys.executable, "-m", "arena_eval.cli", "report", "-c", str(cfg_path)],
                          capture_output=True, text=True)
    assert done.returncode == 1 and "no results yet" in done.stderr


def _browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        if os.environ.get("ARENA_REQUIRE_BROWSER") == "1":
            pytest.fail("Chromium and chromedriver are required here (apt-get install chromium chromium-driver)")
        pytest.skip("Debian's chromium and chromium-driver are not installed")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1280,1600"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


@pytest.mark.slow
def test_report_in_headless_chromium(report_run):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    _, result = report_run
    browser = _browser()
    try:
        browser.get((result.output_dir / "report.html").resolve().as_uri())
        board = browser.find_element(By.ID, "leaderboard")
        assert board.is_displayed()
        rows = board.find_elements(By.CSS_SELECTOR, "tbody tr")
        assert len(rows) == 3 and "longer <b>bold</b>" in board.text  # shown as text, not as markup
        assert browser.find_element(By.ID, "question-count").text == "7 of 7 questions"  # the script ran
        # The hostile question, opened: its text and the answers echoing it are shown literally.
        question = browser.find_element(By.ID, "q-7")
        question.find_element(By.TAG_NAME, "summary").click()
        assert question.text.count(PAYLOAD) >= 3  # the question, the baseline's and a contestant's answer
        with pytest.raises(NoAlertPresentException):
            browser.switch_to.alert.text
        # The contestant filter hides the other contestants' blocks.
        Select(browser.find_element(By.ID, "contestant-filter")).select_by_value("c2")
        visible = [b.get_attribute("data-contestant") for b in question.find_elements(By.CLASS_NAME, "contestant-block")
                   if b.is_displayed()]
        assert visible == ["c2"]
        errors = [entry for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]
        assert errors == []
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "report.png"
        browser.execute_script("window.scrollTo(0, 0)")
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
        # The scatter's x-axis switches from energy to latency: one chart shown at a time.
        charts = {c.get_attribute("data-axis"): c for c in browser.find_elements(By.CLASS_NAME, "scatter")}
        assert {"wh_per_pass", "latency_p50_s", "throughput_tokens_per_s"} <= set(charts)
        Select(browser.find_element(By.ID, "scatter-axis")).select_by_value("latency_p50_s")
        assert charts["latency_p50_s"].is_displayed() and not charts["wh_per_pass"].is_displayed()
        assert "median latency per request" in charts["latency_p50_s"].text
        browser.execute_script("arguments[0].scrollIntoView()", browser.find_element(By.ID, "tradeoff"))
        shot = ARTIFACTS / "report-latency-axis.png"
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    finally:
        browser.quit()


def test_note_on_estimates_says_how_far_ecologits_runs_from_measurement_only_when_a_row_uses_it():
    from arena_eval.report import ESTIMATE_NOTE, estimate_note

    assert estimate_note([{"method": "nvml"}, {"method": None}, {"method": "codecarbon"}]) is None
    assert estimate_note([{"method": "nvml"}, {"method": "ecologits"}]) == ESTIMATE_NOTE
    assert estimate_note([{"method": "codecarbon,ecologits"}]) == ESTIMATE_NOTE
    assert "2.6× above" in ESTIMATE_NOTE and "batch size 64" in ESTIMATE_NOTE and "H100" in ESTIMATE_NOTE
