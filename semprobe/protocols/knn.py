"""Exact weighted k-nearest-neighbour classification, streamed over blocks of training rows.

The SSL community's standard monitor (Wu et al., CVPR 2018, "Unsupervised feature learning via
non-parametric instance discrimination"): each test row's k most similar training rows vote for
their class, with weight ``exp(similarity / T)`` for the cosine similarity. Two conventions:

* solo-learn's ``WeightedKNNClassifier``: k = 20, T = 0.07, cosine; with the euclidean distance
  ``d`` the weight is ``1 / (d + 1e-5)`` and T is not used;
* lightly's ``knn_predict``: k = 200, T = 0.1, cosine.

Exact and deterministic: neighbours are ordered by (similarity descending, training index
ascending), a strict total order, so the running top-k kept over the training blocks is the top-k
of the whole similarity matrix, which is never built (memory is one query block, one training
block and their similarities). A tie at the k-th place goes to the earlier training row. Votes are
summed in float64 in neighbour order; the predicted order of classes is by vote, ties to the
lower class index.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from tqdm.auto import tqdm

from semprobe.bootstrap import bootstrap_mean, check_confidence, check_resamples
from semprobe.errors import SemprobeError
from semprobe.features import FeatureSet
from semprobe.probe.params import check_device
from semprobe.protocols.rows import REPRESENTATIONS, FeatureRows, block_rows
from semprobe.validation import check_int, check_number

#: ``name -> (k, temperature)`` of the two codebases' defaults.
CONVENTIONS: dict[str, tuple[int, float]] = {"solo-learn": (20, 0.07), "lightly": (200, 0.1)}
METRICS = ("cosine", "euclidean")
#: solo-learn's epsilon of the euclidean weight ``1 / (d + eps)``.
EUCLIDEAN_EPS = 1e-5
DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class Neighbours:
    """The k nearest training rows of every test row, best first.

    Attributes
    ----------
    scores: ``(n_test, k)`` float32 (float64 if searched so): the cosine similarity, or minus
        the squared euclidean distance.
    indices: ``(n_test, k)`` int64 training rows.
    metric: ``cosine`` or ``euclidean``.
    """

    scores: np.ndarray
    indices: np.ndarray
    metric: str

    @property
    def k(self) -> int:
        return int(self.indices.shape[1])


def _as_rows(x: Any) -> FeatureRows:
    return x if isinstance(x, FeatureRows) else FeatureRows.from_array(x)


def _prepare(
    block: np.ndarray, metric: str, device: torch.device, dtype: torch.dtype
) -> tuple[Tensor, Tensor | None]:
    """A block on the device: unit rows for cosine, rows and squared norms for euclidean."""
    if not np.isfinite(block).all():
        raise SemprobeError("kNN features contain NaN or infinity")
    x = torch.from_numpy(np.ascontiguousarray(block)).to(device=device, dtype=dtype)
    if metric == "cosine":
        return torch.nn.functional.normalize(x, dim=1), None
    return x, (x * x).sum(1)


def _scores(q: tuple[Tensor, Tensor | None], t: tuple[Tensor, Tensor | None]) -> Tensor:
    dot = q[0] @ t[0].T
    if q[1] is None or t[1] is None:
        return dot
    return -(q[1][:, None] + t[1][None, :] - 2 * dot).clamp_min(0.0)


def _ordered(values: Tensor, indices: Tensor) -> tuple[Tensor, Tensor]:
    """The same set sorted by (value descending, index ascending)."""
    indices, perm = torch.sort(indices, dim=1)
    values = values.gather(1, perm)
    values, perm = torch.sort(values, dim=1, descending=True, stable=True)
    return values, indices.gather(1, perm)


def _block_top(scores: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Top ``k`` of each row with ties at the k-th place to the lower column, ordered."""
    values, indices = torch.topk(scores, k, dim=1)
    # topk picks an arbitrary subset of the values equal to the k-th; redo those rows stably.
    ambiguous = (scores >= values[:, -1:]).sum(1) > k
    if bool(ambiguous.any()):
        rows = ambiguous.nonzero().squeeze(1)
        sorted_values, order = torch.sort(scores[rows], dim=1, descending=True, stable=True)
        values[rows], indices[rows] = sorted_values[:, :k], order[:, :k]
    return _ordered(values, indices)


