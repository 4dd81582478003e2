"""``semprobe report``: one offline HTML page of a run, its values, its errors, and Chromium."""

from __future__ import annotations

import contextlib
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from semprobe.app.screenshots import chromium, missing_browser
from semprobe.cli import main

SECTIONS = (
    "run",
    "models",
    "relevance",
    "model-sem",
    "model-sem-information",
    "model-sem-entropy",
    "model-sem-concepts",
    "model-baseline",
)


class _Tables(HTMLParser):
    """The page's tables as lists of rows of cell texts (the standard library: no lxml here)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def read_tables(text: str) -> list[pd.DataFrame]:
    parser = _Tables()
    parser.feed(text)
    frames = []
    for rows in parser.tables:
        frame = pd.DataFrame(rows[1:], columns=rows[0])
        for column in frame.columns:
            with contextlib.suppress(ValueError, TypeError):
                frame[column] = pd.to_numeric(frame[column])
        frames.append(frame)
    return frames


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the dashboard tests' run (the report keeps the MI table in it)."""
    from tests.test_dashboard import build_run

    source = build_run(tmp_path_factory.getbasetemp())
    return Path(shutil.copytree(source, tmp_path_factory.mktemp("report") / "run"))


@pytest.fixture(scope="module")
def report(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report-out") / "report.html"
    assert main(["report", str(run_dir), "--out", str(out)]) == 0
    return out


def test_the_report_has_every_section_and_fetches_nothing(report: Path, run_dir: Path) -> None:
    text = report.read_text()
    ids = re.findall(r'<section id="([^"]+)"', text)
    assert sorted(ids) == sorted(SECTIONS)
    # Nothing from a server: no script or style sheet by address, no link element at all.
    tags = re.findall(r"<(?:script|img|link|iframe)\b[^>]*>", text)
    assert not [t for t in tags if re.search(r"\b(src|href)\s*=", t)], tags
    assert "<link" not in text
    assert text.count('<script type="text/javascript">') >= 1
    assert "Plotly.newPlot" in text and text.count('class="plotly-graph-div"') == 4
    assert not list(report.parent.glob(".*tmp*"))  # written atomically


def test_the_report_shows_the_run_tables(report: Path, run_dir: Path) -> None:
    tables = read_tables(report.read_text())
    kept = pd.read_csv(run_dir / "sem" / "simplex_information.csv")
    best = kept.sort_values(["mi_class_excess", "simplex"], ascending=[False, True])
    mi = [t for t in tables if "mi_class_excess" in t.columns]
    assert len(mi) == 1
    assert mi[0]["simplex"].tolist() == best["simplex"].head(20).tolist()
    assert mi[0]["mi_class"].to_numpy() == pytest.approx(best["mi_class"].head(20), rel=1e-3)
    comparison = pd.read_csv(run_dir / "comparison.csv")
    shown = [t for t in tables if "relevance_mean" in t.columns]
    assert shown and shown[0]["relevance_mean"].to_numpy() == pytest.approx(
        comparison["relevance_mean"].to_numpy(), rel=1e-3
    )
    models = next(t for t in tables if "relevance mean" in t.columns).set_index("model")
    assert models.loc["sem", "L"] == 8 and models.loc["sem", "V"] == 5


def test_bad_input_is_one_line_and_exit_2(
    run_dir: Path, tmp_path: Path, read_only_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = [
        ([str(tmp_path / "missing"), "--out", str(tmp_path / "a.html")], "does not exist"),
        ([str(tmp_path), "--out", str(tmp_path / "b.html")], "not a complete semprobe run"),
        ([str(run_dir), "--out", str(tmp_path)], "is a directory"),
        ([str(run_dir), "--out", str(tmp_path / "no" / "c.html")], "not a directory"),
        ([str(run_dir), "--out", str(read_only_dir / "d.html")], "not writable"),
    ]
    for argv, message in cases:
        assert main(["report", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("semprobe: error: ") and message in err and "\n" not in err, err
    assert not list(tmp_path.glob("*.html")) and not list(read_only_dir.iterdir())


@pytest.mark.browser
def test_the_report_renders_offline_in_chromium(report: Path) -> None:
    reason = missing_browser()
    if reason:
        pytest.skip(f"no headless browser: {reason}")
    from selenium.webdriver.common.by import By

    with chromium(1200, 900) as driver:
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd(
            "Network.emulateNetworkConditions",
            {"offline": True, "latency": 0, "downloadThroughput": 0, "uploadThroughput": 0},
        )
        driver.get(report.as_uri())
        for section in SECTIONS:
            element = driver.find_element(By.ID, section)
            assert element.find_element(By.CSS_SELECTOR, "h2, h3").text
        # plotly.js ran from the page itself and drew every figure.
        drawn = driver.execute_script(
            "return typeof Plotly !== 'undefined' && "
            "Array.from(document.querySelectorAll('.plotly-graph-div'))"
            ".map(d => d.querySelectorAll('svg.main-svg').length > 0)"
        )
        assert drawn == [True] * 4
        assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0
        traces = driver.execute_script(
            "return document.getElementById('fig-model-sem-information').data.length"
        )
        assert traces == 2  # class and superclass


def test_a_bad_run_from_a_real_process(tmp_path: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "semprobe", "report", str(tmp_path), "--out", "r.html"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "not a complete semprobe run" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "r.html").exists()
