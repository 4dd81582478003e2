"""The entropy report: its tables, and reading and writing them as a directory."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from semprobe.atomic import atomic_path, ensure_writable_dir, write_json
from semprobe.errors import SemprobeError

TABLES = ("per_simplex", "histogram", "per_class", "per_superclass", "summary")


@dataclass(frozen=True)
class EntropyReport:
    """Entropy statistics of a set of SEM representations at one or more temperatures.

    Made by :func:`semprobe.entropy.entropy_report`; entropies are in nats.

    Attributes
    ----------
    per_simplex:
        One row per (tau, simplex): ``tau, simplex, mean, std, mean_norm, std_norm, q05 ... q95,
        eff_vertices`` (``*_norm`` are for ``H / ln V``; ``std`` is the population std).
    histogram:
        ``tau, bin_left, bin_right, count``; for every tau the counts sum to ``N * L``.
    per_class:
        ``tau, class, mean, n_samples`` for every class with at least one sample (empty without
        labels).
    per_superclass:
        ``tau, superclass, mean, n_samples`` (empty without a superclass mapping).
    summary:
        One row per tau: ``tau, mean, std, mean_norm, frac_one_hot, frac_two_hot, frac_uniform,
        eff_vertices, n_samples, L, V``.
    meta:
        The parameters of the analysis (``L``, ``V``, ``n_samples``, ``taus``, ``bins``,
        ``quantile_bins``, ``quantiles``, ``eps``, ``quantile_resolution``).

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from semprobe.entropy import entropy_report
    >>> logits = np.zeros((3, 2 * 2), dtype=np.float32)  # 3 samples, L = 2 simplices of V = 2
    >>> report = entropy_report(logits, 2, 2, 1.0, labels=[0, 1, 1], num_threads=1)
    >>> report.per_class[["class", "n_samples"]].to_numpy().tolist()
    [[0, 1], [1, 2]]
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     back = EntropyReport.from_dir(report.to_dir(tmp))
    >>> back.summary.equals(report.summary), back.meta == report.meta
    (True, True)
    """

    per_simplex: pd.DataFrame
    histogram: pd.DataFrame
    per_class: pd.DataFrame
    per_superclass: pd.DataFrame
    summary: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dir(self, path: str | os.PathLike[str], csv: bool = False) -> Path:
        """Write every table as ``<name>.parquet`` (and ``<name>.csv``) plus ``meta.json``.

        Each file is written atomically: a killed process leaves either the old or the new file.

        Parameters
        ----------
        path:
            Directory, created if needed.
        csv:
            Also write CSV copies of the tables.

        Returns
        -------
        Path
            The directory.
        """
        directory = ensure_writable_dir(path)
        for name in TABLES:
            frame: pd.DataFrame = getattr(self, name)
            with atomic_path(directory / f"{name}.parquet", suffix=".parquet") as tmp:
                frame.to_parquet(tmp, index=False)
            if csv:
                with atomic_path(directory / f"{name}.csv", suffix=".csv") as tmp:
                    frame.to_csv(tmp, index=False)
        write_json(directory / "meta.json", self.meta)
        return directory

    @classmethod
    def from_dir(cls, path: str | os.PathLike[str]) -> EntropyReport:
        """Read a report written by :meth:`to_dir`.

        Raises
        ------
        SemprobeError
            If a file is missing or unreadable, naming it.
        """
        directory = Path(path)
        tables: dict[str, pd.DataFrame] = {}
        for name in TABLES:
            file = directory / f"{name}.parquet"
            try:
                tables[name] = pd.read_parquet(file)
            except (OSError, ValueError) as exc:
                raise SemprobeError(f"cannot read entropy table {file}: {exc}") from None
        meta_file = directory / "meta.json"
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SemprobeError(f"cannot read {meta_file}: {exc}") from None
        return cls(meta=meta, **tables)
