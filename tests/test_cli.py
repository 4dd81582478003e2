"""The command line: every bad input is one line on stderr, exit code 2, nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from semprobe.cli import main
from tests.conftest import save_tiny

DATASET = "synthetic:train=2,test=1"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err.strip()
    return code, err


@pytest.fixture
def ckpt(tmp_path: Path) -> Path:
    return save_tiny(tmp_path / "m.pt")


def test_missing_checkpoint_from_a_real_process(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "semprobe",
            "relevance",
            str(tmp_path / "nope.pt"),
            "--dataset",
            DATASET,
            "--out",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"semprobe: error: checkpoint {tmp_path / 'nope.pt'} does not exist"
    ]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda t, c: ["extract", str(c), "--dataset", "mnist"], "unknown dataset 'mnist'"),
        (lambda t, c: ["extract", str(c), "--dataset", f"imagefolder:{t}"], "no train or test"),
        (
            lambda t, c: [
                "extract",
                str(c),
                "--dataset",
                "cifar100",
                "--no-download",
                "--data-root",
                str(t),
            ],
            "cifar100 not found",
        ),
        (
            lambda t, c: ["relevance", str(c), "--dataset", DATASET, "--tau", "0"],
            "tau must be a positive",
        ),
        (
            lambda t, c: ["relevance", str(c), "--dataset", DATASET, "--k", "41"],
            "K = 41 is larger than the 40 features",
        ),
        (
            lambda t, c: ["relevance", str(c), "--dataset", DATASET, "--superclasses", "planets"],
            "planets",
        ),
        (
            lambda t, c: ["entropy", str(c), "--dataset", DATASET, "--taus", "-1"],
            "tau must be a positive",
        ),
        (
            lambda t, c: ["extract", str(c), "--dataset", DATASET, "--cache-dir", str(c / "sub")],
            "cannot create directory",
        ),
    ],
)
def test_bad_inputs_are_one_line_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, ckpt: Path, make_args, message: str
) -> None:
    out = tmp_path / "run"
    argv = make_args(tmp_path, ckpt)
    if argv[0] in ("relevance", "entropy"):
        argv += ["--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--quiet"]
    code, err = run_cli(capsys, *argv)
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("semprobe: error: ")
    assert message in err
    assert not out.exists()


def test_corrupt_checkpoint(capsys: pytest.CaptureFixture[str], tmp_path: Path, ckpt: Path) -> None:
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[:1000])
    code, err = run_cli(capsys, "extract", str(ckpt), "--dataset", DATASET)
    assert code == 2
    assert "truncated or not a PyTorch checkpoint" in err


def test_non_numeric_tau_is_an_argparse_error(
    capsys: pytest.CaptureFixture[str], ckpt: Path
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["entropy", str(ckpt), "--taus", "cold"])
    assert exc.value.code == 2
    assert "tau must be a number, got 'cold'" in capsys.readouterr().err


def test_classes_missing_from_superclass_csv(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, ckpt: Path
) -> None:
    csv = tmp_path / "groups.csv"
    csv.write_text("class,superclass\nsolid_disk_plain,a\n")
    code, err = run_cli(
        capsys,
        "relevance",
        str(ckpt),
        "--dataset",
        DATASET,
        "--superclasses",
        f"file:{csv}",
        "--out",
        str(tmp_path / "run"),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--quiet",
    )
    assert code == 2
    assert "solid_disk_hole" in err  # a missing class is named


def test_extract_prints_the_cache(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, ckpt: Path
) -> None:
    code = main(
        ["extract", str(ckpt), "--dataset", DATASET, "--cache-dir", str(tmp_path / "c"), "--quiet"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "train: 200 images, features 128, SEM logits 200x40" in out
    assert "test: 100 images" in out
