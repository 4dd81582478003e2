"""Numbers behind the dashboard's views, as plain functions of arrays (no Streamlit).

Everything that depends on the SEM temperature is recomputed from the cached pre-softmax logits
with :func:`semprobe.sem.sem_softmax` / :func:`semprobe.sem.simplex_entropy`, so any tau can be
shown, not only the ones an analysis wrote. A simplex only needs its own V columns of the logits,
which keeps a simplex switch cheap even for L = 5000.
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

from semprobe.errors import SemprobeError
from semprobe.graph import FeatureCategoryGraph, top_k_graph, two_neighbours
from semprobe.relevance import relevance
from semprobe.sem import sem_softmax, simplex_entropy

# Logit elements per chunk when streaming every simplex (16 MiB of float32).
_CHUNK_ELEMS = 1 << 22

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


def simplex_columns(logits: np.ndarray, simplex: int, vocab: int) -> np.ndarray:
    """The ``(N, V)`` float32 logits of one simplex (a strided read of a memory map)."""
    n_simplices = logits.shape[1] // vocab
    if not 0 <= simplex < n_simplices:
        raise SemprobeError(f"simplex {simplex} is out of range [0, {n_simplices})")
    # A copy: memory-mapped logits are read-only, and torch wants writable arrays.
    return np.array(logits[:, simplex * vocab : (simplex + 1) * vocab], dtype=np.float32)


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
    logits: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    simplex: int,
    vocab: int,
    tau: float,
    top: int = 8,
    bins: int = 30,
) -> SimplexView:
    """Activations, top images, class means and entropy of one simplex at ``tau``.

    Vertices are ranked by their SEM activation at ``tau``; at small tau many samples saturate
    at 1.0, so ties are broken by the logit margin over the simplex's other vertices, then by
    sample index.
    """
    z = simplex_columns(logits, simplex, vocab)
    tensor = torch.from_numpy(z)
    with single_thread():
        probs = sem_softmax(tensor, 1, vocab, tau).numpy()
        entropy = simplex_entropy(tensor, 1, vocab, tau)[:, 0].numpy().astype(np.float64)
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
    edges = np.linspace(0.0, math.log(vocab) if vocab > 1 else 1.0, bins + 1)
    hist, _ = np.histogram(np.clip(entropy, edges[0], edges[-1]), bins=edges)
    return SimplexView(
        simplex=simplex,
        tau=tau,
        vocab=vocab,
        mean_entropy=float(entropy.mean()),
        top_images=top_images,
        top_values=top_values.astype(np.float64),
        class_means=class_means,
        vertex_means=probs.mean(axis=0).astype(np.float64),
        hist_counts=hist.astype(np.int64),
        hist_edges=edges,
    )


@dataclass(frozen=True)
class LiveEntropy:
    """Entropy tables computed from the logits, with the columns of an ``EntropyReport``."""

    per_simplex: pd.DataFrame  # tau, simplex, mean, std, mean_norm
    histogram: pd.DataFrame  # tau, bin_left, bin_right, count
    per_class: pd.DataFrame  # tau, class, mean, n_samples
    per_superclass: pd.DataFrame  # tau, superclass, mean, n_samples
    summary: pd.DataFrame  # tau, mean, std, mean_norm, frac_one_hot, frac_uniform


def live_entropy(
    logits: np.ndarray,
    num_simplices: int,
    vocab: int,
    taus: Sequence[float],
    labels: np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    superclass_of: dict[str, str] | None = None,
    bins: int = 40,
    eps: float = 0.05,
) -> LiveEntropy:
    """Per-simplex, histogram, per-class and per-superclass entropy at each tau.

    The logits are read in chunks of rows, every tau from the same chunk, so memory stays at one
    chunk whatever N and L*V are.
    """
    n, width = logits.shape
    if width != num_simplices * vocab:
        raise SemprobeError(f"logits have {width} columns, not L*V = {num_simplices}*{vocab}")
    log_v = math.log(vocab) if vocab > 1 else 1.0
    edges = np.linspace(0.0, log_v, bins + 1)
    n_classes = len(class_names) if class_names is not None else 0
    if labels is not None and n_classes == 0:
        n_classes = int(labels.max()) + 1
    rows = max(1, _CHUNK_ELEMS // max(width, 1))
    t_count = len(taus)
    s1 = np.zeros((t_count, num_simplices))
    s2 = np.zeros((t_count, num_simplices))
    hist = np.zeros((t_count, bins), dtype=np.int64)
    class_sum = np.zeros((t_count, max(n_classes, 1)))
    one_hot = np.zeros(t_count, dtype=np.int64)
    uniform = np.zeros(t_count, dtype=np.int64)
    for start in range(0, n, rows):
        chunk = torch.from_numpy(np.array(logits[start : start + rows], dtype=np.float32))
        for t, tau in enumerate(taus):
            h = simplex_entropy(chunk, num_simplices, vocab, tau).numpy().astype(np.float64)
            s1[t] += h.sum(axis=0)
            s2[t] += np.square(h).sum(axis=0)
            hist[t] += np.histogram(np.clip(h, 0.0, log_v), bins=edges)[0]
            one_hot[t] += int(np.count_nonzero(h < eps))
            uniform[t] += int(np.count_nonzero(h > log_v - eps))
            if labels is not None:
                class_sum[t] += np.bincount(
                    labels[start : start + rows], weights=h.mean(axis=1), minlength=n_classes
                )
    mean = s1 / n
    std = np.sqrt(np.maximum(s2 / n - np.square(mean), 0.0))
    tau_col = np.repeat(np.asarray(taus, dtype=np.float64), num_simplices)
    per_simplex = pd.DataFrame(
        {
            "tau": tau_col,
            "simplex": np.tile(np.arange(num_simplices), t_count),
            "mean": mean.reshape(-1),
            "std": std.reshape(-1),
            "mean_norm": mean.reshape(-1) / log_v,
        }
    )
    histogram = pd.DataFrame(
        {
            "tau": np.repeat(np.asarray(taus, dtype=np.float64), bins),
            "bin_left": np.tile(edges[:-1], t_count),
            "bin_right": np.tile(edges[1:], t_count),
            "count": hist.reshape(-1),
        }
    )
    per_class, per_superclass = _class_tables(taus, class_sum, labels, class_names, superclass_of)
    total = n * num_simplices
    summary = pd.DataFrame(
        {
            "tau": np.asarray(taus, dtype=np.float64),
            "mean": s1.sum(axis=1) / total,
            "std": np.sqrt(
                np.maximum(s2.sum(axis=1) / total - np.square(s1.sum(axis=1) / total), 0)
            ),
            "mean_norm": s1.sum(axis=1) / total / log_v,
            "frac_one_hot": one_hot / total,
            "frac_uniform": uniform / total,
        }
    )
    return LiveEntropy(per_simplex, histogram, per_class, per_superclass, summary)


def _class_tables(
    taus: Sequence[float],
    class_sum: np.ndarray,
    labels: np.ndarray | None,
    class_names: Sequence[str] | None,
    superclass_of: dict[str, str] | None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    columns = ["tau", "class", "mean", "n_samples"]
    if labels is None:
        return pd.DataFrame(columns=columns), pd.DataFrame(
            columns=["tau", "superclass", "mean", "n_samples"]
        )
    n_classes = class_sum.shape[1]
    counts = np.bincount(labels, minlength=n_classes)
    names = list(class_names) if class_names else [str(c) for c in range(n_classes)]
    present = np.flatnonzero(counts)
    frames = []
    for t, tau in enumerate(taus):
        frames.append(
            pd.DataFrame(
                {
                    "tau": float(tau),
                    "class": [names[c] for c in present],
                    "mean": class_sum[t, present] / counts[present],
                    "n_samples": counts[present],
                }
            )
        )
    per_class = pd.concat(frames, ignore_index=True)
    if not superclass_of:
        return per_class, pd.DataFrame(columns=["tau", "superclass", "mean", "n_samples"])
    work = per_class.assign(
        superclass=per_class["class"].map(superclass_of),
        weighted=per_class["mean"] * per_class["n_samples"],
    )
    grouped = work.groupby(["tau", "superclass"], sort=True)[["weighted", "n_samples"]].sum()
    per_superclass = grouped.assign(mean=grouped["weighted"] / grouped["n_samples"]).reset_index()
    return per_class, per_superclass[["tau", "superclass", "mean", "n_samples"]]


def weight_mass(coef: np.ndarray, num_simplices: int, vocab: int) -> np.ndarray:
    """Per simplex, the probe's total absolute weight over its V features, summed over classes."""
    if coef.shape[1] != num_simplices * vocab:
        raise SemprobeError(
            f"the probe has {coef.shape[1]} features, not L*V = {num_simplices * vocab}"
        )
    return np.abs(coef).reshape(coef.shape[0], num_simplices, vocab).sum(axis=(0, 2))