def _merge(
    best: tuple[Tensor, Tensor] | None, new: tuple[Tensor, Tensor], k: int
) -> tuple[Tensor, Tensor]:
    """Top ``k`` of two ordered candidate sets whose indices are all smaller in ``best``."""
    if best is None:
        return new[0][:, :k], new[1][:, :k]
    values = torch.cat([best[0], new[0]], 1)
    indices = torch.cat([best[1], new[1]], 1)
    # A stable sort keeps best's (smaller) indices ahead of new's among equal values.
    values, perm = torch.sort(values, dim=1, descending=True, stable=True)
    return values[:, :k], indices.gather(1, perm)[:, :k]


def nearest_neighbours(
    train: Any,
    test: Any,
    k: int,
    metric: str = "cosine",
    device: str = "cpu",
    query_rows: int | None = None,
    train_rows: int | None = None,
    progress: bool = False,
    dtype: str = "float32",
) -> Neighbours:
    """The ``k`` nearest training rows of every test row, exactly, without an N x N matrix.

    Parameters
    ----------
    train, test:
        ``(n, d)`` arrays, memory maps or :class:`~semprobe.protocols.rows.FeatureRows`.
    k:
        Neighbours per test row, at most the number of training rows.
    metric:
        ``cosine`` (rows normalised to unit length) or ``euclidean``.
    device:
        Torch device of the similarity products.
    query_rows, train_rows:
        Rows per block (default: about 128 MB of float32 each).
    progress:
        Show a progress bar over the query blocks.
    dtype:
        ``float32`` (as solo-learn and lightly) or ``float64``: SEM outputs at a high tau are
        nearly uniform, their cosine similarities all close to 1, and float32 (resolution 6e-8
        there) then ties neighbours that float64 tells apart.

    Returns
    -------
    Neighbours
        Ordered by (score descending, training index ascending).

    Examples
    --------
    >>> import numpy as np
    >>> train = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]])
    >>> nearest_neighbours(train, np.array([[1.0, 0.0]]), k=2).indices.tolist()
    [[0, 2]]
    """
    if metric not in METRICS:
        raise SemprobeError(f"unknown kNN metric {metric!r}; choose cosine or euclidean")
    tr, te = _as_rows(train), _as_rows(test)
    (n_train, width), (n_test, test_width) = tr.shape, te.shape
    if width != test_width:
        raise SemprobeError(f"train rows have {width} features but test rows have {test_width}")
    k = check_int("k", k)
    if k > n_train:
        raise SemprobeError(f"k = {k} is larger than the {n_train} training rows")
    dev = check_device(device)
    if dtype not in DTYPES:
        raise SemprobeError(f"unknown kNN dtype {dtype!r}; choose float32 or float64")
    steps = (query_rows or block_rows(width), train_rows or block_rows(width))
    bar = tqdm(total=n_test, desc=f"kNN {metric}", unit="row", disable=not progress)
    with tr, te:
        scores, indices = _search(tr, te, k, metric, dev, DTYPES[dtype], steps, bar.update)
    bar.close()
    return Neighbours(scores, indices, metric)


