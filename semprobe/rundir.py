"""Run directories: what ``semprobe relevance``, ``semprobe study`` and the demo write, and what
the dashboard reads.

Layout (format 1)::

    RUN/
      run.json              kind, parameters, list of models (written last)
      classes.json          class names and superclass per class (test split of the dataset)
      labels.npy            test-split labels
      thumbnails.npy        test-split images, uint8 (N, 32, 32, 3), for the dashboard
      <model>/
        model.json          spec, checkpoint, format, fingerprint
        logits.npy          test-split pre-softmax SEM logits (SEM models)
        logits_by_simplex.npy
                            the same logits simplex-major, (L, N, V), for one-simplex reads
                            (semprobe.simplex_major; not with --no-simplex-copy)
        relevance/          summary.json, probe.npz, graph.graphml, category_features.csv,
                            category_neighbours.csv, curve.csv, feature_concepts.csv,
                            simplex_concepts.csv; with several superclass sources also
                            curves_by_superclasses.csv
        entropy/            an EntropyReport (Parquet)
        tau_sweep.csv       accuracy per representation
        simplex_information.csv, .json, simplex_assignments.npy
                            mutual information per simplex (semprobe.simplex_information):
                            added on first use by the dashboard or ``semprobe report``

A run is built in a temporary sibling directory and renamed into place when complete, so a killed
run never leaves a directory that opens as valid; re-running replaces the old run at once.
Readers resolve every path inside the run directory and refuse anything that leaves it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from semprobe import __version__
from semprobe.atomic import atomic_directory, remove_dead_leftovers, write_json
from semprobe.errors import SemprobeError

RUN_FORMAT = 1
RUN_FILE = "run.json"


@contextlib.contextmanager
def building_run(destination: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory to fill; on success it replaces ``destination`` at once.

    The half-built runs of killed processes (hidden ``.NAME.building-PID-*`` siblings whose
    process is gone) are removed first.
    """
    remove_dead_leftovers(Path(destination).absolute(), "building")
    with atomic_directory(destination, tag="building", what="run directory") as work:
        yield work


def write_run_metadata(
    folder: Path, kind: str, models: list[str], parameters: dict[str, Any]
) -> None:
    """Write ``run.json``: the last file of a run, naming its models."""
    write_json(
        folder / RUN_FILE,
        {
            "semprobe_run": RUN_FORMAT,
            "kind": kind,
            "created_by": f"semprobe {__version__}",
            "models": models,
            "parameters": parameters,
        },
    )


def write_dataset_files(
    folder: Path,
    class_names: list[str],
    superclass_of: dict[str, str] | None,
    labels: np.ndarray,
    thumbnails: np.ndarray,
) -> None:
    """Test-split labels, class names and thumbnails shared by every model of a run."""
    write_json(
        folder / "classes.json", {"class_names": class_names, "superclass_of": superclass_of}
    )
    np.save(folder / "labels.npy", np.asarray(labels, dtype=np.int64))
    np.save(folder / "thumbnails.npy", np.asarray(thumbnails, dtype=np.uint8))


def link_or_copy(source: Path, destination: Path) -> None:
    """Hard-link a cached array into a run (free), or copy it across file systems."""
    if destination.exists():
        return
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, destination)
    except OSError:
        shutil.copyfile(source, destination)


@dataclass
class RunModel:
    """One model of an opened run; every reader stays inside the run directory."""

    run: Run
    name: str

    @property
    def folder(self) -> Path:
        return self.run.path_of(self.name)

    @property
    def info(self) -> dict[str, Any]:
        return self.run.read_json(f"{self.name}/model.json")

    def logits(self) -> np.ndarray | None:
        path = self.run.path_of(f"{self.name}/logits.npy", must_exist=False)
        if not path.exists():
            return None
        return self.run.load_array(f"{self.name}/logits.npy")

    def table(self, relative: str) -> pd.DataFrame | None:
        """A CSV or Parquet table of this model, or None if the run did not produce it."""
        return self.run.table(f"{self.name}/{relative}")

    def relevance_summary(self) -> dict[str, Any] | None:
        path = self.run.path_of(f"{self.name}/relevance/summary.json", must_exist=False)
        return self.run.read_json(f"{self.name}/relevance/summary.json") if path.exists() else None


class Run:
    """An opened run directory (see the module docstring).

    Raises
    ------
    SemprobeError
        If the directory is missing, partial (no ``run.json``) or malformed.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.root = Path(path).resolve()
        if not self.root.is_dir():
            raise SemprobeError(f"run directory {path} does not exist")
        if not (self.root / RUN_FILE).is_file():
            raise SemprobeError(f"{path} is not a complete semprobe run (no {RUN_FILE})")
        self.meta = self.read_json(RUN_FILE)
        if self.meta.get("semprobe_run") != RUN_FORMAT or not isinstance(
            self.meta.get("models"), list
        ):
            raise SemprobeError(f"{path}/{RUN_FILE} is not a semprobe run description")
        classes = self.read_json("classes.json")
        self.class_names: list[str] = list(classes.get("class_names") or [])
        self.superclass_of: dict[str, str] | None = classes.get("superclass_of")
        self.models = [RunModel(self, str(name)) for name in self.meta["models"]]

    @property
    def name(self) -> str:
        return self.root.name

    def path_of(self, relative: str, must_exist: bool = True) -> Path:
        """Resolve ``relative`` inside the run; refuse paths that leave it."""
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root):
            raise SemprobeError(f"refusing to read {relative}: it is outside the run {self.root}")
        if must_exist and not path.exists():
            raise SemprobeError(f"run {self.root} has no {relative}")
        return path

    def read_json(self, relative: str) -> dict[str, Any]:
        path = self.path_of(relative)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SemprobeError(f"cannot read {path}: {exc}") from None
        if not isinstance(data, dict):
            raise SemprobeError(f"{path} does not hold a JSON object")
        return data

    def load_array(self, relative: str) -> np.ndarray:
        path = self.path_of(relative)
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise SemprobeError(f"cannot read {path}: {exc}") from None

    def table(self, relative: str) -> pd.DataFrame | None:
        """A CSV or Parquet table of the run, or None if the run did not produce it."""
        path = self.path_of(relative, must_exist=False)
        if not path.exists():
            return None
        try:
            return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        except Exception as exc:  # any parser error means a damaged file
            raise SemprobeError(f"cannot read {path}: {exc}") from None

    def labels(self) -> np.ndarray:
        return np.asarray(self.load_array("labels.npy"))

    def thumbnails(self) -> np.ndarray:
        return self.load_array("thumbnails.npy")

    def model(self, name: str) -> RunModel:
        for model in self.models:
            if model.name == name:
                return model
        raise SemprobeError(f"run {self.root} has no model {name!r}")


def model_name(checkpoint: str | Path, taken: set[str]) -> str:
    """A directory-safe, unique name for a model, from its file name."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(checkpoint).stem) or "model"
    name, i = base, 2
    while name in taken:
        name, i = f"{base}-{i}", i + 1
    taken.add(name)
    return name


def thumbnails(dataset: Any, size: int = 32) -> np.ndarray:
    """The dataset's images as uint8 ``(N, size, size, 3)`` for the dashboard."""
    from PIL import Image

    out = np.empty((len(dataset), size, size, 3), dtype=np.uint8)
    for i in range(len(dataset)):
        image = dataset.image(i)
        if image.shape[:2] != (size, size):
            image = np.asarray(Image.fromarray(image).resize((size, size)))
        out[i] = image
    return out
