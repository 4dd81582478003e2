"""OWL-QN (Andrew & Gao, ICML 2007): L-BFGS for a smooth loss plus a weighted L1 penalty.

Each iteration stays in one orthant: coordinates that would change sign during a step are set to
exactly 0, so the solution has true zeros. Each evaluation of the objective is one pass over the
data and the line search almost always accepts its first trial, so an iteration costs about one
pass. The method needs no step size and uses no randomness; why it was chosen over stochastic and
proximal methods is in ``docs/probe.md``.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import torch
from torch import Tensor

from semprobe.probe.objective import Objective

# Armijo constant, and most trials of one line search before the fit is declared converged
# (float32 rounding, not a bad direction, is then what stops the decrease).
_ARMIJO = 1e-4
_MAX_TRIALS = 10
# Factor by which the first trial of a line search may exceed the previous accepted step. Near
# separability the loss is flat along small steps and explodes along long ones, so the
# quasi-Newton step overshoots by the same large factor several times in a row: starting from a
# few times the last accepted step, instead of 1, saves those passes.
_STEP_GROWTH = 4.0


@dataclass
class SolveResult:
    """Where :func:`owlqn` stopped.

    Attributes
    ----------
    theta:
        The final parameters.
    objective:
        Smooth loss plus penalty at ``theta``.
    passes:
        Passes over the data used.
    converged:
        Whether it stopped on the tolerance (or at a stationary point) rather than on the budget.
    """

    theta: Tensor
    objective: float
    passes: int
    converged: bool


def owlqn(
    fun: Objective,
    theta: Tensor,
    pen: Tensor,
    trace: float,
    max_passes: int,
    tol: float,
    history: int,
    verbose: bool,
) -> SolveResult:
    """Minimise ``fun(theta) + sum(pen * |theta|)`` with OWL-QN; at most ``max_passes`` passes.

    Parameters
    ----------
    fun:
        The smooth part; counts its own passes.
    theta, pen:
        Starting point (not modified), and the L1 weight of each of its coordinates (0: none).
    trace:
        Trace of the feature covariance: it bounds the curvature, for a safe first step.
    max_passes, tol, history, verbose:
        Most evaluations of ``fun``; the relative decrease that stops the solver when two
        successive iterations fall below it; curvature pairs remembered; print every iteration.

    Returns
    -------
    SolveResult
        The final point and how the solver stopped.
    """
    penalised = pen > 0
    value, grad = fun(theta)
    obj = value + _penalty(pen, theta)
    memory = _CurvatureMemory(history)
    first_step = _safe_step(trace, fun.l2)
    small_steps = 0
    last_step = 1.0
    converged = False
    while fun.passes < max_passes:
        pgrad = pseudo_gradient(theta, grad, pen)
        if float(pgrad.abs().max()) == 0.0:
            converged = True
            break
        direction = _direction(memory, pgrad, penalised, first_step)
        step = min(1.0, _STEP_GROWTH * last_step)
        found = _line_search(fun, theta, obj, pgrad, direction, pen, step, max_passes)
        if found is None:
            # No decrease left that float32 can resolve: the current point is the answer.
            converged = fun.passes < max_passes
            break
        last_step = found.step
        memory.add(found.theta - theta, found.grad - grad)
        decrease = (obj - found.objective) / max(abs(obj), abs(found.objective), 1.0)
        theta, grad, obj = found.theta, found.grad, found.objective
        if verbose:
            _report(fun.passes, obj, found.step, theta, penalised)
        # Two small decreases in a row: one alone can follow a curvature-memory reset.
        small_steps = small_steps + 1 if decrease < tol else 0
        if small_steps >= 2:
            converged = True
            break
    return SolveResult(theta=theta, objective=obj, passes=fun.passes, converged=converged)


def pseudo_gradient(theta: Tensor, grad: Tensor, pen: Tensor) -> Tensor:
    """Minimum-norm subgradient of ``smooth + sum(pen * |theta|)``, given the smooth ``grad``.

    Examples
    --------
    >>> import torch
    >>> pseudo_gradient(torch.tensor([0.0, 0.0, 1.0]), torch.tensor([0.5, 2.0, 0.5]),
    ...                 torch.ones(3)).tolist()
    [0.0, 1.0, 1.5]
    """
    plus, minus = grad + pen, grad - pen
    at_zero = torch.where(plus < 0, plus, torch.where(minus > 0, minus, torch.zeros_like(grad)))
    return torch.where(theta > 0, plus, torch.where(theta < 0, minus, at_zero))


def _dot(a: Tensor, b: Tensor) -> float:
    return float(torch.dot(a.reshape(-1).double(), b.reshape(-1).double()))


def _penalty(pen: Tensor, theta: Tensor) -> float:
    return float((pen * theta.abs()).sum())


def _safe_step(trace: float, l2: float) -> float:
    """A first step that cannot overshoot: the inverse of a bound on the curvature.

    The Boehning bound of the softmax Hessian is ``1/2 * lambda_max(Cov(x)) + l2``; the trace
    bounds ``lambda_max`` without an extra pass for a power iteration.
    """
    return 1.0 / (0.5 * max(trace, 1e-12) + l2 + 1e-12)


class _CurvatureMemory:
    """The last ``size`` curvature pairs ``(s, y)`` of L-BFGS, applied as an inverse Hessian."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.clear()

    def clear(self) -> None:
        self.s: list[Tensor] = []
        self.y: list[Tensor] = []
        self.rho: list[float] = []

    def add(self, s: Tensor, y: Tensor) -> None:
        """Remember the pair unless its curvature ``s . y`` is not clearly positive."""
        sy = _dot(s, y)
        if sy > 1e-10 * math.sqrt(_dot(s, s) * _dot(y, y)):
            self.s.append(s)
            self.y.append(y)
            self.rho.append(1.0 / sy)
            if len(self.s) > self.size:
                self.s.pop(0)
                self.y.pop(0)
                self.rho.pop(0)

    def apply(self, vector: Tensor, first_step: float) -> Tensor:
        """``H @ vector`` by the two-loop recursion; ``H = first_step * I`` while empty."""
        q = vector
        alphas = []
        for s, yv, rho in zip(reversed(self.s), reversed(self.y), reversed(self.rho), strict=True):
            a = rho * _dot(s, q)
            q = q - a * yv
            alphas.append(a)
        if self.s:
            q = q * (_dot(self.s[-1], self.y[-1]) / _dot(self.y[-1], self.y[-1]))
        else:
            q = q * first_step
        for s, yv, rho, a in zip(self.s, self.y, self.rho, reversed(alphas), strict=True):
            q = q + (a - rho * _dot(yv, q)) * s
        return q


