"""The dashboard served by ``streamlit run`` and driven in headless Chromium.

Uses the system's Chromium and chromedriver (never a downloaded driver); skipped where either is
missing. The server is always terminated, whatever happens in the test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from semprobe.app.screenshots import chromium, missing_browser, page_url, serve, wait_for_text

pytestmark = [pytest.mark.browser, pytest.mark.slow]

V, TOP = 5, 8


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reason = missing_browser()
    if reason:
        pytest.skip(f"no headless browser: {reason}")
    try:
        from tests.test_dashboard import build_run
    except ImportError:  # tests/ is not a package
        from test_dashboard import build_run  # type: ignore[no-redef]

    return build_run(tmp_path_factory.getbasetemp())


def test_simplex_browser_in_chromium(run_dir: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    with serve([str(run_dir)]) as url, chromium(1400, 1100) as driver:
        driver.get(page_url(url, "Simplices"))
        wait_for_text(driver, "Simplex 0", timeout=90)
        heading = driver.find_elements(By.XPATH, "//h2[contains(., 'Simplex 0')]")
        assert heading, "no 'Simplex 0' heading"
        images = driver.find_elements(By.CSS_SELECTOR, ".sp-vertex .sp-grid img")
        assert len(images) == V * TOP
        # Every thumbnail decoded: a 32 x 32 image shown upscaled.
        decoded = driver.execute_script(
            "return Array.from(document.querySelectorAll('.sp-grid img'))"
            ".map(i => i.complete && i.naturalWidth === 32 && i.width >= 64)"
        )
        assert all(decoded)
        assert not driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
        shot = tmp_path / "simplex-0.png"
        assert driver.save_screenshot(str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000

        # Switch the simplex the way a user does: type an index into the number input.
        field = driver.find_element(By.CSS_SELECTOR, '[data-testid="stNumberInputField"]')
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys("4", Keys.ENTER)
        wait_for_text(driver, "Simplex 4", timeout=60)
        assert driver.find_elements(By.XPATH, "//h2[contains(., 'Simplex 4')]")
        assert len(driver.find_elements(By.CSS_SELECTOR, ".sp-vertex .sp-grid img")) == V * TOP
        assert "simplex=4" in driver.current_url
        assert driver.save_screenshot(str(tmp_path / "simplex-4.png"))


def test_search_and_intervention_in_chromium(run_dir: Path) -> None:
    """A user searches by test image, then sets a simplex of that image to another vertex."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    model = f"{run_dir.name}/sem"
    with serve([str(run_dir)]) as url, chromium(1400, 1400) as driver:
        driver.get(page_url(url, "Search", model=model))
        wait_for_text(driver, "Search by", timeout=90)
        driver.find_element(By.XPATH, "//label[.//p[normalize-space()='test image']]").click()
        wait_for_text(driver, "the probe predicts", timeout=60)
        field = driver.find_element(By.CSS_SELECTOR, 'input[aria-label="Test image"]')
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys("9", Keys.ENTER)
        wait_for_text(driver, "Test image 9:", timeout=60)
        assert not driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')

        driver.get(page_url(url, "Simplices", model=model, simplex="2"))
        wait_for_text(driver, "Intervene on this simplex", timeout=90)
        field = driver.find_element(By.CSS_SELECTOR, 'input[aria-label="Test image"]')
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys("9", Keys.ENTER)
        wait_for_text(driver, "Simplex 2 of test image 9 (", timeout=60)
        assert "set to vertex 0 (one-hot)" in driver.find_element(By.TAG_NAME, "body").text
        assert not driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
        assert not driver.find_elements(By.CSS_SELECTOR, '[data-testid="stAlert"] [kind="error"]')


def test_the_docs_screenshot_script_shows_the_most_informative_simplex(
    run_dir: Path, tmp_path: Path
) -> None:
    """``scripts/docs_screenshots.sh`` (the README's images): the SEM model at the simplex that
    carries the most class information; a missing run is one line and exit 2."""
    from semprobe.rundir import Run
    from semprobe.simplex_information import run_information
    from tests.conftest import REPO

    table = run_information(Run(run_dir).model("sem"))
    best = int(table.loc[table["mi_class_excess"].idxmax(), "simplex"])
    out = tmp_path / "img"
    env = {**os.environ, "MODEL": "sem", "COMPARE": "baseline", "OUT": str(out)}
    env["VIEWS"] = "Runs Simplices Compare"
    script = ["bash", str(REPO / "scripts" / "docs_screenshots.sh")]
    env["PYTHON"] = sys.executable
    done = subprocess.run(
        [*script, str(run_dir)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert f"{run_dir.name}/sem at simplex {best}" in done.stdout
    shots = ["dashboard-compare.png", "dashboard-runs.png", "dashboard-simplex.png"]
    assert sorted(p.name for p in out.iterdir()) == shots
    for shot in out.iterdir():
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000

    missing = subprocess.run(
        [*script, str(tmp_path / "no-run")], env=env, capture_output=True, text=True, timeout=60
    )
    assert missing.returncode == 2
    assert missing.stderr.strip().count("\n") == 0 and "no run directory" in missing.stderr
