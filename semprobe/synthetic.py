"""``synthetic``: a procedurally generated, hierarchical image dataset built into the package.

It exists so that the whole pipeline runs offline and in seconds: 20 superclasses x 5 classes of
32x32 RGB images with a planted hierarchy that a self-supervised model can discover.

The classes are defined by cues that survive the BYOL and MoCo augmentations (random resized
crops down to 8 % of the image, flips, colour jitter, grayscale, solarisation), and the cues
those augmentations remove vary within every class, so that training has something to learn
that a random network does not already separate:

* one large object per image, whose **superclass** is its silhouette (disk, square, triangle,
  diamond, cross) times its fill (solid, outline, stripes, checks): 20 superclasses. Silhouette
  and fill are visible in any large crop and in every part of the object (edges, corners and
  fill pattern are local);
* the **class** within a superclass is the object's part structure: plain, a hole in the middle,
  a notch at the top, a vertical slot, or two holes side by side. The five classes of a
  superclass share its silhouette and fill, so features that respond to those are predictive of
  exactly one superclass;
* every part is symmetric under the horizontal flips of the augmentations;
* nuisances, the same distribution in every class: the colours (one of four
  light-on-dark / dark-on-light palettes with a random tint, so shape always has luminance
  contrast, as under grayscale), brightness, a faint background texture (none, horizontal or
  diagonal waves, random phase), the object's position (+-2.5 px) and size (+-11 %), the phase of
  its fill pattern and pixel noise.

Every image is a pure function of (seed, split, index).
"""

from __future__ import annotations

import numpy as np

SILHOUETTES = ("disk", "square", "triangle", "diamond", "cross")
FILLS = ("solid", "outline", "stripes", "checks")
PARTS = ("plain", "hole", "notch", "slot", "twoholes")
IMAGE_SIZE = 32

# (background, foreground) RGB in [0, 1], shared by every class.
_PALETTES = np.array(
    [
        ((0.15, 0.15, 0.18), (0.85, 0.85, 0.80)),
        ((0.80, 0.82, 0.85), (0.20, 0.18, 0.15)),
        ((0.20, 0.25, 0.40), (0.90, 0.80, 0.55)),
        ((0.85, 0.75, 0.55), (0.25, 0.20, 0.35)),
    ],
    dtype=np.float32,
)


def superclass_names() -> list[str]:
    """The 20 superclass names ``<fill>_<silhouette>``, e.g. ``stripes_disk``."""
    return [f"{fill}_{sil}" for fill in FILLS for sil in SILHOUETTES]


def class_names() -> list[str]:
    """The 100 class names ``<superclass>_<part>``, grouped by superclass."""
    return [f"{sup}_{part}" for sup in superclass_names() for part in PARTS]


def superclass_of() -> dict[str, str]:
    """Class name -> superclass name: the planted grouping."""
    return {f"{sup}_{part}": sup for sup in superclass_names() for part in PARTS}


def _silhouette(sil: str, dy: np.ndarray, dx: np.ndarray, r: np.ndarray) -> np.ndarray:
    if sil == "disk":
        return dy**2 + dx**2 <= r**2
    if sil == "square":
        return (np.abs(dy) <= r * 0.85) & (np.abs(dx) <= r * 0.85)
    if sil == "triangle":
        return (dy <= r * 0.8) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.6)
    if sil == "diamond":
        return np.abs(dy) + np.abs(dx) <= r * 1.1
    arm = r * 0.4  # cross
    return ((np.abs(dy) <= arm) & (np.abs(dx) <= r)) | ((np.abs(dx) <= arm) & (np.abs(dy) <= r))


def _filled(fill: str, sil: str, dy, dx, r, phase) -> np.ndarray:
    outer = _silhouette(sil, dy, dx, r)
    if fill == "solid":
        return outer
    if fill == "outline":
        return outer & ~_silhouette(sil, dy, dx, r * 0.6)
    if fill == "stripes":
        return outer & (np.sin(dy * (2 * np.pi / 4.0) + phase) > -0.2)
    checks = np.sin(dy * (2 * np.pi / 5.0) + phase) * np.sin(dx * (2 * np.pi / 5.0) + phase)
    return outer & (checks > -0.2)


def _with_part(part: str, mask: np.ndarray, dy, dx, r) -> np.ndarray:
    def hole(y: float, x: float, size: float) -> np.ndarray:
        return (dy - y * r) ** 2 + (dx - x * r) ** 2 <= (size * r) ** 2

    if part == "plain":
        return mask
    if part == "hole":
        return mask & ~hole(0.0, 0.0, 0.3)
    if part == "notch":
        return mask & ~((dy <= -r * 0.35) & (np.abs(dx) <= r * 0.22))
    if part == "slot":
        return mask & ~(np.abs(dx) <= np.maximum(0.9, 0.12 * r))
    return mask & ~hole(0.0, -0.42, 0.2) & ~hole(0.0, 0.42, 0.2)  # two holes


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

    Examples
    --------
    >>> images = generate(np.array([0, 99]), seed=0)
    >>> images.shape, images.dtype.name
    ((2, 32, 32, 3), 'uint8')
    >>> bool((generate(np.array([0, 99]), seed=0) == images).all())
    True
    """
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float32)
    yy, xx = yy[None], xx[None]
    palette = _PALETTES[rng.integers(0, len(_PALETTES), size=n)]
    tint = rng.normal(0.0, 0.05, size=(n, 1, 3)).astype(np.float32)
    colours = palette + tint  # (n, 2, 3): background, foreground
    cy = rng.uniform(13.5, 18.5, size=(n, 1, 1)).astype(np.float32)
    cx = rng.uniform(13.5, 18.5, size=(n, 1, 1)).astype(np.float32)
    radius = rng.uniform(10.0, 12.5, size=(n, 1, 1)).astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1, 1)).astype(np.float32)
    texture_kind = rng.integers(0, 3, size=(n, 1, 1))
    brightness = rng.uniform(0.85, 1.15, size=(n, 1, 1, 1)).astype(np.float32)
    noise = rng.normal(0.0, 0.05, size=(n, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.float32)

    wave = 2 * np.pi * 3 / IMAGE_SIZE
    texture = np.where(
        texture_kind == 0,
        0.0,
        np.where(
            texture_kind == 1, np.sin(wave * yy + phase), np.sin(wave * (xx + yy) / 1.4 + phase)
        ),
    ).astype(np.float32)
    images = colours[:, None, None, 0, :] + 0.06 * texture[..., None]
    for index, name in enumerate(class_names()):
        sel = np.flatnonzero(labels == index)
        if sel.size == 0:
            continue
        fill, sil, part = name.split("_")
        dy, dx, r = yy - cy[sel], xx - cx[sel], radius[sel]
        mask = _with_part(part, _filled(fill, sil, dy, dx, r, phase[sel]), dy, dx, r)
        foreground = colours[sel][:, None, None, 1, :]
        images[sel] = np.where(mask[..., None], foreground, images[sel])
    images = np.clip(images * brightness + noise, 0.0, 1.0)
    return (images * 255 + 0.5).astype(np.uint8)


def make_split(split: str, per_class: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of one split, ``per_class`` images of each of the 100 classes.

    Train and test use different nuisance seeds, so no image appears in both.

    Examples
    --------
    >>> images, labels = make_split("test", 2)
    >>> images.shape, labels[:4].tolist()
    ((200, 32, 32, 3), [0, 0, 1, 1])
    """
    labels = np.repeat(np.arange(len(class_names())), per_class)
    split_seed = seed * 2 + (0 if split == "train" else 1)
    return generate(labels, split_seed), labels
