"""``synthetic``: a procedurally generated, hierarchical image dataset built into the package.

It exists so that the whole pipeline runs offline and in seconds: 20 superclasses x 5 classes of
32x32 RGB images with a planted hierarchy that a self-supervised model can discover.

How the hierarchy is planted
----------------------------
* The **superclass** sets the background texture: one of five pattern families (horizontal
  stripes, vertical stripes, checkerboard, dots, crossed hatching) x two spatial frequencies x
  two colour palettes (warm, cool) = 20 superclasses. All five families are invariant to the
  horizontal flips used as augmentation, so pretraining cannot confuse two superclasses that way.
* The **class** within a superclass sets the object drawn over the texture: disk, square,
  triangle, cross or ring. Shapes are shared across superclasses, so a class is identified only by
  the (texture, shape) pair, while the five classes of a superclass share their texture: features
  that respond to the texture are predictive of exactly one superclass.
* Nuisances: random phase of the texture, object position (+-5 px), size (+-25 %), brightness,
  and pixel noise; every image is a pure function of (seed, split, index).
"""

from __future__ import annotations

import numpy as np

PATTERNS = ("hstripes", "vstripes", "checker", "dots", "hatch")
FREQUENCIES = ("coarse", "fine")
PALETTES = ("warm", "cool")
SHAPES = ("disk", "square", "triangle", "cross", "ring")
IMAGE_SIZE = 32

_PALETTE_RGB = {
    # (background, foreground) colours of the texture, RGB in [0, 1].
    "warm": (np.array([0.85, 0.55, 0.25]), np.array([0.45, 0.10, 0.10])),
    "cool": (np.array([0.30, 0.60, 0.85]), np.array([0.10, 0.20, 0.40])),
}
_CYCLES = {"coarse": 3.0, "fine": 6.0}  # texture periods across the 32-pixel image


def superclass_names() -> list[str]:
    """The 20 superclass names, e.g. ``warm_coarse_hstripes``."""
    return [f"{pal}_{freq}_{pat}" for pal in PALETTES for freq in FREQUENCIES for pat in PATTERNS]


def class_names() -> list[str]:
    """The 100 class names ``<superclass>_<shape>``, grouped by superclass."""
    return [f"{sup}_{shape}" for sup in superclass_names() for shape in SHAPES]


def superclass_of() -> dict[str, str]:
    """Class name -> superclass name: the planted grouping."""
    return {f"{sup}_{shape}": sup for sup in superclass_names() for shape in SHAPES}


def _texture(pattern: str, cycles: float, phase: np.ndarray, yy: np.ndarray, xx: np.ndarray):
    """Texture intensity in [0, 1] for a batch: ``phase`` has shape (n, 1, 1)."""
    w = 2 * np.pi * cycles / IMAGE_SIZE
    if pattern == "hstripes":
        t = np.sin(w * yy + phase)
    elif pattern == "vstripes":
        t = np.sin(w * xx + phase)
    elif pattern == "checker":
        t = np.sin(w * xx + phase) * np.sin(w * yy + phase)
    elif pattern == "dots":
        t = (np.cos(w * xx + phase) + np.cos(w * yy + phase)) / 2
    else:  # hatch: two diagonals, symmetric under horizontal flip
        t = (np.sin(w * (xx + yy) / 1.4 + phase) + np.sin(w * (yy - xx) / 1.4 + phase)) / 2
    return (t > 0).astype(np.float32) * 0.8 + 0.1 + 0.1 * t.astype(np.float32)


def _shape_mask(shape: str, cy: np.ndarray, cx: np.ndarray, r: np.ndarray, yy, xx) -> np.ndarray:
    dy, dx = yy - cy, xx - cx
    if shape == "disk":
        return dy**2 + dx**2 <= r**2
    if shape == "square":
        return (np.abs(dy) <= r * 0.85) & (np.abs(dx) <= r * 0.85)
    if shape == "triangle":
        return (dy <= r * 0.8) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.6)
    if shape == "cross":
        arm = r * 0.35
        return ((np.abs(dy) <= arm) & (np.abs(dx) <= r)) | ((np.abs(dx) <= arm) & (np.abs(dy) <= r))
    dist2 = dy**2 + dx**2  # ring
    return (dist2 <= r**2) & (dist2 >= (0.55 * r) ** 2)


def generate(labels: np.ndarray, seed: int) -> np.ndarray:
    """Render images for the given class labels.

    Parameters
    ----------
    labels:
        Class indices in ``[0, 100)`` (ordering of :func:`class_names`).
    seed:
        Seed of the nuisance variables; the same (labels, seed) always gives the same images.

    Returns
    -------
    np.ndarray
        ``uint8`` array of shape ``(n, 32, 32, 3)``.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float32)
    yy, xx = yy[None], xx[None]
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1, 1)).astype(np.float32)
    cy = rng.uniform(11, 21, size=(n, 1, 1)).astype(np.float32)
    cx = rng.uniform(11, 21, size=(n, 1, 1)).astype(np.float32)
    radius = rng.uniform(6.0, 10.0, size=(n, 1, 1)).astype(np.float32)
    brightness = rng.uniform(0.8, 1.2, size=(n, 1, 1, 1)).astype(np.float32)
    noise = rng.normal(0.0, 0.06, size=(n, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.float32)

    images = np.empty((n, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.float32)
    names = superclass_names()
    for sup_index, sup in enumerate(names):
        palette, freq, pattern = sup.split("_")
        bg, fg = _PALETTE_RGB[palette]
        for shape_index, shape in enumerate(SHAPES):
            sel = np.flatnonzero(labels == sup_index * len(SHAPES) + shape_index)
            if sel.size == 0:
                continue
            tex = _texture(pattern, _CYCLES[freq], phase[sel], yy, xx)[..., None]
            img = bg * (1 - tex) + fg * tex
            mask = _shape_mask(shape, cy[sel], cx[sel], radius[sel], yy, xx)[..., None]
            img = np.where(mask, np.float32(0.95), img)
            images[sel] = img
    images = np.clip(images * brightness + noise, 0.0, 1.0)
    return (images * 255 + 0.5).astype(np.uint8)


def make_split(split: str, per_class: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of one split, ``per_class`` images of each of the 100 classes.

    Train and test use different nuisance seeds, so no image appears in both.
    """
    labels = np.repeat(np.arange(len(class_names())), per_class)
    split_seed = seed * 2 + (0 if split == "train" else 1)
    return generate(labels, split_seed), labels
