"""The simplex-major copy of a run's logits: its values, its atomic write, when it is trusted,
and the dashboard reading the same numbers with it, without it and past a copy that does not
match the logits."""

from __future__ import annotations

import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from semprobe import simplex_major
from semprobe.cli import main
from semprobe.errors import SemprobeError
from semprobe.rundir import Run
from semprobe.simplex_major import (
    SIMPLEX_MAJOR_FILE,
    matches,
    run_simplex_major,
    simplex_block,
    write_simplex_major,
)
from tests.conftest import save_tiny

AppTest = pytest.importorskip("streamlit.testing.v1").AppTest

SCRIPT = str(Path(__file__).resolve().parents[1] / "app" / "dashboard.py")


def _logits(n: int = 37, num_simplices: int = 6, vocab: int = 5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, num_simplices * vocab)).astype(np.float16)


def test_the_copy_holds_each_simplex_as_one_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    z = _logits()
    # Three rows per block: the 37 rows take 13 blocks, the last one short.
    monkeypatch.setattr(simplex_major, "_BLOCK_BYTES", 3 * z.shape[1] * z.itemsize)
    path = write_simplex_major(z, 6, 5, tmp_path / SIMPLEX_MAJOR_FILE)
    copy = np.load(path)
    assert copy.dtype == np.float16 and copy.shape == (6, 37, 5)
    for s in range(6):
        np.testing.assert_array_equal(copy[s], z[:, s * 5 : (s + 1) * 5])
        block = simplex_block(z, s, 5, copy)
        assert block.dtype == np.float32 and block.flags.writeable
        np.testing.assert_array_equal(block, simplex_block(z, s, 5))
    assert matches(copy, z, 6, 5)
    assert [p.name for p in tmp_path.iterdir()] == [SIMPLEX_MAJOR_FILE]


class _FailingRows:
    """Logits whose second block of rows cannot be read (a disk error mid-write)."""

    def __init__(self, z: np.ndarray) -> None:
        self.z, self.shape, self.dtype, self.ndim = z, z.shape, z.dtype, z.ndim

    def __getitem__(self, rows: slice) -> np.ndarray:
        if rows.start:
            raise OSError(5, "Input/output error")
        return self.z[rows]


def test_a_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    z = _logits()
    monkeypatch.setattr(simplex_major, "_BLOCK_BYTES", 4 * z.shape[1] * z.itemsize)
    with pytest.raises(SemprobeError, match="Input/output error"):
        write_simplex_major(_FailingRows(z), 6, 5, tmp_path / SIMPLEX_MAJOR_FILE)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_a_copy_of_other_logits_does_not_match() -> None:
    z = _logits()
    copy = z.reshape(37, 6, 5).transpose(1, 0, 2).copy()
    assert matches(copy, z, 6, 5)
    assert not matches(copy[:, :-1], z, 6, 5)  # one image fewer
    assert not matches(copy.astype(np.float32), z, 6, 5)
    assert not matches(copy.reshape(3, 37, 10), z, 6, 5)
    for simplex, image in ((0, 0), (3, 18), (5, 36)):  # the three sampled places
        other = copy.copy()
        other[simplex, image, 2] += 1
        assert not matches(other, z, 6, 5), (simplex, image)
    with pytest.raises(SemprobeError, match="logits must be"):
        write_simplex_major(z, 7, 5, "unused.npy")
    with pytest.raises(SemprobeError, match="simplex 6 is out of range"):
        simplex_block(z, 6, 5, copy)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.test_dashboard import build_run

    return build_run(tmp_path_factory.getbasetemp())


def test_the_relevance_procedure_keeps_the_copy(run_dir: Path) -> None:
    run = Run(run_dir)
    z = np.load(run_dir / "sem" / "logits.npy")
    spec = run.model("sem").info["spec"]
    num_simplices, vocab = spec["num_simplices"], spec["vocab"]
    copy = run_simplex_major(run.model("sem"), z, num_simplices, vocab)
    assert copy is not None and Path(copy.filename).name == SIMPLEX_MAJOR_FILE
    np.testing.assert_array_equal(copy, z.reshape(len(z), num_simplices, vocab).transpose(1, 0, 2))
    assert not (run_dir / "baseline" / SIMPLEX_MAJOR_FILE).exists()  # no SEM layer, no logits


