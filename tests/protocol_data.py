"""Generated image folders for the protocol tests: each class has its own mean colour."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

# Distinct mean colours, so that even a random-init backbone separates some classes.
COLOURS = [
    (230, 30, 30),
    (30, 230, 30),
    (30, 30, 230),
    (230, 230, 30),
    (30, 230, 230),
    (230, 30, 230),
]


def colour_of(name: str) -> tuple[int, int, int]:
    digits = "".join(ch for ch in name if ch.isdigit()) or "0"
    return COLOURS[int(digits) % len(COLOURS)]


def write_classes(
    folder: Path, classes: Sequence[str], per_class: int, seed: int, noise: float = 60.0
) -> None:
    """``folder/<class>/<class>_<seed>_<i>.png``: 32x32 noisy images around the class colour
    (noise large enough that a tiny random model does not separate every class)."""
    rng = np.random.default_rng(seed)
    for name in classes:
        (folder / name).mkdir(parents=True, exist_ok=True)
        # A faint class colour: a tiny random model separates some classes, not all.
        base = 128 + 0.04 * (np.array(colour_of(name), dtype=np.float64) - 128)
        for i in range(per_class):
            pixels = np.clip(base + rng.normal(0, noise, size=(32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / name / f"{name}_{seed}_{i}.png")


def image_folder(root: Path, classes: Sequence[str], train: int, test: int, seed: int = 0) -> Path:
    """An ``imagefolder:`` tree with ``train/`` and ``test/``."""
    write_classes(root / "train", classes, train, seed)
    write_classes(root / "test", classes, test, seed + 1)
    return root


def imagenet_c_tree(root: Path, classes: Sequence[str], per_class: int) -> Path:
    """``root/<corruption>/<severity>/<class>/``: two corruptions, severities 1 and 2."""
    for c, corruption in enumerate(("gaussian_noise", "fog")):
        for severity in (1, 2):
            write_classes(root / corruption / str(severity), classes, per_class, 10 * c + severity)
    return root
