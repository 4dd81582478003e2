"""Numbers behind the dashboard's views, as plain functions of arrays (no Streamlit).

Everything that depends on the SEM temperature is recomputed from the cached pre-softmax logits
with :func:`semprobe.sem.sem_softmax` and :func:`semprobe.entropy.entropy_report`, so any tau can
be shown, not only the ones an analysis wrote. A simplex only needs its own ``(N, V)`` block of
the logits (:func:`semprobe.simplex_major.simplex_block`), which keeps a simplex switch cheap
even for L = 5000. Graphs, 2-neighbours and relevance
come from :mod:`semprobe.graph` and :mod:`semprobe.relevance`; what is here only arranges their
results for the views.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from semprobe.entropy import entropy_report
from semprobe.errors import SemprobeError
from semprobe.graph import FeatureCategoryGraph, two_neighbours
from semprobe.sem import sem_softmax

_THREADS_LOCK = threading.Lock()

ORDERS = ("index", "entropy (lowest first)", "probe weight mass", "relevance contribution")


def tau_grid(extra: Sequence[float] = ()) -> list[float]:
    """Temperatures offered by the tau slider: about log-spaced on [0.01, 10], plus ``extra``.

    The mantissas 1, 1.5, 2, 3, 5, 7 give six steps per decade and keep the usual values
    (0.1, 0.2, 0.5, 1, 2) on the grid; the models' own taus are added so they are exact.
    """
    grid = {round(m * 10.0**e, 6) for e in range(-2, 1) for m in (1, 1.5, 2, 3, 5, 7)}
    grid.add(10.0)
    grid.update(round(float(t), 6) for t in extra if 0.01 <= float(t) <= 10)
    return sorted(grid)


def nearest(values: Sequence[float], target: float) -> float:
    """The value of ``values`` closest to ``target`` on a log scale."""
    return min(values, key=lambda v: abs(math.log(v) - math.log(target)))


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run small torch computations on one thread.

    For an (N, V) block, waking torch's worker threads costs more than the work, and on a busy
    machine each parallel step waits for a core: one simplex took 10 ms on one thread and over
    100 ms on two under load.
    """
    with _THREADS_LOCK:
        previous = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(previous)


def simplex_probabilities(z: np.ndarray, tau: float) -> np.ndarray:
    """The ``(N, V)`` SEM output at ``tau`` of one simplex's ``(N, V)`` float32 logits ``z``."""
    with single_thread():
        return sem_softmax(torch.from_numpy(z), 1, z.shape[1], tau).numpy()


#: Bands of a vertex's activation rank (fractions of the test images, highest first), as
#: feature dashboards show examples across the whole range and not only the top ones.
QUANTILE_BANDS = (
    ("top 1 %", 0.99, 1.0),
    ("90-99 %", 0.90, 0.99),
    ("50-90 %", 0.50, 0.90),
    ("10-50 %", 0.10, 0.50),
    ("bottom 10 %", 0.0, 0.10),
)


def quantile_examples(
    activation: np.ndarray,
    per_band: int,
    bands: Sequence[tuple[str, float, float]] = QUANTILE_BANDS,
) -> list[tuple[str, np.ndarray]]:
    """``per_band`` test images from each band of ``activation``'s ranks, highest first.

    The images are ranked by activation (ties by index); a band ``(name, lo, hi)`` holds the
    ranks between the ``lo`` and ``hi`` quantiles, and its examples are evenly spaced through it,
    so that they show the band's whole range. A band with no image (tiny N) is left out.

    Returns
    -------
    list of (str, numpy.ndarray)
        The band's name and up to ``per_band`` image indices, highest activation first.
    """
    n = len(activation)
    ascending = np.lexsort((np.arange(n), activation))
    out = []
    for name, lo, hi in bands:
        start, stop = math.floor(lo * n), math.floor(hi * n) if hi < 1 else n
        if stop <= start:
            continue
        positions = np.unique(np.linspace(start, stop - 1, min(per_band, stop - start)).round())
        out.append((name, ascending[positions.astype(np.int64)][::-1].copy()))
    return out


def vertex_votes(
    coef: np.ndarray, feature: int, class_names: Sequence[str], top: int = 5
) -> pd.DataFrame:
    """The classes the probe weight of ``feature`` pushes most up and most down.

    Returns
    -------
    pandas.DataFrame
        ``class, weight``: the ``top`` largest positive weights (largest first), then the ``top``
        most negative (most negative last); a sign with no weight is left out.
    """
    w = np.asarray(coef[:, feature], dtype=np.float64)
    order = np.lexsort((np.arange(len(w)), -w))
    up = [c for c in order[:top] if w[c] > 0]
    down = [c for c in order[::-1][:top] if w[c] < 0][::-1]
    chosen = up + down
    return pd.DataFrame({"class": [class_names[c] for c in chosen], "weight": w[chosen]})


