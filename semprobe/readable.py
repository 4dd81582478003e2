"""``--skip-unreadable``: find the images that cannot be decoded, once, and leave them out.

Without the option an unreadable image stops extraction with a one-line error naming the file.
With it, every image of the split is decoded once before anything else reads it (the only way to
find a truncated JPEG is to decode it), the unreadable ones are recorded in the feature cache
(``scans/<hash>.json``, keyed by the folder's fingerprint, so the scan is not repeated for the
next model or run), and the split is opened without them: extraction, labels and thumbnails all
see the same images, and the cache key records what was left out.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from semprobe.atomic import ensure_writable_dir, write_json
from semprobe.errors import CacheError, SemprobeError
from semprobe.images import LabeledImages, UnreadableImage
from semprobe.locks import holding

SCAN_FORMAT = 1


class _Check(Dataset):
    """Item ``i``: ``(i, None)`` if image ``i`` decodes, else ``(i, reason)``."""

    def __init__(self, images: LabeledImages) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[int, str | None]:
        try:
            self.images.load(index)
        except UnreadableImage as exc:
            return index, exc.reason
        return index, None


def scan(images: LabeledImages, workers: int = 0, progress: bool = True) -> dict[int, str]:
    """Decode every image of ``images``; return index -> reason for those that fail."""
    loader = DataLoader(
        _Check(images), batch_size=64, num_workers=workers, collate_fn=list, shuffle=False
    )
    failed: dict[int, str] = {}
    with tqdm(
        total=len(images), desc=f"check {images.split}", unit="img", disable=not progress
    ) as bar:
        for batch in loader:
            failed.update((i, reason) for i, reason in batch if reason is not None)
            bar.update(len(batch))
    return failed


def _scan_file(cache_dir: Path, images: LabeledImages) -> Path:
    identity = json.dumps([images.key, images.split, images.fingerprint, len(images)])
    return cache_dir / "scans" / f"{hashlib.sha256(identity.encode()).hexdigest()[:24]}.json"


def _read_scan(path: Path, images: LabeledImages) -> dict[int, str] | None:
    try:
        data = json.loads(path.read_text())
        if data.get("format") != SCAN_FORMAT or data.get("fingerprint") != images.fingerprint:
            return None
        return {int(i): str(reason) for i, reason in data["unreadable"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def without_unreadable(
    images: LabeledImages,
    cache_dir: Path,
    workers: int = 0,
    progress: bool = True,
    say: Callable[[str], None] | None = print,
) -> LabeledImages:
    """``images`` without its undecodable files (scanned once per folder state; see above).

    Parameters
    ----------
    images:
        A split as :func:`~semprobe.data.open_dataset` opened it.
    cache_dir:
        The feature cache, where scans are kept.
    workers:
        DataLoader workers that decode in parallel.
    progress:
        Show a progress bar while scanning.
    say:
        Prints how many images were left out (None: silent).
    """
    if images.fingerprint is None:  # in-memory data (CIFAR, synthetic) always decodes
        return images
    try:
        ensure_writable_dir(cache_dir / "scans")
    except SemprobeError as exc:
        raise CacheError(f"feature cache: {exc}") from None
    path = _scan_file(cache_dir, images)
    with holding(path, "image scan", say):
        failed = _read_scan(path, images)
        if failed is None:
            failed = scan(images, workers, progress)
            record: dict[str, Any] = {
                "format": SCAN_FORMAT,
                "dataset": images.key,
                "split": images.split,
                "fingerprint": images.fingerprint,
                "images": len(images),
                "unreadable": {str(i): reason for i, reason in sorted(failed.items())},
                "files": {str(i): images.name_of(i) for i in sorted(failed)},
            }
            write_json(path, record)
    if failed and say is not None:
        first = min(failed)
        say(
            f"skipping {len(failed)} unreadable image{'s' if len(failed) > 1 else ''} of "
            f"{images.key} {images.split} (--skip-unreadable), e.g. {images.name_of(first)}: "
            f"{failed[first]}"
        )
    return images.without({i: f"{images.name_of(i)}: {reason}" for i, reason in failed.items()})
