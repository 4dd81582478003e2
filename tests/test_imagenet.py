"""ImageNet layouts and any image folder, end to end: generated trees of mixed sizes and modes,
both flat validation layouts, truncated files, --skip-unreadable."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from semprobe.cli import main
from semprobe.data import open_dataset
from semprobe.errors import DatasetError
from tests.conftest import save_tiny
from tests.imagegen import WNIDS, class_images, imagenet_tree, truncate

QUIET = ["--quiet", "--batch-size", "4"]


def superclasses_csv(root: Path) -> None:
    lines = ["class,superclass", f"{WNIDS[0]},fish", f"{WNIDS[1]},fish", f"{WNIDS[2]},mammal"]
    (root / "superclasses.csv").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("layout", ["folders", "kaggle", "devkit", "devkit-tar", "kaggle-download"])
def test_every_layout_opens_the_same_images_and_labels(tmp_path: Path, layout: str) -> None:
    root = tmp_path / "imagenet"
    if layout == "kaggle-download":
        # Kaggle's download: ILSVRC/Data/CLS-LOC/{train,val}, the CSV at the top.
        files = imagenet_tree(root / "ILSVRC" / "Data" / "CLS-LOC", val="kaggle")
        shutil.move(root / "ILSVRC" / "Data" / "CLS-LOC" / "LOC_val_solution.csv", root)
    else:
        files = imagenet_tree(root, val=layout)
    for split, wanted in (("train", files["train"]), ("test", files["val"]), ("val", files["val"])):
        ds = open_dataset(f"imagenet:{root}", split)
        assert ds.class_names == list(WNIDS)
        assert [ds.name_of(i) for i in range(len(ds))] == [str(p) for p, _ in wanted]
        assert ds.labels.tolist() == [WNIDS.index(w) for _, w in wanted]
        assert ds.key == f"imagenet:{root.resolve()}" and ds.fingerprint
    assert ds.image(0).ndim == 3 and ds.image(0).shape[2] == 3


def test_flat_val_without_ground_truth_is_a_clear_error(tmp_path: Path) -> None:
    imagenet_tree(tmp_path, val="kaggle")
    (tmp_path / "LOC_val_solution.csv").unlink()
    with pytest.raises(DatasetError, match="flat folder of images but no ground truth"):
        open_dataset(f"imagenet:{tmp_path}", "test")
    shutil.rmtree(tmp_path / "val")
    with pytest.raises(DatasetError, match="has no val/ directory"):
        open_dataset(f"imagenet:{tmp_path}", "train")


def test_val_images_of_classes_absent_from_train_are_left_out_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = imagenet_tree(tmp_path, val="devkit", val_per_class=2)
    shutil.rmtree(tmp_path / "train" / WNIDS[2])  # an ImageNet-100-style train subset
    with caplog.at_level("WARNING", logger="semprobe"):
        ds = open_dataset(f"imagenet:{tmp_path}", "test")
    assert len(ds) == 4 and ds.class_names == list(WNIDS[:2])
    assert [ds.name_of(i) for i in range(4)] == [str(p) for p, w in files["val"] if w != WNIDS[2]]
    assert "2 validation images" in caplog.text and "left out (4 kept)" in caplog.text


def test_mixed_sizes_and_modes_extract(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The ImageFolder of mixed-size JPEGs that once died in torch.stack."""
    root = tmp_path / "folder"
    class_images(root / "train" / "a", 4, seed=1)
    class_images(root / "train" / "b", 4, seed=2)
    class_images(root / "test" / "a", 3, seed=3)
    class_images(root / "test" / "b", 3, seed=4)
    ckpt = save_tiny(tmp_path / "m.pt")
    cache = ["--cache-dir", str(tmp_path / "cache")]
    code = main(["extract", str(ckpt), "--dataset", f"imagefolder:{root}", *cache, *QUIET])
    out = capsys.readouterr().out
    assert code == 0
    assert "input train: resize 32 (bilinear), centre-crop 32, normalise cifar10" in out
    assert "train: 8 images, features 128, SEM logits 8x40" in out
    assert "test: 6 images" in out
    code = main(
        [
            "extract",
            str(ckpt),
            "--dataset",
            f"imagefolder:{root}",
            *cache,
            *QUIET,
            "--resize",
            "none",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "images of different sizes reach the model" in err and str(root / "train" / "a") in err


def test_truncated_image_is_one_line_naming_the_file(tmp_path: Path) -> None:
    files = imagenet_tree(tmp_path / "imagenet", val="kaggle")
    superclasses_csv(tmp_path / "imagenet")
    broken = truncate(files["train"][3][0])
    ckpt = save_tiny(tmp_path / "m.pt")
    out = tmp_path / "run"
    argv = ["relevance", str(ckpt), "--dataset", f"imagenet:{tmp_path / 'imagenet'}"]
    argv += ["--out", str(out), "--cache-dir", str(tmp_path / "cache"), *QUIET]
    proc = subprocess.run(
        [sys.executable, "-m", "semprobe", *argv],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"semprobe: error: cannot read image {broken}: image file is ")
    assert lines[0].endswith("; pass --skip-unreadable to leave unreadable images out")
    assert "cannot write feature cache" not in proc.stderr and not out.exists()
    leftovers = [p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]
    assert leftovers == []


def test_skip_unreadable_leaves_them_out_everywhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "imagenet"
    files = imagenet_tree(root, val="devkit-tar", val_per_class=2)
    superclasses_csv(root)
    broken = truncate(files["val"][1][0])
    (root / "val" / "ILSVRC2012_val_00000005.JPEG").write_bytes(b"")  # an empty file too
    ckpt = save_tiny(tmp_path / "m.pt")
    argv = ["relevance", str(ckpt), "--dataset", f"imagenet:{root}", "--skip-unreadable"]
    argv += ["--cache-dir", str(tmp_path / "cache"), *QUIET, "--k", "2", "--k-max", "3"]
    argv += ["--epochs", "5", "--permutations", "20", "--no-concepts"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "skipping 2 unreadable images of imagenet:" in out and str(broken) in out
    run = tmp_path / "run"
    summary = json.loads((run / "m" / "relevance" / "summary.json").read_text())
    assert summary["n_test"] == 4 and summary["n_train"] == 6
    assert summary["transform"].startswith("resize 32 (bilinear), centre-crop 32")
    # The run's labels and thumbnails are the kept images', row for row with the features.
    kept = [WNIDS.index(w) for i, (_, w) in enumerate(files["val"]) if i not in (1, 4)]
    assert np.load(run / "labels.npy").tolist() == kept
    assert np.load(run / "thumbnails.npy").shape == (4, 32, 32, 3)
    manifests = [json.loads(p.read_text()) for p in (tmp_path / "cache").glob("*/manifest.json")]
    test = [m for m in manifests if m["dataset"]["split"] == "test"]
    assert len(test) == 1 and len(test[0]["dataset"]["excluded"]) == 2
    assert test[0]["dataset"]["excluded"][0].startswith(f"{broken}: image file is truncated")
    assert test[0]["shapes"]["logits"] == [4, 40]
    scans = list((tmp_path / "cache" / "scans").glob("*.json"))
    stamps = {p: p.stat().st_mtime_ns for p in scans}
    assert len(scans) == 2  # one scan per split, kept for the next run
    assert main([*argv, "--out", str(tmp_path / "again")]) == 0
    assert {p: p.stat().st_mtime_ns for p in scans} == stamps  # reused, not rescanned