def _search(
    tr: FeatureRows,
    te: FeatureRows,
    k: int,
    metric: str,
    device: torch.device,
    dtype: torch.dtype,
    steps: tuple[int, int],
    done: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """The running top-k of every query block over every training block."""
    (n_train, _), (n_test, _) = tr.shape, te.shape
    out_scores = np.empty((n_test, k), dtype=np.float64 if dtype == torch.float64 else np.float32)
    out_indices = np.empty((n_test, k), dtype=np.int64)
    for q0 in range(0, n_test, steps[0]):
        q1 = min(n_test, q0 + steps[0])
        query = _prepare(te.read(q0, q1), metric, device, dtype)
        best: tuple[Tensor, Tensor] | None = None
        for t0 in range(0, n_train, steps[1]):
            t1 = min(n_train, t0 + steps[1])
            scores = _scores(query, _prepare(tr.read(t0, t1), metric, device, dtype))
            values, local = _block_top(scores, min(k, t1 - t0))
            best = _merge(best, (values, local + t0), k)
        assert best is not None
        out_scores[q0:q1] = best[0].cpu().numpy()
        out_indices[q0:q1] = best[1].cpu().numpy()
        done(q1 - q0)
    return out_scores, out_indices


def class_votes(
    neighbours: Neighbours,
    train_labels: np.ndarray,
    n_classes: int,
    k: int,
    temperature: float,
) -> np.ndarray:
    """Weighted votes of the ``k`` nearest neighbours: ``(n_test, n_classes)`` float64.

    Cosine: weight ``exp(similarity / temperature)``; euclidean: ``1 / (distance + 1e-5)``
    (solo-learn's, temperature unused).
    """
    if k > neighbours.k:
        raise SemprobeError(f"k = {k} but only {neighbours.k} neighbours were searched")
    temperature = check_number("kNN temperature", temperature, minimum=0.0, strict=True)
    scores = neighbours.scores[:, :k].astype(np.float64)
    if neighbours.metric == "cosine":
        weights = np.exp(scores / temperature)
    else:
        weights = 1.0 / (np.sqrt(np.maximum(-scores, 0.0)) + EUCLIDEAN_EPS)
    labels = np.asarray(train_labels, dtype=np.int64)[neighbours.indices[:, :k]]
    votes = np.zeros((len(labels), n_classes), dtype=np.float64)
    rows = np.repeat(np.arange(len(labels)), k).reshape(len(labels), k)
    np.add.at(votes, (rows, labels), weights)  # unbuffered, in neighbour order
    return votes


def ranked_classes(votes: np.ndarray) -> np.ndarray:
    """Classes of each row by vote, highest first, ties to the lower class index."""
    return np.argsort(-votes, axis=1, kind="stable")


def knn_accuracy(
    neighbours: Neighbours,
    train_labels: np.ndarray,
    test_labels: np.ndarray,
    n_classes: int,
    k: int,
    temperature: float,
) -> dict[str, float]:
    """Top-1 and top-5 accuracy of the weighted kNN vote (the means of :func:`knn_hits`).

    Examples
    --------
    >>> import numpy as np
    >>> train = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    >>> found = nearest_neighbours(train, np.array([[1.0, 0.05], [0.1, 1.0]]), k=2)
    >>> knn_accuracy(found, np.array([0, 0, 1]), np.array([0, 1]), 2, k=2, temperature=0.07)
    {'top1': 1.0, 'top5': 1.0}
    """
    hits = knn_hits(neighbours, train_labels, test_labels, n_classes, k, temperature)
    return {name: float(np.mean(hit)) for name, hit in hits.items()}


def knn_hits(
    neighbours: Neighbours,
    train_labels: np.ndarray,
    test_labels: np.ndarray,
    n_classes: int,
    k: int,
    temperature: float,
) -> dict[str, np.ndarray]:
    """Per test image: whether the true class is the vote's first (``top1``) or in its top 5."""
    order = ranked_classes(class_votes(neighbours, train_labels, n_classes, k, temperature))
    truth = np.asarray(test_labels, dtype=np.int64)[:, None]
    top5 = min(5, n_classes)
    return {"top1": order[:, 0] == truth[:, 0], "top5": (order[:, :top5] == truth).any(axis=1)}


def knn_pairs(
    ks: Sequence[int] = (), temperatures: Sequence[float] = ()
) -> list[tuple[int, float, str]]:
    """``(k, temperature, convention)`` to evaluate.

    Neither list given: the two conventions' defaults. Otherwise every k with every temperature
    (the missing list takes the conventions' values); ``convention`` names a codebase whose
    default the pair is, else ``custom``.

    Examples
    --------
    >>> knn_pairs()
    [(20, 0.07, 'solo-learn'), (200, 0.1, 'lightly')]
    >>> knn_pairs(ks=[10])
    [(10, 0.07, 'custom'), (10, 0.1, 'custom')]
    """
    if not ks and not temperatures:
        return [(k, t, name) for name, (k, t) in CONVENTIONS.items()]
    k_list = [check_int("k", k) for k in (ks or [k for k, _ in CONVENTIONS.values()])]
    t_list = [
        check_number("kNN temperature", t, minimum=0.0, strict=True)
        for t in (temperatures or [t for _, t in CONVENTIONS.values()])
    ]
    named = {pair: name for name, pair in CONVENTIONS.items()}
    pairs = []
    for k in dict.fromkeys(k_list):
        for t in dict.fromkeys(t_list):
            pairs.append((k, t, named.get((k, t), "custom")))
    return pairs


@dataclass(frozen=True)
class KNNSettings:
    """What ``semprobe knn`` evaluates.

    Parameters
    ----------
    ks, temperatures:
        See :func:`knn_pairs`; both empty: solo-learn's and lightly's defaults.
    metric:
        ``cosine`` or ``euclidean``.
    representations:
        Any of ``backbone``, ``logits`` (pre-softmax embedding) and ``sem`` (at each tau); a
        model without SEM embedder gets the backbone only.
    taus:
        Temperatures of the ``sem`` representation.
    dtype:
        Arithmetic of the similarities (see :func:`nearest_neighbours`).
    bootstrap, confidence, seed:
        With ``bootstrap`` resamples of the test images, each accuracy gets its ``confidence``
        percentile interval (:func:`semprobe.bootstrap.bootstrap_mean`, seeded by ``seed``).
    """

    ks: tuple[int, ...] = ()
    temperatures: tuple[float, ...] = ()
    metric: str = "cosine"
    representations: tuple[str, ...] = ("backbone", "logits", "sem")
    taus: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)
    dtype: str = "float32"
    bootstrap: int | None = None
    confidence: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        from semprobe.validation import check_taus

        for name in ("ks", "temperatures", "representations", "taus"):
            value = getattr(self, name)
            object.__setattr__(self, name, (value,) if np.isscalar(value) else tuple(value))
        if self.metric not in METRICS:
            raise SemprobeError(f"unknown kNN metric {self.metric!r}; choose cosine or euclidean")
        unknown = [r for r in self.representations if r not in REPRESENTATIONS]
        if unknown or not self.representations:
            raise SemprobeError(
                f"unknown kNN representations {unknown or list(self.representations)!r}; "
                f"choose from {', '.join(REPRESENTATIONS)}"
            )
        if "sem" in self.representations:
            object.__setattr__(self, "taus", tuple(check_taus(self.taus)))
        knn_pairs(self.ks, self.temperatures)  # checks every k and temperature
        if self.dtype not in DTYPES:
            raise SemprobeError(f"unknown kNN dtype {self.dtype!r}; choose float32 or float64")
        if self.bootstrap is not None:
            check_resamples(self.bootstrap)
        check_confidence(self.confidence)
        check_int("seed", self.seed, minimum=0)

    @property
    def pairs(self) -> list[tuple[int, float, str]]:
        return knn_pairs(self.ks, self.temperatures)