def features_for_classes(
    coef: np.ndarray, classes: Sequence[int], vocab: int, top: int = 20
) -> pd.DataFrame:
    """The SEM features whose probe weight, averaged over ``classes``, is largest.

    Returns
    -------
    pandas.DataFrame
        ``simplex, vertex, feature, weight``: the ``top`` features with positive mean weight,
        largest first (ties by feature index).
    """
    w = np.asarray(coef, dtype=np.float64)[list(classes)].mean(axis=0)
    order = [j for j in np.lexsort((np.arange(len(w)), -w))[:top] if w[j] > 0]
    chosen = np.asarray(order, dtype=np.int64)
    return pd.DataFrame(
        {
            "simplex": chosen // vocab,
            "vertex": chosen % vocab,
            "feature": chosen,
            "weight": w[chosen],
        }
    )


def simplex_contributions(
    inputs: np.ndarray, coef_row: np.ndarray, sem: np.ndarray, vocab: int
) -> pd.DataFrame:
    """Each simplex's share of one class's probe score for one image, largest first.

    ``inputs`` is the probe's ``(L*V,)`` input for the image (standardised where the probe was),
    ``coef_row`` the class's ``(L*V,)`` weights and ``sem`` the image's SEM output. The score
    is ``inputs @ coef_row + intercept``; simplex ``s`` contributes the sum over its V features.

    Returns
    -------
    pandas.DataFrame
        ``simplex, vertex, activation, contribution``: the image's largest vertex in each
        simplex, its activation and the simplex's contribution, ordered by contribution.
    """
    n_simplices = len(inputs) // vocab
    parts = (
        (np.asarray(inputs, dtype=np.float64) * np.asarray(coef_row, dtype=np.float64))
        .reshape(n_simplices, vocab)
        .sum(axis=1)
    )
    states = np.asarray(sem, dtype=np.float64).reshape(n_simplices, vocab)
    order = np.lexsort((np.arange(n_simplices), -parts))
    return pd.DataFrame(
        {
            "simplex": order,
            "vertex": states.argmax(axis=1)[order],
            "activation": states.max(axis=1)[order],
            "contribution": parts[order],
        }
    )


def top_indices(values: np.ndarray, margin: np.ndarray, top: int) -> np.ndarray:
    """Indices of the ``top`` largest ``values``; ties by larger ``margin``, then lower index."""
    n = len(values)
    top = min(top, n)
    if top == 0:
        return np.empty(0, dtype=np.int64)
    # Only samples at least as large as the top-th value can be selected: sort just those.
    threshold = np.partition(values, n - top)[n - top]
    candidates = np.flatnonzero(values >= threshold)
    order = np.lexsort((candidates, -margin[candidates], -values[candidates]))
    return candidates[order[:top]].astype(np.int64)


@dataclass(frozen=True)
class SimplexView:
    """What the simplex browser shows for one simplex at one temperature.

    Attributes
    ----------
    simplex, tau, vocab:
        Which simplex, at which temperature, with V vertices.
    mean_entropy:
        Mean over the test samples of the simplex's entropy H (nats).
    top_images:
        ``(V, top)`` test-sample indices with the largest activation of each vertex.
    top_values:
        ``(V, top)`` those activations.
    class_means:
        ``(V, C)`` mean activation of each vertex over each class's samples.
    vertex_means:
        ``(V,)`` mean activation of each vertex over all samples.
    hist_counts, hist_edges:
        Histogram of H over the samples on ``[0, ln V]``.
    """

    simplex: int
    tau: float
    vocab: int
    mean_entropy: float
    top_images: np.ndarray
    top_values: np.ndarray
    class_means: np.ndarray
    vertex_means: np.ndarray
    hist_counts: np.ndarray
    hist_edges: np.ndarray

    @property
    def normalised_entropy(self) -> float:
        """Mean entropy divided by ln V (0: one-hot, 1: uniform)."""
        return self.mean_entropy / math.log(self.vocab) if self.vocab > 1 else 0.0


