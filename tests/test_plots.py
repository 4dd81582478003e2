"""Figures: every study figure as HTML, PNG and SVG through plotly's exporter (kaleido with the
system Chromium), and a one-line note where no browser is installed."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import plotly.graph_objects as go
import pytest

from semprobe import plots
from semprobe.extraction import ExtractionOptions
from semprobe.studies import Study
from tests.conftest import save_tiny

needs_browser = pytest.mark.skipif(
    plots.static_export_problem() is not None,
    reason=f"static export unavailable here: {plots.static_export_problem()}",
)


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@needs_browser
def test_every_figure_is_written_as_html_png_and_svg(tmp_path: Path) -> None:
    figures = {
        "bars": go.Figure(go.Bar(x=[1, 2, 3], y=[3, 1, 2])),
        "line": go.Figure(go.Scatter(y=[0.1, 0.4, 0.2], mode="lines")),
    }
    assert plots.write_figures(figures, tmp_path) is None
    for name in figures:
        assert _png_size(tmp_path / f"{name}.png") == plots.FIGURE_SIZE
        svg = (tmp_path / f"{name}.svg").read_text()
        assert svg.startswith("<svg") and 'width="900"' in svg
        assert "plotly.min.js" in (tmp_path / f"{name}.html").read_text()
    # Only final names: each image was written under a hidden name and renamed.
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_without_a_browser_the_html_is_written_and_the_note_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A machine without Chrome or Chromium: no system Chromium, nothing on PATH.
    monkeypatch.setattr(plots, "SYSTEM_CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("BROWSER_PATH", raising=False)
    note = plots.write_figures({"bars": go.Figure(go.Bar(y=[1, 2]))}, tmp_path / "out")
    assert note is not None and "\n" not in note
    assert note.startswith("static figures (PNG, SVG) not written: no Chrome or Chromium found")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["bars.html", "plotly.min.js"]


@needs_browser
def test_a_study_exports_each_of_its_figures(tmp_path: Path) -> None:
    ckpt = save_tiny(tmp_path / "sem.pt")
    study = Study(
        {"sem": ckpt},
        dataset="synthetic:train=2,test=1",
        taus=[0.1, 1.0],
        analyses=["entropy"],
        options=ExtractionOptions(cache_dir=tmp_path / "cache", progress=False),
    )
    result = study.run(tmp_path / "run")
    html = sorted(p.stem for p in (tmp_path / "run").glob("*.html"))
    assert html == sorted(result.figures) and html
    for stem in html:
        assert _png_size(tmp_path / "run" / f"{stem}.png") == plots.FIGURE_SIZE
        assert (tmp_path / "run" / f"{stem}.svg").read_text().startswith("<svg")
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["parameters"]["static_figures"] == "png, svg"