def representations_of(
    fs: FeatureSet, representations: Sequence[str], taus: Sequence[float]
) -> list[tuple[str, float]]:
    """``(representation, tau)`` pairs a model has: baselines lack logits and SEM outputs."""
    out: list[tuple[str, float]] = []
    for rep in representations:
        if rep == "backbone":
            out.append((rep, math.nan))
        elif fs.logits is not None:
            out += [(rep, float(t)) for t in taus] if rep == "sem" else [(rep, math.nan)]
    return out


def knn_table(
    train: FeatureSet,
    test: FeatureSet,
    settings: KNNSettings = KNNSettings(),
    model: str = "model",
    device: str = "cpu",
    progress: bool = False,
) -> pd.DataFrame:
    """Weighted-kNN accuracy of one model's cached features, per representation and (k, T).

    The neighbours of each representation are searched once, for the largest k; every
    (k, temperature) is then a vote over a prefix of them.

    Returns
    -------
    pandas.DataFrame
        ``model, representation, tau, metric, k, temperature, convention, top1, top5, n_train,
        n_test, n_features`` (tau is NaN except for ``sem``; temperature is NaN for euclidean);
        with ``settings.bootstrap``, also ``top1_low, top1_high, top5_low, top5_high``.
    """
    if train.class_names != test.class_names:
        raise SemprobeError("the train and test splits have different class lists")
    pairs = settings.pairs
    k_max = max(k for k, _, _ in pairs)
    n_classes = len(train.class_names)
    rows = []
    for rep, tau in representations_of(train, settings.representations, settings.taus):
        t = None if math.isnan(tau) else tau
        found = nearest_neighbours(
            FeatureRows(train, rep, t),
            FeatureRows(test, rep, t),
            k_max,
            settings.metric,
            device,
            progress=progress,
            dtype=settings.dtype,
        )
        width = FeatureRows(train, rep, t).shape[1]
        for k, temperature, convention in pairs:
            hits = knn_hits(found, train.labels, test.labels, n_classes, k, temperature)
            scored: dict[str, float] = {name: float(np.mean(hit)) for name, hit in hits.items()}
            if settings.bootstrap is not None:
                scored |= _intervals(hits, settings)
            euclidean = settings.metric == "euclidean"
            rows.append(
                {
                    "model": model,
                    "representation": rep,
                    "tau": tau,
                    "metric": settings.metric,
                    "k": k,
                    "temperature": math.nan if euclidean else temperature,
                    "convention": convention,
                    **scored,
                    "n_train": len(train.labels),
                    "n_test": len(test.labels),
                    "n_features": width,
                }
            )
    return pd.DataFrame(rows)


def _intervals(hits: dict[str, np.ndarray], settings: KNNSettings) -> dict[str, float]:
    """``<name>_low`` and ``<name>_high`` of each accuracy, over resampled test images."""
    assert settings.bootstrap is not None
    out: dict[str, float] = {}
    for name, hit in hits.items():
        low, high = bootstrap_mean(hit, settings.bootstrap, settings.seed, settings.confidence)
        out |= {f"{name}_low": low, f"{name}_high": high}
    return out
