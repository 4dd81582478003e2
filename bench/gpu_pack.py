"""Pack an ImageFolder of small images into one file that travels with the sources, and unpack it.

A GPU machine without network gets its data with the working tree, so what travels must be small:
the real CIFAR-100 subset (``train/<class>/<id>.png``, ``test/...``, ``superclasses.csv``) is
packed as its PNG files' bytes, unchanged (no decode, no re-encode: the unpacked images are the
same files), concatenated into one ``uint8`` array with their offsets, class indices and names.
``--train-per-class`` keeps the first N training images of each class (sorted by name) to fit a
size budget (``--test-per-class`` likewise, for tests). WordNet superclasses, which need NLTK and
the WordNet corpus, are resolved here and travel as a ``class,superclass`` table, so that the
study on the other machine reads them as a ``file:`` source.

``python -m bench.gpu_pack DATA_DIR --out .gpu/cifar100-real.npz [--train-per-class N]``
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

import numpy as np

from semprobe.atomic import atomic_path

SPLITS = ("train", "test")


def pack(
    root: Path,
    out: Path,
    train_per_class: int | None = None,
    test_per_class: int | None = None,
    wordnet: bool = True,
) -> dict:
    """Pack ``root`` into ``out`` (an ``.npz``), the first N images per class of each split where
    a limit is given; return what was packed."""
    limits = {"train": train_per_class, "test": test_per_class}
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    chunks: list[bytes] = []
    offsets, labels, splits, names = [0], [], [], []
    for split_index, split in enumerate(SPLITS):
        for label, name in enumerate(classes):
            files = sorted((root / split / name).glob("*.png"))
            if limits[split] is not None:
                files = files[: limits[split]]
            for f in files:
                data = f.read_bytes()
                chunks.append(data)
                offsets.append(offsets[-1] + len(data))
                labels.append(label)
                splits.append(split_index)
                names.append(f.name)
    tables = {"superclasses.csv": (root / "superclasses.csv").read_text()}
    if wordnet:
        tables["wordnet.csv"] = _wordnet_table(classes)
    with atomic_path(out) as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh,
            png=np.frombuffer(b"".join(chunks), dtype=np.uint8),
            offsets=np.asarray(offsets, dtype=np.int64),
            labels=np.asarray(labels, dtype=np.int16),
            splits=np.asarray(splits, dtype=np.int8),
            file_names=np.asarray(names),
            class_names=np.asarray(classes),
            table_names=np.asarray(list(tables)),
            table_texts=np.asarray(list(tables.values())),
        )
    counts = np.bincount(np.asarray(splits), minlength=2)
    return {
        "images": {s: int(c) for s, c in zip(SPLITS, counts, strict=True)},
        "classes": len(classes),
        "bytes": out.stat().st_size,
        "tables": list(tables),
    }


def unpack(packed: Path, dest: Path) -> Path:
    """Write the packed folder under ``dest`` (as it was packed) and return ``dest``."""
    with np.load(packed) as z:
        png, offsets = z["png"], z["offsets"]
        classes = [str(c) for c in z["class_names"]]
        for i, (label, split, name) in enumerate(
            zip(z["labels"], z["splits"], z["file_names"], strict=True)
        ):
            folder = dest / SPLITS[int(split)] / classes[int(label)]
            folder.mkdir(parents=True, exist_ok=True)
            (folder / str(name)).write_bytes(png[offsets[i] : offsets[i + 1]].tobytes())
        for name, text in zip(z["table_names"], z["table_texts"], strict=True):
            (dest / str(name)).write_text(str(text))
    return dest


def _wordnet_table(classes: list[str]) -> str:
    """``class,superclass`` of the default WordNet grouping (needs NLTK and the corpus)."""
    from semprobe.wordnet import superclasses_from_source

    grouping = superclasses_from_source("wordnet", classes)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["class", "superclass"])
    writer.writerows((c, grouping[c]) for c in classes)
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("data", type=Path, help="ImageFolder root with train/, test/")
    parser.add_argument("--out", type=Path, required=True, help="the .npz to write")
    parser.add_argument("--train-per-class", type=int, help="keep the first N per class")
    parser.add_argument("--test-per-class", type=int, help="likewise for the test split")
    parser.add_argument("--no-wordnet", action="store_true", help="leave out wordnet.csv")
    args = parser.parse_args(argv)
    if not (args.data / "train").is_dir() or not (args.data / "superclasses.csv").is_file():
        print(f"gpu_pack: error: {args.data} has no train/ or superclasses.csv", file=sys.stderr)
        return 2
    for flag, value in (("train", args.train_per_class), ("test", args.test_per_class)):
        if value is not None and value < 1:
            print(f"gpu_pack: error: --{flag}-per-class must be at least 1", file=sys.stderr)
            return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    info = pack(args.data, args.out, args.train_per_class, args.test_per_class, not args.no_wordnet)
    print(f"packed {info['images']} images of {info['classes']} classes: {info['bytes']:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
