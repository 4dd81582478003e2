"""Mutual information between each simplex's vertex assignment and the labels.

A simplex ``i`` of a SEM model (Lavoie et al., ICLR 2023, arXiv 2204.00616) assigns every image
to the vertex of largest activation, ``argmax_j softmax(z_i / tau)_j``. How much that discrete
code tells about the class (or the superclass) is the mutual information (Cover & Thomas,
*Elements of Information Theory*, eq. 2.28) of the plug-in estimate from the contingency table,
in nats, the quantity scikit-learn's :func:`sklearn.metrics.mutual_info_score` computes for one
pair of labelings. Here it is computed for all L simplices at once from one ``np.bincount`` of
combined indices per label permutation.

The plug-in estimate is biased upwards by about ``(V - 1)(C - 1) / (2N)`` nats, so each value is
reported with a permutation baseline: the mean MI against seeded permutations of the labels,
and the excess over it.

Written by hand: scikit-learn scores one pair of labelings per call (5000 calls per table at the
paper's size, each with its own contingency matrix); the vectorised table is ours.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from semprobe.atomic import atomic_path, write_json
from semprobe.errors import SemprobeError
from semprobe.rundir import RunModel

#: The table's columns, in order.
COLUMNS = (
    "simplex",
    "mi_class",
    "mi_class_baseline",
    "mi_class_excess",
    "mi_superclass",
    "mi_superclass_baseline",
    "mi_superclass_excess",
)
TABLE_FILE = "simplex_information.csv"
META_FILE = "simplex_information.json"
ASSIGNMENTS_FILE = "simplex_assignments.npy"
TABLE_FORMAT = 1
DEFAULT_PERMUTATIONS = 10

# Entries of the (N, simplices) index block built at once: bounds memory to ~64 MB of int64.
_BLOCK_ENTRIES = 1 << 23


def vertex_assignments(logits: np.ndarray, num_simplices: int, vocab: int) -> np.ndarray:
    """The vertex of largest activation of every simplex, for every row of ``logits``.

    The SEM softmax is monotone in the logits, so the argmax is the same at every tau > 0; it is
    taken on the logits, where float32 softmax outputs saturated at 1.0 (small tau) cannot tie.
    Exact ties in the logits go to the lower vertex.

    Parameters
    ----------
    logits:
        ``(N, L*V)`` pre-softmax SEM logits, simplex-major (a memory map is read by row blocks).
    num_simplices, vocab:
        L and V.

    Returns
    -------
    numpy.ndarray
        ``(N, L)`` vertex indices, uint8 (uint16 when V > 256).

    Examples
    --------
    >>> z = np.array([[0.0, 2.0, 5.0, 1.0]])
    >>> vertex_assignments(z, 2, 2).tolist()
    [[1, 0]]
    """
    if logits.ndim != 2 or logits.shape[1] != num_simplices * vocab or vocab < 1:
        raise SemprobeError(
            f"logits of shape {logits.shape} are not (N, L*V) with L={num_simplices}, V={vocab}"
        )
    n = logits.shape[0]
    out = np.empty((n, num_simplices), dtype=np.uint8 if vocab <= 256 else np.uint16)
    rows = max(1, _BLOCK_ENTRIES // max(1, logits.shape[1]))
    for start in range(0, n, rows):
        block = np.asarray(logits[start : start + rows])
        if not np.isfinite(block).all():
            raise SemprobeError("the SEM logits hold NaN or infinite values")
        out[start : start + rows] = block.reshape(len(block), num_simplices, vocab).argmax(-1)
    return out


def _nlogn(n: int) -> np.ndarray:
    """``k ln k`` for ``k = 0..n`` (0 at 0): a lookup table for integer counts."""
    k = np.arange(n + 1, dtype=np.float64)
    return k * np.log(np.maximum(k, 1.0))


def _information(counts: np.ndarray, nlogn: np.ndarray) -> np.ndarray:
    """MI in nats of each ``(l, A, B)`` integer contingency table, clipped at 0 as sklearn does.

    ``MI = ln N + (sum n_ab ln n_ab - sum n_a ln n_a - sum n_b ln n_b) / N``, with the
    ``n ln n`` read from the table ``nlogn`` (no logarithm per cell).
    """
    n = int(counts[0].sum()) if len(counts) else 0
    if n == 0:
        return np.zeros(len(counts))
    joint = nlogn[counts].sum(axis=(1, 2))
    rows = nlogn[counts.sum(axis=2)].sum(axis=1)
    cols = nlogn[counts.sum(axis=1)].sum(axis=1)
    return np.maximum(np.log(n) + (joint - rows - cols) / n, 0.0)


def _contingency(
    base: np.ndarray, shape: tuple[int, int, int], labels: np.ndarray, work: np.ndarray
) -> np.ndarray:
    """``shape`` = (l, codes, labels) integer counts from ``base`` (N, l) cell offsets + labels.

    ``work`` is a reused (N, l) int64 buffer: a fresh one per label set costs its page faults.
    """
    np.add(base, labels[:, None], out=work)
    return np.bincount(work.ravel(), minlength=int(np.prod(shape))).reshape(shape)


def _base(codes: np.ndarray, n_codes: int, n_labels: int) -> np.ndarray:
    """Offset of the first cell of each entry's (column, code) row in the flat counts."""
    return (np.arange(codes.shape[1], dtype=np.int64) * n_codes + codes) * n_labels


