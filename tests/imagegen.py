"""Generated image folders for the tests: ImageNet layouts with images of mixed sizes and modes.

Nothing is downloaded: every image is random noise over a colour gradient (so that resizing and
cropping change the pixels), written in the format its mode needs (JPEG for RGB, L and CMYK;
PNG for the rest).
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

WNIDS = ("n01440764", "n01443537", "n02119789")
SIZES = ((500, 375), (375, 500), (640, 427), (300, 300), (333, 250), (260, 347))
MODES = ("RGB", "L", "CMYK", "RGBA", "P", "P-transparent", "LA", "I;16")


def pixels(size: tuple[int, int], seed: int) -> np.ndarray:
    """``(H, W, 3)`` uint8: a seeded gradient with noise."""
    width, height = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx / width, yy / height, (xx + yy) / (width + height)], axis=-1) * 200
    return np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)


def write_image(folder: Path, stem: str, size: tuple[int, int], mode: str, seed: int) -> Path:
    """One image of ``size`` in ``mode``; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = Image.fromarray(pixels(size, seed))
    if mode in ("RGB", "L", "CMYK"):
        path = folder / f"{stem}.JPEG"
        rgb.convert(mode).save(path, quality=90)
        return path
    path = folder / f"{stem}.png"
    if mode == "RGBA":
        image = rgb.copy()
        image.putalpha(Image.fromarray(pixels(size, seed + 1)[..., 0]))
    elif mode == "P":
        image = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    elif mode == "P-transparent":
        image = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
        image.info["transparency"] = 0
        image.save(path, transparency=0)
        return path
    elif mode == "LA":
        image = rgb.convert("LA")
    else:  # I;16: 16-bit grayscale
        image = Image.fromarray(pixels(size, seed)[..., 0].astype(np.uint16) * 257)
    image.save(path)
    return path


def class_images(folder: Path, count: int, seed: int) -> list[Path]:
    """``count`` images of varied sizes and modes in ``folder``."""
    return [
        write_image(
            folder,
            f"img_{seed}_{i}",
            SIZES[(seed + i) % len(SIZES)],
            MODES[(seed + i) % len(MODES)],
            1000 * seed + i,
        )
        for i in range(count)
    ]


def truncate(path: Path) -> Path:
    """Cut ``path`` to half its bytes: a download that stopped midway."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _devkit(root: Path, numbers_to_wnid: dict[int, str], tar: bool) -> None:
    import scipy.io

    fields = ("ILSVRC2012_ID", "WNID", "words", "gloss", "num_children", "wordnet_height")
    synsets = np.zeros(len(WNIDS) + 1, dtype=[(f, "O") for f in fields])
    for i, wnid in enumerate(WNIDS):
        synsets[i] = (i + 1, wnid, f"class {i}", "", 0, 0)
    synsets[len(WNIDS)] = (1001, "n00001740", "entity", "", 3, 8)  # an inner node: not a class
    data = root / "ILSVRC2012_devkit_t12" / "data"
    data.mkdir(parents=True)
    scipy.io.savemat(data / "meta.mat", {"synsets": synsets})
    ids = {wnid: i + 1 for i, wnid in enumerate(WNIDS)}
    lines = [str(ids[numbers_to_wnid[n]]) for n in sorted(numbers_to_wnid)]
    (data / "ILSVRC2012_validation_ground_truth.txt").write_text("\n".join(lines) + "\n")
    if tar:
        with tarfile.open(root / "ILSVRC2012_devkit_t12.tar.gz", "w:gz") as archive:
            archive.add(root / "ILSVRC2012_devkit_t12", arcname="ILSVRC2012_devkit_t12")
        import shutil

        shutil.rmtree(root / "ILSVRC2012_devkit_t12")


def imagenet_tree(
    root: Path, per_class: int = 2, val: str = "folders", val_per_class: int = 1
) -> dict[str, list[tuple[Path, str]]]:
    """An ImageNet-style tree; ``val`` is ``folders``, ``kaggle``, ``devkit`` or ``devkit-tar``.

    Returns ``split -> [(path, wnid)]`` in the order a sorted listing gives.
    """
    files: dict[str, list[tuple[Path, str]]] = {"train": [], "val": []}
    for c, wnid in enumerate(WNIDS):
        for path in class_images(root / "train" / wnid, per_class, seed=c):
            files["train"].append((path, wnid))
    number, truth = 1, {}
    for c, wnid in enumerate(WNIDS):
        for i in range(val_per_class):
            size = SIZES[(c + i + 3) % len(SIZES)]
            mode = ("RGB", "L", "CMYK")[(c + i) % 3]
            if val == "folders":
                path = write_image(root / "val" / wnid, f"val_{c}_{i}", size, mode, 50 + number)
            else:
                stem = f"ILSVRC2012_val_{number:08d}"
                path = write_image(root / "val", stem, size, mode, 50 + number)
            files["val"].append((path, wnid))
            truth[number] = wnid
            number += 1
    if val == "kaggle":
        rows = [f"ILSVRC2012_val_{n:08d},{w} 10 20 200 180 {w} 5 5 50 50" for n, w in truth.items()]
        (root / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "\n".join(rows))
    elif val.startswith("devkit"):
        _devkit(root, truth, tar=val == "devkit-tar")
    files["val"].sort(
        key=lambda item: (item[1], str(item[0])) if val == "folders" else str(item[0])
    )
    return files
