"""Every user error of every command is one line, ``semprobe: error: ...``, exit code 2.

A corpus of bad invocations (values negative, zero, NaN, infinite or out of range; missing and
mistyped files; bad names) runs through the real entry point; each must exit 2 with exactly one
line on stderr that names what is wrong, no traceback and no output folder. Cheap checks come
first: a mistyped checkpoint is reported as such even where the dataset would have to be
downloaded before it.
"""

from __future__ import annotations

import doctest
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from semprobe.cli import main
from semprobe.cli import preflight as preflight_module
from semprobe.cli import values as values_module
from tests.conftest import REPO, save_tiny
from tests.test_checkpoint import write_authors_checkpoint

SYNTH = "synthetic:train=1,test=1"
Args = Callable[[Path, Path], list[str]]


def _run(tmp: Path, ckpt: Path, make: Args, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    argv = make(tmp, ckpt)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors exit from inside parse_args
        code = exc.code  # type: ignore[assignment]
    return int(code or 0), capsys.readouterr().err


def _partsdbyol(tmp: Path) -> Path:
    """An authors' checkpoint whose embedder weight is 3-D (their block-diagonal variant)."""
    ckpt = write_authors_checkpoint(tmp / "parts")
    raw = torch.load(ckpt, weights_only=True)
    raw["state_dict"]["embedder.0.weight"] = torch.randn(2, 39, 512)
    torch.save(raw, ckpt)
    return ckpt


def _out(tmp: Path) -> list[str]:
    return ["--out", str(tmp / "run"), "--cache-dir", str(tmp / "cache"), "--quiet"]


# (id, argv builder, a part of the expected message)
CORPUS: list[tuple[str, Args, str]] = [
    ("no-command", lambda t, c: [], "the following arguments are required: COMMAND"),
    ("unknown-command", lambda t, c: ["probe"], "invalid choice: 'probe'"),
    ("unknown-option", lambda t, c: ["extract", str(c), "--colour", "red"], "--colour"),
    ("extract-workers-negative", lambda t, c: ["extract", str(c), "--workers", "-1"], "--workers"),
    ("extract-batch-zero", lambda t, c: ["extract", str(c), "--batch-size", "0"], "must be >= 1"),
    ("extract-batch-text", lambda t, c: ["extract", str(c), "--batch-size", "x"], "integer"),
    (
        "extract-bad-split",
        lambda t, c: [
            "extract",
            str(c),
            "--dataset",
            SYNTH,
            "--splits",
            "val",
            "--cache-dir",
            str(t / "cache"),
            "--quiet",
        ],
        "val",
    ),
    (
        "extract-cache-is-a-file",
        lambda t, c: ["extract", str(c), "--dataset", SYNTH, "--cache-dir", str(c)],
        "is a file, not a directory",
    ),
    (
        "relevance-missing-checkpoint-before-download",
        lambda t, c: [
            "relevance",
            str(t / "typo.pt"),
            "--dataset",
            "cifar100",
            "--data-root",
            str(t / "no-data"),
            *_out(t),
        ],
        "typo.pt does not exist",
    ),
    (
        "relevance-directory-as-checkpoint",
        lambda t, c: ["relevance", str(t), "--dataset", SYNTH, *_out(t)],
        "is a directory, not a file",
    ),
    (
        "relevance-3d-embedder",
        lambda t, c: ["relevance", str(_partsdbyol(t)), "--dataset", SYNTH, *_out(t)],
        "3-D embedder",
    ),
    ("relevance-k-zero", lambda t, c: ["relevance", str(c), "--k", "0"], "--k: must be >= 1"),
    ("relevance-k-max-negative", lambda t, c: ["relevance", str(c), "--k-max", "-3"], "--k-max"),
    ("relevance-l1-negative", lambda t, c: ["relevance", str(c), "--l1", "-1"], "--l1"),
    ("relevance-l1-infinite", lambda t, c: ["relevance", str(c), "--l1", "inf"], "--l1"),
    ("relevance-l2-nan", lambda t, c: ["relevance", str(c), "--l2", "nan"], "--l2"),
    (
        "relevance-permutations-zero",
        lambda t, c: ["relevance", str(c), "--permutations", "0"],
        "--permutations",
    ),
    ("relevance-seed-negative", lambda t, c: ["relevance", str(c), "--seed", "-1"], "--seed"),
    (
        "relevance-bootstrap-zero",
        lambda t, c: ["relevance", str(c), "--bootstrap", "0"],
        "--bootstrap: must be >= 1",
    ),
    (
        "relevance-confidence-one",
        lambda t, c: ["relevance", str(c), "--dataset", SYNTH, "--confidence", "1", *_out(t)],
        "confidence must be a number in (0, 1)",
    ),
    ("knn-bootstrap-zero", lambda t, c: ["knn", str(c), "--bootstrap", "0"], "--bootstrap"),
    (
        "knn-confidence-zero",
        lambda t, c: ["knn", str(c), "--dataset", SYNTH, "--confidence", "0", *_out(t)],
        "confidence must be a number in (0, 1)",
    ),
    (
        "relevance-confidence-negative",
        lambda t, c: ["relevance", str(c), "--confidence", "-0.5"],
        "--confidence",
    ),
    ("relevance-seed-too-large", lambda t, c: ["relevance", str(c), "--seed", str(2**40)], "2**32"),
    (
        "relevance-tau-nan",
        lambda t, c: ["relevance", str(c), "--dataset", SYNTH, "--tau", "nan", *_out(t)],
        "tau must be a positive finite number, got nan",
    ),
    (
        "relevance-tau-zero",
        lambda t, c: ["relevance", str(c), "--dataset", SYNTH, "--tau", "0", *_out(t)],
        "tau must be a positive",
    ),
    (
        "relevance-wordnet-depth-zero",
        lambda t, c: [
            "relevance",
            str(c),
            "--dataset",
            SYNTH,
            "--superclasses",
            "wordnet:0",
            *_out(t),
        ],
        "depth must be an integer >= 1",
    ),
    (
        "relevance-synsets-missing",
        lambda t, c: [
            "relevance",
            str(c),
            "--dataset",
            SYNTH,
            "--synsets",
            str(t / "s.csv"),
            *_out(t),
        ],
        "synsets file",
    ),
    (
        "relevance-out-under-a-file",
        lambda t, c: ["relevance", str(c), "--dataset", SYNTH, "--out", str(c / "run")],
        "is a file",
    ),
    (
        "relevance-device",
        lambda t, c: ["relevance", str(c), "--dataset", SYNTH, "--device", "gpu0", *_out(t)],
        "device",
    ),
    (
        "relevance-dataset-size-zero",
        lambda t, c: ["relevance", str(c), "--dataset", "synthetic:train=0", *_out(t)],
        "out of range",
    ),
    (
        "entropy-tau-twice",
        lambda t, c: ["entropy", str(c), "--dataset", SYNTH, "--taus", "1", "1", *_out(t)],
        "given twice",
    ),
    (
        "entropy-tau-negative",
        lambda t, c: ["entropy", str(c), "--dataset", SYNTH, "--taus", "-1", *_out(t)],
        "tau must be a positive",
    ),
    ("tau-sweep-epochs-negative", lambda t, c: ["tau-sweep", str(c), "--epochs", "-1"], "--epochs"),
    (
        "dashboard-port-out-of-range",
        lambda t, c: ["dashboard", str(t), "--port", "70000"],
        "<= 65535",
    ),
    ("dashboard-missing-run", lambda t, c: ["dashboard", str(t / "nope")], "does not exist"),
    ("demo-epochs-zero", lambda t, c: ["demo", "--epochs", "0"], "--epochs"),
    ("demo-epochs-nan", lambda t, c: ["demo", "--epochs", "nan"], "--epochs"),
    ("demo-seed-negative", lambda t, c: ["demo", "--seed", "-2"], "--seed"),
    ("study-missing-file", lambda t, c: ["study", str(t / "none.toml")], "does not exist"),
    ("wordnet-no-action", lambda t, c: ["wordnet"], "required"),
    (
        "pretrain-workers-negative",
        lambda t, c: ["pretrain", "--dataset", SYNTH, "--workers", "-1", "--out", str(t / "p")],
        "workers",
    ),
    (
        "pretrain-epochs-zero",
        lambda t, c: ["pretrain", "--dataset", SYNTH, "--epochs", "0", "--out", str(t / "p")],
        "epochs",
    ),
    (
        "pretrain-lr-nan",
        lambda t, c: ["pretrain", "--dataset", SYNTH, "--lr", "nan", "--out", str(t / "p")],
        "lr",
    ),
    (
        "pretrain-tau-negative",
        lambda t, c: ["pretrain", "--dataset", SYNTH, "--tau-online", "-1", "--out", str(t / "p")],
        "tau_online",
    ),
    (
        "pretrain-vocab-one",
        lambda t, c: ["pretrain", "--dataset", SYNTH, "--vocab", "1", "--out", str(t / "p")],
        "--vocab: must be >= 2",
    ),
    (
        "pretrain-batch-one",
        lambda t, c: ["pretrain", "--dataset", SYNTH, "--batch-size", "1", "--out", str(t / "p")],
        "batch_size",
    ),
    (
        "pretrain-resume-missing",
        lambda t, c: [
            "pretrain",
            "--dataset",
            "cifar100",
            "--data-root",
            str(t / "no-data"),
            "--resume",
            str(t / "last.ckpt"),
            "--out",
            str(t / "p"),
        ],
        "last.ckpt does not exist",
    ),
    (
        "pretrain-config-missing",
        lambda t, c: ["pretrain", "--config", str(t / "none.toml"), "--out", str(t / "p")],
        "config file",
    ),
]


@pytest.fixture
def ckpt(tmp_path: Path) -> Path:
    return save_tiny(tmp_path / "m.pt")


def test_the_corpus_is_large() -> None:
    assert len(CORPUS) >= 20
    assert len({case_id for case_id, _, _ in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize(("make", "message"), [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS])
def test_bad_invocation_is_one_line_and_exit_2(
    tmp_path: Path, ckpt: Path, make: Args, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _run(tmp_path, ckpt, make, capsys)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("semprobe: error: "), err
    assert message in lines[0]
    assert "Traceback" not in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "p").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["relevance", "{tmp}/typo.pt", "--dataset", "cifar100", "--data-root", "{tmp}/d"],
            "typo.pt does not exist",
        ),
        (["extract", "{ckpt}", "--workers", "-1"], "argument --workers: must be >= 0, got -1"),
        (["pretrain", "--dataset", SYNTH, "--epochs", "nan"], "argument --epochs"),
    ],
)
def test_a_real_process_prints_one_line(
    tmp_path: Path, ckpt: Path, argv: list[str], message: str
) -> None:
    """The same through ``python -m semprobe``: no traceback reaches the terminal."""
    args = [a.format(tmp=tmp_path, ckpt=ckpt) for a in argv]
    proc = subprocess.run(
        [sys.executable, "-m", "semprobe", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("semprobe: error: ") and message in proc.stderr
    assert not (tmp_path / "d").exists()  # the download never started


def test_help_still_shows_the_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["relevance", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: semprobe relevance") and "--synsets FILE" in out


def test_a_checkpoint_folder_suggests_the_file_inside(tmp_path: Path, ckpt: Path) -> None:
    folder = tmp_path / "trained"
    (folder / "checkpoints").mkdir(parents=True)
    ckpt.rename(folder / "checkpoints" / "last.ckpt")
    from semprobe.errors import SemprobeError

    with pytest.raises(SemprobeError, match=r"did you mean .*checkpoints/last\.ckpt\?"):
        preflight_module.check_file(folder, "checkpoint")


def test_preflight_runs_before_the_handler(tmp_path: Path) -> None:
    """The check is made on the parsed arguments, before any handler runs."""
    import argparse

    ran = []
    args = argparse.Namespace(checkpoints=[str(tmp_path / "x.pt")], out=str(tmp_path / "o"))
    from semprobe.cli import run_handler

    assert run_handler("semprobe", lambda a: ran.append(a) or 0, args) == 2
    assert ran == []


@pytest.mark.parametrize("module", [values_module, preflight_module], ids=["values", "preflight"])
def test_docstring_examples(module: object) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)  # type: ignore[arg-type]
    assert result.attempted > 0 and result.failed == 0