def relevance_contribution(concepts: pd.DataFrame | None, num_simplices: int) -> pd.DataFrame:
    """Per simplex: vertices kept in W_K and, of those, vertices coherent in one superclass."""
    kept = np.zeros(num_simplices, dtype=np.int64)
    coherent = np.zeros(num_simplices, dtype=np.int64)
    if concepts is not None and len(concepts) and "simplex" in concepts:
        sem = concepts[(concepts["simplex"] >= 0) & (concepts["simplex"] < num_simplices)]
        simplex = sem["simplex"].to_numpy(dtype=np.int64)
        kept = np.bincount(simplex, minlength=num_simplices)
        coherent = np.bincount(
            simplex, weights=sem["coherent"].astype(bool).to_numpy(), minlength=num_simplices
        ).astype(np.int64)
    return pd.DataFrame({"simplex": np.arange(num_simplices), "kept": kept, "coherent": coherent})


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
        return np.lexsort(
            (index, -contribution["kept"].to_numpy(), -contribution["coherent"].to_numpy())
        )
    raise SemprobeError(f"cannot order simplices by {by!r} for this model")


def graph_at_k(coef: np.ndarray, k: int, rule: str = "category") -> FeatureCategoryGraph:
    """W_K recomputed from the probe weights."""
    return top_k_graph(coef, k, rule="feature" if rule == "feature" else "category")


def relevance_at_k(
    graph: FeatureCategoryGraph, superclasses: Sequence[str], multiplicity: bool = False
) -> float:
    """Mean superclass relevance of ``graph`` (NaN when every category is isolated)."""
    counts = two_neighbours(graph, multiplicity=multiplicity)
    return float(relevance(counts, list(superclasses), multiplicity=multiplicity).mean)


def isolated_categories(graph: FeatureCategoryGraph) -> int:
    """Categories without any 2-neighbour in ``graph``."""
    return int(np.count_nonzero(two_neighbours(graph).sum(axis=1) == 0))


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