def simplex_view(
    z: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    simplex: int,
    tau: float,
    top: int = 8,
    bins: int = 32,
) -> SimplexView:
    """Activations, top images, class means and entropy of one simplex at ``tau``.

    ``z`` is the simplex's ``(N, V)`` float32 logits (:func:`semprobe.simplex_major.simplex_block`);
    ``simplex`` only labels the result.

    Vertices are ranked by their SEM activation at ``tau``; at small tau many samples saturate
    at 1.0, so ties are broken by the logit margin over the simplex's other vertices, then by
    sample index. The entropy statistics are :func:`semprobe.entropy.entropy_report`'s on the
    simplex's columns (``bins`` dividing its 256 quantile bins costs no extra pass).
    """
    vocab = z.shape[1]
    probs = simplex_probabilities(z, tau)
    with single_thread():
        # One worker: for N x V values a thread pool costs more than it saves.
        report = entropy_report(z, 1, vocab, [tau], bins=bins, num_threads=1)
    n = z.shape[0]
    top = min(top, n)
    # Margin of vertex v over the best other vertex: the runner-up where v is the maximum.
    if vocab > 1:
        two = np.partition(z, vocab - 2, axis=1)[:, -2:]
        first, second = two.max(axis=1), two.min(axis=1)
    else:
        first = second = np.zeros(n, dtype=np.float32)
    top_images = np.empty((vocab, top), dtype=np.int64)
    for v in range(vocab):
        margin = z[:, v] - np.where(z[:, v] >= first, second, first)
        top_images[v] = top_indices(probs[:, v], margin, top)
    top_values = np.take_along_axis(probs.T, top_images, axis=1)
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    class_means = np.stack(
        [np.bincount(labels, weights=probs[:, v], minlength=n_classes) for v in range(vocab)]
    ) / np.maximum(counts, 1.0)
    hist = report.histogram
    return SimplexView(
        simplex=simplex,
        tau=tau,
        vocab=vocab,
        mean_entropy=float(report.summary["mean"].iloc[0]),
        top_images=top_images,
        top_values=top_values.astype(np.float64),
        class_means=class_means,
        vertex_means=probs.mean(axis=0).astype(np.float64),
        hist_counts=hist["count"].to_numpy(dtype=np.int64),
        hist_edges=np.append(hist["bin_left"].to_numpy(), hist["bin_right"].iloc[-1]),
    )


def weight_mass(coef: np.ndarray, num_simplices: int, vocab: int) -> np.ndarray:
    """Per simplex, the probe's total absolute weight over its V features, summed over classes."""
    if coef.shape[1] != num_simplices * vocab:
        raise SemprobeError(
            f"the probe has {coef.shape[1]} features, not L*V = {num_simplices * vocab}"
        )
    return np.abs(coef).reshape(coef.shape[0], num_simplices, vocab).sum(axis=(0, 2))


def relevance_contribution(simplices: pd.DataFrame | None, num_simplices: int) -> pd.DataFrame:
    """Per simplex: vertices kept in W_K and, of those, vertices coherent in one superclass.

    ``simplices`` is the run's ``simplex_concepts.csv`` (:func:`semprobe.concepts.simplex_concepts`,
    which lists only simplices with a kept vertex); the others get zeros.
    """
    table = pd.DataFrame({"simplex": np.arange(num_simplices)})
    kept = np.zeros(num_simplices, dtype=np.int64)
    coherence = np.zeros(num_simplices, dtype=np.int64)
    if simplices is not None and len(simplices) and "simplex" in simplices:
        rows = simplices[(simplices["simplex"] >= 0) & (simplices["simplex"] < num_simplices)]
        index = rows["simplex"].to_numpy(dtype=np.int64)
        kept[index] = rows["n_vertices_kept"].to_numpy(dtype=np.int64)
        coherence[index] = rows["coherence"].to_numpy(dtype=np.int64)
    return table.assign(n_vertices_kept=kept, coherence=coherence)


def simplex_order(
    by: str,
    num_simplices: int,
    entropy: np.ndarray | None = None,
    mass: np.ndarray | None = None,
    contribution: pd.DataFrame | None = None,
) -> np.ndarray:
    """Simplex indices in the order ``by`` (one of :data:`ORDERS`); ties keep the lower index."""
    index = np.arange(num_simplices)
    if by == "index":
        return index
    if by == "entropy (lowest first)" and entropy is not None:
        return np.lexsort((index, entropy))
    if by == "probe weight mass" and mass is not None:
        return np.lexsort((index, -mass))
    if by == "relevance contribution" and contribution is not None:
        # The order of simplex_concepts.csv: most coherent first, then most vertices kept.
        return np.lexsort(
            (
                index,
                -contribution["n_vertices_kept"].to_numpy(),
                -contribution["coherence"].to_numpy(),
            )
        )
    raise SemprobeError(f"cannot order simplices by {by!r} for this model")


def neighbours_table(
    graph: FeatureCategoryGraph,
    category: int,
    class_names: Sequence[str],
    superclasses: Sequence[str],
) -> pd.DataFrame:
    """The 2-neighbours of ``category``: name, superclass, features shared, same superclass."""
    shared = two_neighbours(graph, multiplicity=True)[category]
    others = np.flatnonzero(shared)
    order = others[np.lexsort((others, -shared[others]))]
    return pd.DataFrame(
        {
            "neighbour": [class_names[j] for j in order],
            "superclass": [superclasses[j] for j in order],
            "shared_features": shared[order].astype(np.int64),
            "same_superclass": [superclasses[j] == superclasses[category] for j in order],
        }
    )


def category_features(
    graph: FeatureCategoryGraph, category: int, feature_names: Sequence[str]
) -> pd.DataFrame:
    """The features of ``category`` in W_K, strongest first."""
    mask = graph.category == category
    feats, weights = graph.feature[mask], graph.weight[mask]
    order = np.lexsort((feats, -weights))
    return pd.DataFrame(
        {
            "feature": [feature_names[f] for f in feats[order]],
            "weight": weights[order],
        }
    )
