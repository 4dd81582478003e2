"""The scikit-learn estimator :class:`SparseLogisticProbe`: fitting, ``l1="auto"`` and prediction.

It ties the parts together: :mod:`~semprobe.probe.params` checks the hyperparameters,
:mod:`~semprobe.probe.inputs` the data, :mod:`~semprobe.probe.stream` reads it in blocks,
:mod:`~semprobe.probe.owlqn` minimises the :mod:`~semprobe.probe.objective`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted
from torch import Tensor

from semprobe.probe.errors import ProbeError
from semprobe.probe.inputs import as_2d, check_labels
from semprobe.probe.metrics import top_k_accuracy
from semprobe.probe.objective import Objective
from semprobe.probe.owlqn import SolveResult, owlqn
from semprobe.probe.params import (
    FitParams,
    check_batch_size,
    check_device,
    check_threads,
    fit_params,
)
from semprobe.probe.selection import best_l1, validation_split
from semprobe.probe.stats import feature_stats
from semprobe.probe.stream import RowStream
from semprobe.probe.threads import threads_for

# Weights and intercepts of one solution, as the estimator stores them.
_Solution = tuple[np.ndarray, np.ndarray]


class SparseLogisticProbe(ClassifierMixin, BaseEstimator):
    """Multinomial logistic regression with an L1 (and optional L2) penalty, fitted in torch.

    ``loss = mean cross-entropy + l1 * ||W||_1 + l2 / 2 * ||W||_2^2`` (intercept not penalised);
    scikit-learn's ``C`` for a pure L1 penalty is :func:`~semprobe.probe.sklearn_C`. ``X`` is
    read in blocks of ``batch_size`` rows and converted to float32 one block at a time, so an
    ``np.memmap`` of any size can be used: memory is about ``batch_size * n_features * 4`` bytes
    for the block plus ``(2 * history + 6) * n_classes * n_features * 4`` bytes for the weights,
    gradients and quasi-Newton memory. The solver (OWL-QN) uses no randomness; fits on the CPU
    are byte-for-byte repeatable. Design and measurements: ``docs/probe.md``.

    Parameters
    ----------
    l1:
        L1 strength ``>= 0``, or ``"auto"``: pick it from ``l1_grid`` by accuracy on a held-out
        ``validation_fraction`` of the training rows (split with ``random_state``, stratified when
        every class has two rows), then refit on all rows. ``l1=0`` gives dense weights.
    l2:
        L2 strength ``>= 0``.
    max_epochs:
        Most function-and-gradient passes over the data (per fit; ``l1="auto"`` makes one fit per
        grid value and a final one).
    batch_size:
        Rows read and multiplied at a time. Changes neither the objective nor the solution beyond
        float32 rounding; bounds memory.
    tol:
        Stop when the objective decreases by less than ``tol`` (relative) in two successive
        iterations.
    device:
        Torch device for the arithmetic, e.g. ``"cpu"`` or ``"cuda"``.
    random_state:
        Seed of the validation split for ``l1="auto"`` (the solver itself is deterministic).
    verbose:
        Print the objective after every iteration to stderr.
    fit_intercept:
        Fit one unpenalised intercept per class.
    history:
        Number of curvature pairs the quasi-Newton method remembers.
    l1_grid:
        Values tried by ``l1="auto"``; ``None`` means :data:`~semprobe.probe.DEFAULT_L1_GRID`.
    validation_fraction:
        Share of the training rows held out by ``l1="auto"``, in ``(0, 1)``.
    n_threads:
        CPU threads for the arithmetic of ``fit`` and the predictions (torch's global setting is
        restored afterwards). ``None`` keeps torch's setting, except that problems too small to
        gain from threads run on one. On a shared machine whose cores are all busy, one thread
        can be faster than several.
    warm_start:
        Start a fixed-``l1`` fit from the ``coef_`` and ``intercept_`` already set (by an earlier
        fit, or by hand) when they have this fit's classes and feature count, as scikit-learn's
        ``warm_start``; otherwise, and with ``l1="auto"``, start from the all-zero model. The
        solution is the same up to the solver's ``tol``; a refit on a resample of the data then
        takes a few passes instead of tens.

    Attributes
    ----------
    coef_:
        ``(n_classes, n_features)`` float32 weights, exactly 0 where L1 removed a feature. Two
        classes also get two rows (unlike scikit-learn's one).
    intercept_:
        ``(n_classes,)`` float32.
    classes_:
        Sorted unique training labels; column ``j`` of every score matrix is ``classes_[j]``.
    n_iter_:
        Function-and-gradient passes over the data of the final fit (each fit also makes one
        cheaper pass for the feature means, not counted here).
    n_features_in_:
        Number of features seen in ``fit``.
    l1_:
        The L1 strength used for the final fit (the chosen one with ``l1="auto"``).
    objective_:
        Final value of the penalised loss.
    converged_:
        Whether the fit stopped on ``tol`` rather than on ``max_epochs``.
    validation_scores_:
        ``l1="auto"`` only: ``{l1: validation accuracy}`` for every grid value.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 20)).astype(np.float32)
    >>> y = X[:, :3].argmax(axis=1)  # the class is the largest of features 0, 1 and 2
    >>> probe = SparseLogisticProbe(l1=0.05).fit(X, y)
    >>> probe.classes_, probe.coef_.shape
    (array([0, 1, 2]), (3, 20))
    >>> np.flatnonzero(probe.coef_.any(axis=0))  # the features that some class uses
    array([0, 1, 2])
    >>> probe.score(X, y) > 0.95
    True
    """

    def __init__(
        self,
        l1: float | str = 1e-4,
        l2: float = 0.0,
        max_epochs: int = 100,
        batch_size: int = 1024,
        tol: float = 1e-4,
        device: str = "cpu",
        random_state: int | None = 0,
        verbose: bool = False,
        fit_intercept: bool = True,
        history: int = 10,
        l1_grid: Sequence[float] | None = None,
        validation_fraction: float = 0.2,
        n_threads: int | None = None,
        warm_start: bool = False,
    ) -> None:
        self.l1 = l1
        self.l2 = l2
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.tol = tol
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.fit_intercept = fit_intercept
        self.history = history
        self.l1_grid = l1_grid
        self.validation_fraction = validation_fraction
        self.n_threads = n_threads
        self.warm_start = warm_start

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def _check_X(self, X: Any) -> Any:
        X = as_2d(X)
        if X.shape[1] != self.n_features_in_:
            raise ProbeError(
                f"X has {X.shape[1]} features, but SparseLogisticProbe is expecting "
                f"{self.n_features_in_} features as input"
            )
        return X

    # ------------------------------------------------------------------ fitting

    def fit(self, X: Any, y: Any) -> SparseLogisticProbe:
        """Fit the probe.

        Parameters
        ----------
        X:
            ``(n_samples, n_features)`` array-like: a NumPy array or ``np.memmap`` (any float or
            integer dtype, read block by block), a SciPy sparse matrix, or anything
            ``np.asarray`` accepts.
        y:
            ``(n_samples,)`` labels of any sortable type (integers, strings, ...), at least two
            distinct values.

        Returns
        -------
        SparseLogisticProbe
            ``self``.
        """
        params = fit_params(self)
        X = as_2d(X)
        n, d = X.shape
        previous = self._previous_solution()
        self.classes_, encoded = _encode(check_labels(y, n))
        self.n_features_in_ = d
        l1 = params.l1
        work = min(n, params.batch_size) * d * len(self.classes_)
        with threads_for(params.device, work, params.n_threads):
            start = self._warm_start(previous, d)
            if l1 == "auto":
                l1, start = self._select_l1(X, encoded, params)
            else:
                # A refit with a fixed l1 must not keep the scores of an earlier search.
                self.__dict__.pop("validation_scores_", None)
            result, mean = self._solve(X, None, encoded, float(l1), params, start)
        self._set_solution(result, mean, d)
        self.l1_ = float(l1)
        return self

    def _previous_solution(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """``(classes, coef, intercept)`` already set, when ``warm_start`` asks for them."""
        names = ("classes_", "coef_", "intercept_")
        if not self.warm_start or not all(hasattr(self, a) for a in names):
            return None
        classes, coef, intercept = (np.asarray(getattr(self, a)) for a in names)
        return classes, coef, intercept

    def _warm_start(
        self, previous: tuple[np.ndarray, np.ndarray, np.ndarray] | None, d: int
    ) -> _Solution | None:
        """The previous solution as a starting point, if it fits this fit's classes and ``d``."""
        if previous is None:
            return None
        classes, coef, intercept = previous
        shape = (len(self.classes_), d)
        if not np.array_equal(classes, self.classes_) or coef.shape != shape:
            return None
        if intercept.shape != shape[:1]:
            return None
        return (
            np.ascontiguousarray(coef, dtype=np.float32),
            np.ascontiguousarray(intercept, dtype=np.float32),
        )

    def _solve(
        self,
        X: Any,
        rows: np.ndarray | None,
        encoded: np.ndarray,
        l1: float,
        params: FitParams,
        start: _Solution | None,
    ) -> tuple[SolveResult, Tensor]:
        """Fit on ``X[rows]``, from ``start`` if given; returns the result and the feature means."""
        device = params.device
        n_classes = len(self.classes_)
        stream = RowStream(X, rows, params.batch_size, device)
        sub = encoded if rows is None else encoded[rows]
        stats = feature_stats(stream, center=bool(self.fit_intercept))
        y_t = torch.from_numpy(np.ascontiguousarray(sub)).to(device)
        fun = Objective(stream, y_t, n_classes, stats.mean, params.l2, bool(self.fit_intercept))
        theta = self._initial_theta(sub, n_classes, X.shape[1], stats.mean, start)
        pen = torch.full_like(theta, l1)
        pen[:, -1] = 0.0
        result = owlqn(
            fun,
            theta,
            pen,
            stats.trace,
            params.max_epochs,
            params.tol,
            params.history,
            bool(self.verbose),
        )
        return result, stats.mean

    def _initial_theta(
        self, sub: np.ndarray, n_classes: int, d: int, mean: Tensor, start: _Solution | None
    ) -> Tensor:
        """The solver's starting point: ``start`` in centred form, else the all-zero model."""
        theta = torch.zeros(n_classes, d + 1, dtype=torch.float32, device=mean.device)
        if start is not None:
            coef = torch.from_numpy(start[0]).to(mean.device)
            theta[:, :d] = coef
            if self.fit_intercept:
                theta[:, d] = torch.from_numpy(start[1]).to(mean.device) + coef @ mean
        elif self.fit_intercept:
            # The optimal intercept of the all-zero model: the log class priors.
            counts = np.bincount(sub, minlength=n_classes).astype(np.float64)
            priors = np.log(np.maximum(counts, 0.5) / len(sub))
            theta[:, d] = torch.from_numpy(priors - priors.mean()).float().to(mean.device)
        return theta

    def _solution(self, result: SolveResult, mean: Tensor, d: int) -> _Solution:
        """``(coef, intercept)`` of a result, back in terms of the uncentred features."""
        weights = result.theta[:, :d]
        bias = result.theta[:, d] - weights @ mean
        coef = weights.cpu().numpy().astype(np.float32, copy=True)
        intercept = bias.cpu().numpy().astype(np.float32, copy=True)
        if not self.fit_intercept:
            intercept[:] = 0.0
        return coef, intercept

    def _set_solution(self, result: SolveResult, mean: Tensor, d: int) -> None:
        self.coef_, self.intercept_ = self._solution(result, mean, d)
        self.n_iter_ = int(result.passes)
        self.objective_ = float(result.objective)
        self.converged_ = bool(result.converged)
        if not result.converged:
            warnings.warn(
                f"SparseLogisticProbe did not converge in max_epochs={self.max_epochs} passes "
                f"(tol={self.tol}); increase max_epochs",
                ConvergenceWarning,
                stacklevel=3,
            )

    def _select_l1(self, X: Any, encoded: np.ndarray, params: FitParams) -> tuple[float, _Solution]:
        """Choose ``l1`` from the grid by held-out accuracy; returns it and its solution."""
        train_rows, val_rows = validation_split(encoded, params.fraction, params.seed)
        val_stream = RowStream(X, val_rows, params.batch_size, params.device)
        scores: dict[float, float] = {}
        solutions: dict[float, _Solution] = {}
        start: _Solution | None = None
        # Strongest penalty first: each solution warm-starts the next, denser one.
        for value in sorted(set(params.grid), reverse=True):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                result, mean = self._solve(X, train_rows, encoded, value, params, start)
            start = solutions[value] = self._solution(result, mean, X.shape[1])
            pred = _stream_scores(val_stream, *start).argmax(axis=1)
            scores[value] = float(np.mean(pred == encoded[val_rows]))
        chosen = best_l1(scores)
        self.validation_scores_ = {v: scores[v] for v in sorted(scores)}
        return chosen, solutions[chosen]

    # ------------------------------------------------------------------ prediction

    def _scores(self, X: Any) -> np.ndarray:
        check_is_fitted(self, ("coef_", "intercept_", "classes_"))
        X = self._check_X(X)
        batch = check_batch_size(self.batch_size)
        device = check_device(self.device)
        stream = RowStream(X, None, batch, device)
        n_threads = check_threads(self.n_threads)
        with threads_for(device, min(stream.n, batch) * self.coef_.size, n_threads):
            return _stream_scores(stream, self.coef_, self.intercept_)

    def decision_function(self, X: Any) -> np.ndarray:
        """Class scores ``X @ coef_.T + intercept_``.

        Parameters
        ----------
        X:
            ``(n_samples, n_features)`` array-like (streamed like in :meth:`fit`).

        Returns
        -------
        np.ndarray
            ``(n_samples, n_classes)`` float32; for two classes the ``(n_samples,)`` difference
            ``score[:, 1] - score[:, 0]``, as scikit-learn returns.
        """
        scores = self._scores(X)
        if scores.shape[1] == 2:
            return scores[:, 1] - scores[:, 0]
        return scores

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities.

        Parameters
        ----------
        X:
            ``(n_samples, n_features)`` array-like.

        Returns
        -------
        np.ndarray
            ``(n_samples, n_classes)`` float64 softmax of the scores; rows sum to 1.
        """
        return np.exp(self.predict_log_proba(X))

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Log of :meth:`predict_proba`, computed stably.

        Parameters
        ----------
        X:
            ``(n_samples, n_features)`` array-like.

        Returns
        -------
        np.ndarray
            ``(n_samples, n_classes)`` float64.
        """
        scores = self._scores(X).astype(np.float64)
        scores -= scores.max(axis=1, keepdims=True)
        scores -= np.log(np.exp(scores).sum(axis=1, keepdims=True))
        return scores

    def predict(self, X: Any) -> np.ndarray:
        """Most likely class of each row.

        Parameters
        ----------
        X:
            ``(n_samples, n_features)`` array-like.

        Returns
        -------
        np.ndarray
            ``(n_samples,)`` labels taken from ``classes_``.
        """
        best = self._scores(X).argmax(axis=1)
        return np.asarray(self.classes_[best])

    def score_top_k(self, X: Any, y: Any, k: int = 5) -> float:
        """Top-``k`` accuracy on ``(X, y)`` (:meth:`score` is top-1).

        Parameters
        ----------
        X:
            ``(n_samples, n_features)`` array-like.
        y:
            ``(n_samples,)`` true labels.
        k:
            Number of top classes that count as a hit.

        Returns
        -------
        float
            Accuracy in ``[0, 1]``; see :func:`top_k_accuracy` for ties.
        """
        return top_k_accuracy(np.asarray(y), self._scores(X), k, classes=self.classes_)

    @property
    def sparsity_(self) -> float:
        """Fraction of exactly-zero weights in ``coef_``."""
        return float(np.mean(self.coef_ == 0))