def _columns(n: int, width: int) -> list[slice]:
    step = max(1, _BLOCK_ENTRIES // max(1, n))
    return [slice(s, min(s + step, width)) for s in range(0, width, step)]


def mutual_information(codes: np.ndarray, n_codes: int, labels: np.ndarray) -> np.ndarray:
    """MI in nats between every column of ``codes`` and ``labels``, vectorised over columns.

    Parameters
    ----------
    codes:
        ``(N, l)`` integer codes in ``[0, n_codes)`` (e.g. :func:`vertex_assignments`).
    n_codes:
        The number of possible codes (V).
    labels:
        ``(N,)`` non-negative integer labels.

    Returns
    -------
    numpy.ndarray
        ``(l,)`` float64; column ``i`` equals ``mutual_info_score(labels, codes[:, i])``.

    Examples
    --------
    >>> codes = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    >>> mutual_information(codes, 2, np.array([0, 0, 1, 1])).round(4).tolist()
    [0.6931, 0.0]
    """
    labels = np.asarray(labels, dtype=np.int64)
    n_labels = int(labels.max()) + 1 if len(labels) else 1
    nlogn = _nlogn(len(labels))
    out = np.zeros(codes.shape[1])
    for cols in _columns(len(labels), codes.shape[1]):
        base = _base(codes[:, cols], n_codes, n_labels)
        shape = (base.shape[1], n_codes, n_labels)
        out[cols] = _information(_contingency(base, shape, labels, np.empty_like(base)), nlogn)
    return out


def _check_labels(labels: np.ndarray, n: int, what: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != (n,) or labels.dtype.kind not in "iu" or (n and labels.min() < 0):
        raise SemprobeError(f"{what} must be {n} non-negative integers, got {labels.shape}")
    return labels.astype(np.int64)


def information_table(
    assignments: np.ndarray,
    vocab: int,
    labels: np.ndarray,
    superclass_of_class: Sequence[int] | None = None,
    permutations: int = DEFAULT_PERMUTATIONS,
    seed: int = 0,
) -> pd.DataFrame:
    """MI of every simplex with the class and the superclass, with a permutation baseline.

    Parameters
    ----------
    assignments:
        ``(N, L)`` vertex per image and simplex (:func:`vertex_assignments`).
    vocab:
        V.
    labels:
        ``(N,)`` class per image.
    superclass_of_class:
        Superclass index of every class; None leaves the superclass columns NaN.
    permutations, seed:
        The baseline is the mean MI over ``permutations`` seeded permutations of the labels (the
        superclass follows the permuted class, so both baselines use the same permutations).

    Returns
    -------
    pandas.DataFrame
        One row per simplex, the columns of :data:`COLUMNS`; ``*_excess`` is MI minus baseline.

    Examples
    --------
    >>> a = np.array([[0, 1], [0, 0], [1, 1], [1, 0]])
    >>> t = information_table(a, 2, np.array([0, 1, 2, 3]), [0, 0, 1, 1], permutations=4)
    >>> t[["simplex", "mi_class", "mi_superclass"]].round(4).values.tolist()
    [[0.0, 0.6931, 0.6931], [1.0, 0.6931, 0.0]]
    """
    n, width = assignments.shape
    labels = _check_labels(labels, n, "labels")
    if permutations < 1:
        raise SemprobeError(f"permutations must be at least 1, got {permutations}")
    n_classes = int(labels.max()) + 1 if n else 1
    indicator = None
    if superclass_of_class is not None:
        group = np.asarray(superclass_of_class, dtype=np.int64)
        if group.ndim != 1 or len(group) < n_classes or (len(group) and group.min() < 0):
            raise SemprobeError("superclass_of_class must give a superclass to every class")
        # Superclass counts are sums of class counts: (C, S) indicator.
        indicator = np.zeros((len(group), int(group.max()) + 1))
        indicator[np.arange(len(group)), group] = 1.0
        indicator = indicator[:n_classes]
    rng = np.random.default_rng(seed)
    label_sets = [labels] + [labels[rng.permutation(n)] for _ in range(permutations)]
    mi = np.zeros((2, len(label_sets), width))
    nlogn = _nlogn(n)
    for cols in _columns(n, width):
        base = _base(assignments[:, cols], vocab, n_classes)
        shape = (base.shape[1], vocab, n_classes)
        work = np.empty_like(base)
        for k, y in enumerate(label_sets):
            counts = _contingency(base, shape, y, work)
            mi[0, k, cols] = _information(counts, nlogn)
            if indicator is not None:
                # Exact: sums of integer counts, well below 2**53.
                mi[1, k, cols] = _information((counts @ indicator).astype(np.int64), nlogn)
    if indicator is None:
        mi[1] = np.nan
    table = {"simplex": np.arange(width)}
    for i, name in enumerate(("class", "superclass")):
        baseline = mi[i, 1:].mean(axis=0)
        table[f"mi_{name}"] = mi[i, 0]
        table[f"mi_{name}_baseline"] = baseline
        table[f"mi_{name}_excess"] = mi[i, 0] - baseline
    return pd.DataFrame(table, columns=list(COLUMNS))


def simplex_agreement(assignments: np.ndarray, vocab: int, simplex: int) -> pd.DataFrame:
    """Every other simplex, ranked by how much its vertex assignment shares with ``simplex``'s.

    The measure is the mutual information between the two assignments, not the correlation of
    vertex-probability vectors: a simplex's vertex numbering is arbitrary (vertex 3 of one simplex
    has no counterpart in another), and MI is invariant to relabelling the vertices, the same at
    every tau, in the nats of the class table, and it sees any dependence, not only a linear one.
    ``nmi`` is MI / mean of the two entropies (scikit-learn's ``normalized_mutual_info_score``,
    arithmetic mean), NaN when both simplices are constant.

    Returns
    -------
    pandas.DataFrame
        Columns ``simplex``, ``mi`` (nats), ``nmi``; highest ``nmi`` first (NaN last, ties by
        index); ``simplex`` itself is left out.

    Examples
    --------
    >>> a = np.array([[0, 1, 0], [0, 1, 1], [1, 0, 0], [1, 0, 1]])
    >>> simplex_agreement(a, 2, 0).round(4).values.tolist()
    [[1.0, 0.6931, 1.0], [2.0, 0.0, 0.0]]
    """
    n, width = assignments.shape
    if not 0 <= simplex < width:
        raise SemprobeError(f"simplex {simplex} is out of range [0, {width})")
    own = assignments[:, simplex].astype(np.int64)
    mi = mutual_information(assignments, vocab, own)
    entropy = np.empty(width)
    for cols in _columns(n, width):
        shift = np.arange(cols.stop - cols.start) * vocab
        counts = np.bincount((assignments[:, cols] + shift).ravel(), minlength=len(shift) * vocab)
        p = counts.reshape(-1, vocab) / max(n, 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            entropy[cols] = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
    mean = (entropy + entropy[simplex]) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        nmi = np.where(mean > 0, mi / mean, np.nan)
    others = np.delete(np.arange(width), simplex)
    key = np.where(np.isnan(nmi[others]), -np.inf, nmi[others])
    order = others[np.lexsort((others, -key))]
    return pd.DataFrame({"simplex": order, "mi": mi[order], "nmi": nmi[order]})


def _fingerprint(*arrays: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def _spec(model: RunModel) -> tuple[int, int]:
    spec = model.info.get("spec") or {}
    num_simplices, vocab = int(spec.get("num_simplices") or 0), int(spec.get("vocab") or 0)
    if num_simplices < 1 or vocab < 1:
        raise SemprobeError(f"{model.name} has no SEM layer: it has no simplices")
    return num_simplices, vocab


def run_assignments(model: RunModel) -> np.ndarray:
    """:func:`vertex_assignments` of a run model's test logits, cached in the model's folder.

    The cache (``<model>/simplex_assignments.npy``, N x L bytes against the N x L*V floats of the
    logits) is written atomically when the run directory is writable; without it the assignments
    are computed and returned.
    """
    num_simplices, vocab = _spec(model)
    logits = model.logits()
    if logits is None:
        raise SemprobeError(f"{model.name} has no logits.npy: only SEM models have")
    cached = model.run.path_of(f"{model.name}/{ASSIGNMENTS_FILE}", must_exist=False)
    expected = (logits.shape[0], num_simplices)
    if cached.is_file():
        array = model.run.load_array(f"{model.name}/{ASSIGNMENTS_FILE}")
        if array.shape == expected and array.dtype.kind == "u":
            return np.asarray(array)
    assignments = vertex_assignments(logits, num_simplices, vocab)
    with contextlib.suppress(SemprobeError), atomic_path(cached, suffix=".npy") as tmp:
        np.save(tmp, assignments)  # not kept in a read-only run: the values are still right
    return assignments


def superclass_codes(
    class_names: Sequence[str], superclass_of: Mapping[str, str] | None
) -> list[int] | None:
    """Superclass index of every class (in order of first appearance), or None without a map.

    A class the map leaves out is its own superclass, as in the dashboard.

    Examples
    --------
    >>> superclass_codes(["cat", "dog", "oak"], {"cat": "pet", "dog": "pet", "oak": "tree"})
    [0, 0, 1]
    """
    if not superclass_of:
        return None
    names = [str(superclass_of.get(c, c)) for c in class_names]
    index = {name: i for i, name in enumerate(dict.fromkeys(names))}
    return [index[name] for name in names]


def _table_meta(
    num_simplices: int,
    vocab: int,
    labels: np.ndarray,
    groups: list[int] | None,
    permutations: int,
    seed: int,
) -> dict[str, object]:
    """The settings a kept table was computed with (compared before it is reused)."""
    return {
        "format": TABLE_FORMAT,
        "permutations": int(permutations),
        "seed": int(seed),
        "num_simplices": int(num_simplices),
        "vocab": int(vocab),
        "labels": _fingerprint(
            np.asarray(labels, dtype=np.int64),
            np.asarray(groups if groups is not None else [-1], dtype=np.int64),
        ),
    }


def _write_table(folder: Path, table: pd.DataFrame, meta: dict[str, object]) -> None:
    with atomic_path(folder / TABLE_FILE, suffix=".csv") as tmp:
        table.to_csv(tmp, index=False)
    # The settings last: a table without them (a killed write) is never reused.
    write_json(folder / META_FILE, meta)


def keep_information(
    folder: str | os.PathLike[str],
    logits: np.ndarray,
    num_simplices: int,
    vocab: int,
    labels: np.ndarray,
    class_names: Sequence[str],
    superclass_of: Mapping[str, str] | None,
    permutations: int = DEFAULT_PERMUTATIONS,
    seed: int = 0,
) -> pd.DataFrame:
    """Compute the table of a model's test logits and write it into the model's ``folder``.

    For a run being built (e.g. by the relevance procedure): writes ``simplex_assignments.npy``,
    ``simplex_information.csv`` and ``.json`` atomically, exactly as :func:`run_information`
    keeps them, so the dashboard and ``semprobe report`` reuse them. ``superclass_of`` is the
    class -> superclass map of the run's ``classes.json``.

    Raises
    ------
    SemprobeError
        If the inputs do not fit or a file cannot be written.
    """
    folder = Path(folder)
    assignments = vertex_assignments(logits, num_simplices, vocab)
    groups = superclass_codes(class_names, superclass_of)
    table = information_table(assignments, vocab, labels, groups, permutations, seed)
    with atomic_path(folder / ASSIGNMENTS_FILE, suffix=".npy") as tmp:
        np.save(tmp, assignments)
    _write_table(
        folder, table, _table_meta(num_simplices, vocab, labels, groups, permutations, seed)
    )
    return table


def _kept_table(model: RunModel, meta: dict[str, object]) -> pd.DataFrame | None:
    """The kept table if it was computed with ``meta`` and has the expected rows and columns."""
    meta_path = model.run.path_of(f"{model.name}/{META_FILE}", must_exist=False)
    table_path = model.run.path_of(f"{model.name}/{TABLE_FILE}", must_exist=False)
    if not (meta_path.is_file() and table_path.is_file()):
        return None
    try:
        if json.loads(meta_path.read_text()) != meta:
            return None
    except (OSError, ValueError):
        return None
    try:
        table = model.table(TABLE_FILE)
    except SemprobeError:  # a damaged table is recomputed
        return None
    if table is None or list(table.columns) != list(COLUMNS):
        return None
    return table if len(table) == meta["num_simplices"] else None


def run_information(
    model: RunModel, permutations: int = DEFAULT_PERMUTATIONS, seed: int = 0
) -> pd.DataFrame:
    """:func:`information_table` of a run model, computed once and kept in its folder.

    The table is ``<model>/simplex_information.csv``, its settings ``simplex_information.json``
    (written after it); a kept table is reused when the settings, the labels and the shape of
    the logits match, and recomputed otherwise. Superclasses are those of the run's
    ``classes.json`` (NaN columns when it has none). A read-only run gets the table without
    keeping it.
    """
    num_simplices, vocab = _spec(model)
    labels = model.run.labels()
    groups = superclass_codes(model.run.class_names, model.run.superclass_of)
    meta = _table_meta(num_simplices, vocab, labels, groups, permutations, seed)
    kept = _kept_table(model, meta)
    if kept is not None:
        return kept
    assignments = run_assignments(model)
    if len(labels) != len(assignments):
        raise SemprobeError(
            f"{model.name}: {len(assignments)} rows of logits but {len(labels)} test labels"
        )
    table = information_table(assignments, vocab, labels, groups, permutations, seed)
    with contextlib.suppress(SemprobeError):  # a read-only run: right values, not kept
        _write_table(model.folder, table, meta)
    return table