def _direction(
    memory: _CurvatureMemory, pgrad: Tensor, penalised: Tensor, first_step: float
) -> Tensor:
    """The quasi-Newton direction ``-H pgrad``, kept to a descent direction of the orthant."""
    q = memory.apply(-pgrad, first_step)
    # Keep only the components that descend along -pgrad in the penalised coordinates.
    direction = torch.where(penalised & (q * pgrad >= 0), torch.zeros_like(q), q)
    if _dot(pgrad, direction) >= 0:
        # Curvature pairs that no longer describe the problem: restart from steepest descent.
        memory.clear()
        direction = -pgrad * first_step
    return direction


@dataclass
class _Step:
    """An accepted trial point of a line search."""

    theta: Tensor
    grad: Tensor
    objective: float
    step: float


def _line_search(
    fun: Objective,
    theta: Tensor,
    obj: float,
    pgrad: Tensor,
    direction: Tensor,
    pen: Tensor,
    step: float,
    max_passes: int,
) -> _Step | None:
    """Backtrack from ``step`` along ``direction``, projected on the orthant, until Armijo holds.

    Returns ``None`` when ``_MAX_TRIALS`` trials or the pass budget are used up.
    """
    penalised = pen > 0
    orthant = torch.where(theta != 0, torch.sign(theta), torch.sign(-pgrad))
    for _ in range(_MAX_TRIALS):
        if fun.passes >= max_passes:
            return None
        trial = theta + step * direction
        trial = torch.where(penalised & (torch.sign(trial) != orthant), 0.0, trial)
        t_value, t_grad = fun(trial)
        t_obj = t_value + _penalty(pen, trial)
        predicted = _dot(pgrad, trial - theta)
        if t_obj <= obj + _ARMIJO * predicted:
            return _Step(theta=trial, grad=t_grad, objective=t_obj, step=step)
        step *= _shrink(obj, t_obj, predicted)
    return None


def _shrink(obj: float, t_obj: float, predicted: float) -> float:
    """Factor by which to shrink a trial step whose objective ``t_obj`` was not low enough.

    The minimiser of the quadratic through ``obj``, the slope and ``t_obj``, kept within
    ``[0.1, 0.5]`` of the step: saturated softmaxes make the first trial overshoot by orders of
    magnitude, where plain halving would waste many passes.
    """
    excess = t_obj - obj - predicted
    shrink = -predicted / (2.0 * excess) if math.isfinite(t_obj) and excess > 0 else 0.1
    return min(0.5, max(0.1, shrink))


def _report(passes: int, obj: float, step: float, theta: Tensor, penalised: Tensor) -> None:
    nnz = int((theta[penalised] != 0).sum()) if bool(penalised.any()) else theta.numel()
    print(
        f"[SparseLogisticProbe] pass {passes:4d}  objective {obj:.6f}  "
        f"step {step:.3g}  nonzero {nnz}",
        file=sys.stderr,
    )