def _encode(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sorted classes of ``labels`` (at least two) and each label's int64 class index."""
    try:
        classes, encoded = np.unique(labels, return_inverse=True)
    except TypeError as exc:
        raise ProbeError(f"y labels cannot be sorted: {exc}") from None
    if len(classes) < 2:
        raise ProbeError(
            f"y must hold at least 2 classes, got 1 class ({classes[0]!r}) in {len(labels)} "
            "sample(s)"
        )
    return classes, encoded.reshape(-1).astype(np.int64)


def _stream_scores(stream: RowStream, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """``(n, n_classes)`` float32 scores ``X @ coef.T + intercept`` of the stream's rows."""
    device = stream.device
    weights = torch.from_numpy(np.ascontiguousarray(coef)).to(device)
    bias = torch.from_numpy(np.ascontiguousarray(intercept)).to(device)
    out = np.empty((stream.n, coef.shape[0]), dtype=np.float32)
    for start, stop, block in stream:
        out[start:stop] = torch.addmm(bias, block, weights.T).cpu().numpy()
    # NaN or infinity in X always reaches the scores (inf * 0 is NaN), so checking the small
    # output is enough.
    if not np.isfinite(out).all():
        raise ProbeError("Input X contains NaN or infinity (or scores overflow float32)")
    return out
