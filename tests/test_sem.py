"""The SEM op and per-simplex entropy against float64 references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import softmax as scipy_softmax
from scipy.stats import entropy as scipy_entropy

from semprobe.errors import SemprobeError
from semprobe.sem import SimplicialEmbedding, sem_softmax, simplex_entropy


def reference(logits: np.ndarray, L: int, V: int, tau: float) -> np.ndarray:
    grouped = logits.astype(np.float64).reshape(-1, L, V) / tau
    return scipy_softmax(grouped, axis=-1).reshape(logits.shape)


@pytest.mark.parametrize("tau", [1e-4, 0.01, 0.1, 1.0, 10.0])
def test_softmax_matches_float64_reference(tau: float) -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(7, 6 * 13)).astype(np.float32)
    got = sem_softmax(torch.from_numpy(logits), 6, 13, tau).numpy()
    np.testing.assert_allclose(got, reference(logits, 6, 13, tau), atol=2e-6)
    np.testing.assert_allclose(got.reshape(7, 6, 13).sum(-1), 1.0, atol=1e-5)


def test_softmax_stable_for_large_logits_and_tiny_tau() -> None:
    logits = torch.tensor([[1e4, -1e4, 3e4, 0.0]])
    out = sem_softmax(logits, 2, 2, tau=1e-4)
    assert torch.isfinite(out).all()
    np.testing.assert_allclose(out.numpy(), [[1.0, 0.0, 1.0, 0.0]])


def test_entropy_matches_scipy_and_bounds() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, size=(5, 4 * 7))
    h = simplex_entropy(torch.from_numpy(logits), 4, 7, tau=0.7).numpy()
    probs = reference(logits, 4, 7, 0.7).reshape(5, 4, 7)
    np.testing.assert_allclose(h, scipy_entropy(probs, axis=-1), rtol=1e-10, atol=1e-12)
    assert (h >= 0).all() and (h <= math.log(7) + 1e-12).all()
    hn = simplex_entropy(torch.from_numpy(logits), 4, 7, tau=0.7, normalized=True).numpy()
    np.testing.assert_allclose(hn, h / math.log(7))


def test_entropy_of_hand_made_simplices() -> None:
    big = 1e4
    logits = torch.tensor(
        [[big, 0, 0, 0], [1.0, 1.0, 1.0, 1.0], [big, big, 0, 0]], dtype=torch.float64
    )
    h = simplex_entropy(logits, 1, 4).squeeze(-1).numpy()
    np.testing.assert_allclose(h, [0.0, math.log(4), math.log(2)], atol=1e-12)


@pytest.mark.parametrize("tau", [0, -1, float("nan"), float("inf"), "x"])
def test_bad_tau_is_refused(tau: object) -> None:
    with pytest.raises(SemprobeError, match="tau"):
        sem_softmax(torch.zeros(1, 4), 2, 2, tau)  # type: ignore[arg-type]


def test_width_must_be_L_times_V() -> None:
    with pytest.raises(SemprobeError, match="L\\*V"):
        sem_softmax(torch.zeros(1, 10), 3, 3)


def test_module_form_equals_function() -> None:
    x = torch.randn(3, 12)
    np.testing.assert_array_equal(
        SimplicialEmbedding(4, 3, 0.3)(x).numpy(), sem_softmax(x, 4, 3, 0.3).numpy()
    )


@settings(max_examples=60, deadline=None)
@given(
    L=st.integers(1, 6),
    V=st.integers(1, 9),
    tau=st.floats(1e-4, 1e3),
    scale=st.floats(0, 1e3),
    seed=st.integers(0, 2**16),
)
def test_properties(L: int, V: int, tau: float, scale: float, seed: int) -> None:
    logits = torch.from_numpy(np.random.default_rng(seed).normal(0, 1, (3, L * V)) * scale).float()
    probs = sem_softmax(logits, L, V, tau).reshape(3, L, V)
    assert torch.isfinite(probs).all() and (probs >= 0).all()
    torch.testing.assert_close(probs.sum(-1), torch.ones(3, L), atol=1e-5, rtol=0)
    h = simplex_entropy(logits, L, V, tau)
    assert (h >= 0).all() and (h <= math.log(V) + 1e-5).all()


def test_the_analysis_kernel_keeps_sharp_entropies_that_float32_rounds_away() -> None:
    """Near one-hot at tau 0.1, H is ~1e-7: in float32, ln(sum exp) rounds 1 + R to 1 or to the
    next float, an error as large as H. The entropy analysis takes ln(1 + R) without that
    rounding and matches the float64 definition to 1e-5 relative."""
    from semprobe.entropy import entropy_kernel

    rng = np.random.default_rng(2)
    logits = rng.normal(0, 0.05, size=(50, 3 * 13)).astype(np.float32)
    logits[:, ::13] += 2.2
    exact = simplex_entropy(torch.from_numpy(logits).double(), 3, 13, tau=0.1).numpy()
    assert exact.min() > 1e-9 and exact.max() < 1e-5
    kernel = entropy_kernel(torch.from_numpy(logits), 3, 13, [0.1])[0].double().numpy()
    np.testing.assert_allclose(kernel, exact, rtol=1e-5)
    float32 = simplex_entropy(torch.from_numpy(logits), 3, 13, tau=0.1).double().numpy()
    assert np.abs(float32 - exact).max() > 10 * np.abs(kernel - exact).max()
