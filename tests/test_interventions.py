"""Interventions on a simplex against the probe applied to the edited input directly."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from semprobe.errors import SemprobeError
from semprobe.interventions import LinearProbe, intervene, vertex_effects, vertex_profiles
from semprobe.probe import SparseLogisticProbe
from semprobe.sem import sem_softmax


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory):
    """The dashboard run's SEM logits (a real tiny model) and a probe fitted on their SEM output."""
    from tests.test_dashboard import build_run

    run = build_run(tmp_path_factory.getbasetemp())
    spec = json.loads((run / "sem" / "model.json").read_text())["spec"]
    logits = np.load(run / "sem" / "logits.npy").astype(np.float64)
    labels = np.load(run / "labels.npy")
    num_simplices, vocab, tau = spec["num_simplices"], spec["vocab"], 0.5
    sem = sem_softmax(torch.from_numpy(logits), num_simplices, vocab, tau).numpy()
    mean, std = sem.mean(axis=0), sem.std(axis=0) + 1e-6
    estimator = SparseLogisticProbe(l1=1e-3, max_epochs=30)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*converge.*")
        estimator.fit(((sem - mean) / std).astype(np.float32), labels)
    probe = LinearProbe(estimator.coef_, estimator.intercept_, tau, mean, std)
    return logits, labels, (num_simplices, vocab), estimator, probe


def edited_input(
    logits: np.ndarray, shape: tuple[int, int], tau: float, simplex: int, target: np.ndarray
) -> np.ndarray:
    num_simplices, vocab = shape
    sem = sem_softmax(torch.from_numpy(logits), num_simplices, vocab, tau).numpy()
    sem[:, simplex * vocab : (simplex + 1) * vocab] = target
    return sem


def test_one_hot_and_mean_profile_edits_match_the_probe_on_the_edited_input(fitted) -> None:
    logits, labels, shape, estimator, probe = fitted
    num_simplices, vocab = shape
    images = logits[labels == labels[0]]  # every test image of one class
    unedited = (_sem(images, shape, probe.tau) - probe.mean) / probe.std
    before = estimator.predict_proba(unedited.astype(np.float32))
    for simplex in (0, num_simplices - 1):
        profiles = vertex_profiles(logits, num_simplices, vocab, simplex, probe.tau)
        for vertex in range(vocab):
            for value, target in (("one-hot", np.eye(vocab)[vertex]), ("mean", profiles[vertex])):
                if not np.isfinite(target).all():
                    continue
                edit = intervene(
                    images, probe, num_simplices, vocab, simplex, vertex, value, profiles
                )
                x = edited_input(images, shape, probe.tau, simplex, target)
                direct = estimator.predict_proba(((x - probe.mean) / probe.std).astype(np.float32))
                assert edit.after == pytest.approx(direct, abs=2e-5), (simplex, vertex, value)
                assert edit.before == pytest.approx(before, abs=2e-5)
                assert np.allclose(edit.after.sum(axis=1), 1.0)
    # Some edit moves the probe: the intervention is not a no-op.
    effects = vertex_effects(images, probe, num_simplices, vocab, 0)
    assert effects.shape == (vocab, estimator.coef_.shape[0])
    assert np.abs(effects).max() > 1e-3
    assert np.allclose(effects.sum(axis=1), 0.0, atol=1e-9)  # probabilities still sum to 1
    for vertex in range(vocab):  # each row: the mean change of the probe on the edited input
        x = edited_input(images, shape, probe.tau, 0, np.eye(vocab)[vertex])
        direct = estimator.predict_proba(((x - probe.mean) / probe.std).astype(np.float32))
        assert effects[vertex] == pytest.approx((direct - before).mean(axis=0), abs=2e-5)


def _sem(logits: np.ndarray, shape: tuple[int, int], tau: float) -> np.ndarray:
    return sem_softmax(torch.from_numpy(logits), shape[0], shape[1], tau).numpy()


def test_profiles_are_means_over_the_assigned_images(fitted) -> None:
    logits, _, (num_simplices, vocab), _, probe = fitted
    simplex = 2
    profiles = vertex_profiles(logits, num_simplices, vocab, simplex, probe.tau)
    cols = slice(simplex * vocab, (simplex + 1) * vocab)
    p = _sem(logits, (num_simplices, vocab), probe.tau)[:, cols]
    assigned = logits[:, cols].argmax(axis=1)
    for v in range(vocab):
        if (assigned == v).any():
            assert profiles[v] == pytest.approx(p[assigned == v].mean(axis=0), abs=1e-12)
            assert profiles[v].argmax() == v
        else:
            assert np.isnan(profiles[v]).all()


def test_raw_probe_and_bad_edits(fitted) -> None:
    logits, _, (num_simplices, vocab), estimator, probe = fitted
    raw = LinearProbe(estimator.coef_, estimator.intercept_, probe.tau)
    one = logits[:1]
    edit = intervene(one, raw, num_simplices, vocab, 1, 3)
    x = edited_input(one, (num_simplices, vocab), probe.tau, 1, np.eye(vocab)[3])
    assert edit.after == pytest.approx(estimator.predict_proba(x.astype(np.float32)), abs=2e-5)
    with pytest.raises(SemprobeError, match="out of range"):
        intervene(one, raw, num_simplices, vocab, num_simplices, 0)
    with pytest.raises(SemprobeError, match="out of range"):
        intervene(one, raw, num_simplices, vocab, 0, vocab)
    with pytest.raises(SemprobeError, match="value must be"):
        intervene(one, raw, num_simplices, vocab, 0, 0, value="zero")
    empty = np.full((vocab, vocab), np.nan)
    with pytest.raises(SemprobeError, match="no mean profile"):
        intervene(one, raw, num_simplices, vocab, 0, 0, value="mean", profiles=empty)