def _variant(run_dir: Path, tmp_path: Path, kind: str) -> Path:
    """The run with its copy intact, removed, or replaced by a copy of other logits."""
    out = Path(shutil.copytree(run_dir, tmp_path / kind))
    copy = out / "sem" / SIMPLEX_MAJOR_FILE
    if kind == "without":
        copy.unlink()
    elif kind == "other":
        z = np.load(out / "sem" / "logits.npy")
        model = Run(out).model("sem")
        num_simplices, vocab = model.info["spec"]["num_simplices"], model.info["spec"]["vocab"]
        write_simplex_major(2 * z, num_simplices, vocab, copy)
        assert run_simplex_major(model, z, num_simplices, vocab) is None
    return out


@pytest.mark.parametrize("kind", ["with", "without", "other"])
def test_the_dashboard_shows_the_logits_values_whatever_the_copy(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    from tests.test_dashboard import entropy_numpy, probs_numpy

    run = _variant(run_dir, tmp_path, kind)
    monkeypatch.setenv("SEMPROBE_RUNS", str(run))
    simplex, tau = 3, 0.2
    at = AppTest.from_file(SCRIPT, default_timeout=60)
    at.query_params["view"] = "Simplices"
    at.query_params["simplex"] = str(simplex)
    at.query_params["tau"] = str(tau)
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.exception]
    shown = float(next(m.value for m in at.metric if m.label == "Mean entropy H (nats)"))
    assert shown == pytest.approx(entropy_numpy(run, simplex, tau).mean(), abs=6e-5)
    probs = probs_numpy(run, simplex, tau)
    vertices = [h.value for h in at.get("html") if h.value.startswith('<div class="sp-vertex">')]
    assert len(vertices) == probs.shape[1]
    for v, fragment in enumerate(vertices):  # each vertex's most activated images, in order
        shown = [int(i) for i in re.findall(r'title="test image (\d+):', fragment)]
        assert probs[shown, v] == pytest.approx(np.sort(probs[:, v])[::-1][:8], abs=1e-5)


def test_no_simplex_copy_leaves_it_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = save_tiny(tmp_path / "m.pt")
    out = tmp_path / "run"
    argv = ["relevance", str(checkpoint), "--dataset", "synthetic:train=2,test=1"]
    argv += ["--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--quiet"]
    argv += ["--k", "2", "--k-max", "3", "--epochs", "5", "--permutations", "10", "--no-concepts"]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*did not converge.*")  # five probe epochs
        assert main([*argv, "--no-simplex-copy"]) == 0, capsys.readouterr().err
    assert (out / "m" / "logits.npy").is_file()
    assert not (out / "m" / SIMPLEX_MAJOR_FILE).exists()
    summary = (out / "m" / "relevance" / "summary.json").read_text()
    assert '"simplex_copy": false' in summary


def test_the_benchmark_times_clones_with_and_without_the_copy(tmp_path: Path) -> None:
    """``bench.dashboard``'s baseline: hard-linked clones of one run (the same files, no extra
    disk), alternating which goes first, the copies only where asked for."""
    from bench.dashboard import first_paints, paired_clones, synthetic_run

    run = synthetic_run(tmp_path / "run", per_class=1, num_simplices=4, vocab=3, permutations=5)
    assert (run / "sem" / SIMPLEX_MAJOR_FILE).is_file()
    clones = paired_clones(run, "t", rounds=3)
    assert [kind for kind, _ in clones] == ["strided", "copy", "copy", "strided", "strided", "copy"]
    logits_inode = (run / "sem" / "logits.npy").stat().st_ino
    for kind, folder in clones:
        assert (folder / "sem" / "logits.npy").stat().st_ino == logits_inode
        assert (folder / "sem" / SIMPLEX_MAJOR_FILE).exists() == (kind == "copy")
        assert Run(folder).model("sem").logits() is not None
    times = [(kind, float(i)) for i, (kind, _) in enumerate(clones)]  # 0, 1, 2, 3, 4, 5
    result = first_paints(times, "p")
    assert (result["p_s"], result["p_strided_s"]) == (2.0, 3.0)  # medians of 1,2,5 and 0,3,4
    assert result["p_ratio"] == pytest.approx(2 / 3, abs=1e-3)
