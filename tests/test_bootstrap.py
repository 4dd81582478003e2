"""Bootstrap intervals: resamples, planted and absent effects, pairing, files, the command line."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning

from semprobe.analysis import RelevanceSettings, bootstrap_relevance, lift_differences
from semprobe.analysis.bootstrap import Bootstrap, paired_difference, with_lift
from semprobe.bootstrap import (
    bootstrap_mean,
    check_confidence,
    check_resamples,
    percentile_interval,
    plain_resample,
    resample_rng,
    stratified_resample,
)
from semprobe.cli import main
from semprobe.errors import SemprobeError
from semprobe.graph import top_k_graph, two_neighbours
from semprobe.probe import SparseLogisticProbe
from semprobe.relevance import relevance
from semprobe.studies import load_study
from tests.conftest import save_tiny

# 12 classes in 3 superclasses of 4.
C = 12
SUPERCLASSES = [f"s{c // 4}" for c in range(C)]
PLANTED = [c // 4 for c in range(C)]  # shared columns follow the superclasses
CROSSING = [c % 3 for c in range(C)]  # shared columns cut across them (1 in 3 is a same-super)
SETTINGS = RelevanceSettings(k=2, k_max=3, bootstrap=20, epochs=100, l1=1e-2)


def _features(groups: list[int], n: int, seed: int, shared: float = 2.0, noise: float = 1.0):
    """Each class lifts its own column and the column of its group: ``C + 3`` features."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(C), n)
    x = noise * rng.normal(size=(len(y), C + 3))
    x[np.arange(len(y)), y] += 2.0
    x[np.arange(len(y)), C + np.asarray(groups)[y]] += shared
    return x.astype(np.float32), y


def _bootstrap(groups: list[int], seed: int, columns=None, **kw: float) -> Bootstrap:
    x_train, y_train = _features(groups, 30, seed, **kw)
    x_test, y_test = _features(groups, 10, seed + 1000, **kw)
    if columns is not None:  # the same features under other names
        x_train, x_test = x_train[:, columns], x_test[:, columns]
    return bootstrap_relevance(
        x_train, y_train, x_test, y_test, C, {"coarse": SUPERCLASSES}, SETTINGS
    )


def _ideal(groups: list[int]) -> float:
    """The relevance of W_2 when each class keeps exactly its own column and its group's."""
    weights = np.zeros((C, C + 3))
    weights[np.arange(C), np.arange(C)] = 2.0
    weights[np.arange(C), C + np.asarray(groups)] = 1.0
    return relevance(two_neighbours(top_k_graph(weights, 2)), SUPERCLASSES).mean


def _row(boot: Bootstrap, statistic: str, k: int | None = 2) -> pd.Series:
    table = boot.intervals()
    rows = table[table["statistic"] == statistic]
    if k is not None:
        rows = rows[rows["k"] == k]
    assert len(rows) == 1
    return rows.iloc[0]


def test_resamples_are_stratified_seeded_and_independent_of_their_number() -> None:
    labels = np.array([3, 3, 3, 7, 7, 9, 9, 9, 9, 9])
    rows = stratified_resample(labels, resample_rng(5, 0))
    assert rows.dtype == np.int64 and list(rows) == sorted(rows)
    # Each class keeps its count and draws only its own rows.
    np.testing.assert_array_equal(np.bincount(labels[rows]), np.bincount(labels))
    again = stratified_resample(labels, resample_rng(5, 0))
    np.testing.assert_array_equal(rows, again)
    others = [stratified_resample(labels, resample_rng(5, b)) for b in range(1, 6)]
    assert any(not np.array_equal(rows, o) for o in others)
    test_rows = plain_resample(7, resample_rng(0, 1))
    assert len(test_rows) == 7 and test_rows.min() >= 0 and test_rows.max() < 7
    # With replacement: over a few resamples some row repeats.
    assert any(len(set(stratified_resample(labels, resample_rng(0, b)))) < 10 for b in range(5))


def test_percentile_interval_and_bad_values() -> None:
    low, high, n = percentile_interval([np.nan, 1.0, 2.0, 3.0, 4.0, 5.0], 0.5)
    assert (low, high, n) == (2.0, 4.0, 5)
    assert percentile_interval([np.nan], 0.95)[2] == 0
    for bad in (0, -3, 2.5, True, "5"):
        with pytest.raises(SemprobeError, match="resamples >= 1"):
            check_resamples(bad)
    for bad_confidence in (0, 1, 1.5, -0.1, float("nan"), True):
        with pytest.raises(SemprobeError, match=r"in \(0, 1\)"):
            check_confidence(bad_confidence)
    with pytest.raises(SemprobeError, match="resamples"):
        RelevanceSettings(bootstrap=0)
    with pytest.raises(SemprobeError, match="confidence"):
        RelevanceSettings(bootstrap=5, confidence=1.0)


def test_warm_start_reaches_the_same_solution_in_fewer_passes() -> None:
    x, y = _features(PLANTED, 30, 0)
    cold = SparseLogisticProbe(l1=1e-2, max_epochs=300).fit(x, y)
    assert cold.converged_
    warm = SparseLogisticProbe(l1=1e-2, max_epochs=300, warm_start=True)
    warm.classes_, warm.coef_, warm.intercept_ = cold.classes_, cold.coef_, cold.intercept_
    warm.fit(x, y)
    assert warm.n_iter_ < cold.n_iter_ / 3
    np.testing.assert_allclose(warm.coef_, cold.coef_, atol=0.02)
    # A start that does not fit (other classes) is not used: the fit is the cold one, exactly.
    odd = SparseLogisticProbe(l1=1e-2, max_epochs=300, warm_start=True)
    odd.classes_, odd.coef_, odd.intercept_ = cold.classes_[:5], cold.coef_[:5], cold.intercept_[:5]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        odd.fit(x, y)
    assert odd.coef_.tobytes() == cold.coef_.tobytes()


def test_a_planted_effect_is_covered_and_its_lift_excludes_zero() -> None:
    planted = _bootstrap(PLANTED, 1)
    twin = _bootstrap(CROSSING, 2)
    assert planted.warm_start  # these fits converge, so resamples start from the full fit
    # Each class's top-2 is its own column and its superclass's: relevance is exactly 1.
    rel = _row(planted, "relevance_mean")
    assert rel.estimate == 1.0 and rel.low <= 1.0 <= rel.high and rel.low > 0.8 and rel.n == 20
    top1 = _row(planted, "top1", None)
    assert top1.low <= top1.estimate <= top1.high and top1.low > 0.3
    lifted = with_lift(planted, twin)
    lift = _row(lifted, "lift_vs_random_init")
    # The known lift: the relevance of the ideal graphs (own column + group column) differ by 5/6.
    known = _ideal(PLANTED) - _ideal(CROSSING)
    assert known == pytest.approx(5 / 6)
    assert lift.estimate == pytest.approx(known)
    assert lift.low > 0.3 and lift.low <= known <= lift.high
    curve = lifted.intervals().query("statistic == 'curve_lift'")
    assert list(curve["k"]) == [1, 2, 3]


@pytest.mark.parametrize("seed", [10, 11, 12])
def test_without_an_effect_the_lift_interval_contains_zero(seed: int) -> None:
    # Both models' shared columns cut across the superclasses; weak, noisy, different draws.
    model = _bootstrap(CROSSING, seed, shared=1.0, noise=1.5)
    twin = _bootstrap(CROSSING, seed + 50, shared=1.0, noise=1.5)
    lift = _row(with_lift(model, twin), "lift_vs_random_init")
    assert lift.n == 20 and lift.high > lift.low
    assert lift.low <= 0 <= lift.high


def test_the_difference_of_two_lifts() -> None:
    planted, twin = _bootstrap(PLANTED, 1), _bootstrap(CROSSING, 2)
    columns = np.random.default_rng(0).permutation(C + 3)
    copy = with_lift(_bootstrap(PLANTED, 1, columns), _bootstrap(CROSSING, 2, columns))
    none = with_lift(_bootstrap(CROSSING, 3), _bootstrap(CROSSING, 4))
    table = lift_differences({"planted": with_lift(planted, twin), "copy": copy, "none": none})
    assert list(zip(table["model"], table["other"], strict=True)) == [
        ("planted", "copy"),
        ("planted", "none"),
        ("copy", "none"),
    ]
    same, real, _ = table.itertuples(index=False)
    # A relabelled copy (its features renamed): no difference, not established.
    assert same.low <= 0 <= same.high and not same.established
    assert real.low > 0.3 and real.established


def test_an_unpaired_difference_is_refused() -> None:
    a = _bootstrap(PLANTED, 1)
    b = bootstrap_relevance(
        *_features(PLANTED, 30, 1),
        *_features(PLANTED, 10, 2),
        C,
        {"coarse": SUPERCLASSES},
        RelevanceSettings(k=2, k_max=3, bootstrap=20, epochs=100, l1=1e-2, seed=1),
    )
    with pytest.raises(SemprobeError, match="same images, resamples and seed"):
        paired_difference(a, b, {"relevance_mean": "lift"})


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], str]:
    root = tmp_path_factory.mktemp("bootstrap")
    sem = save_tiny(root / "sem.pt", seed=1)
    shutil.copy(sem, root / "copy.pt")  # the same model under another name
    argv = [
        "relevance",
        str(sem),
        str(root / "copy.pt"),
        "--dataset",
        "synthetic:train=4,test=1",
        "--k",
        "3",
        "--k-max",
        "4",
        "--epochs",
        "20",
        "--permutations",
        "20",
        "--reference",
        "random-init",
        "--bootstrap",
        "3",
        "--confidence",
        "0.9",
        "--seed",
        "7",
        "--cache-dir",
        str(root / "cache"),
        "--quiet",
        "--no-concepts",
    ]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main([*argv, "--out", str(root / "run")]) == 0
    return root, argv, printed.getvalue()


def test_the_command_line_writes_and_prints_the_intervals(
    cli_run: tuple[Path, list[str], str],
) -> None:
    root, _, out = cli_run
    rel = root / "run" / "sem" / "relevance"
    summary = json.loads((rel / "summary.json").read_text())
    entry = summary["bootstrap"]
    assert (entry["n"], entry["seed"], entry["confidence"], entry["k"]) == (3, 7, 0.9, 3)
    assert entry["relevance_mean"]["estimate"] == pytest.approx(summary["relevance"]["mean"])
    assert entry["top1"]["estimate"] == pytest.approx(summary["probe"]["top1"])
    assert entry["lift_vs_random_init"]["estimate"] == pytest.approx(summary["lift_vs_random_init"])
    table = pd.read_csv(rel / "bootstrap.csv")
    assert list(table.columns) == ["statistic", "superclasses", "k", "estimate", "low", "high", "n"]
    assert set(table["statistic"]) == {
        "relevance_mean",
        "curve_mean",
        "top1",
        "lift_vs_random_init",
        "curve_lift",
    }
    assert (table["low"] <= table["high"]).all() and (table["n"] == 3).all()
    replicates = pd.read_csv(rel / "bootstrap_replicates.csv")
    assert sorted(replicates["resample"].unique()) == [0, 1, 2]
    # The twin has its own intervals, and no lift.
    twin = pd.read_csv(root / "run" / "sem-random-init" / "relevance" / "bootstrap.csv")
    assert "lift_vs_random_init" not in set(twin["statistic"])
    # The copy's lift is the model's, resample by resample: the difference is 0, not established.
    differences = pd.read_csv(root / "run" / "lift_differences.csv")
    assert list(differences["model"]) == ["sem"] and list(differences["other"]) == ["copy"]
    assert differences.loc[0, ["estimate", "low", "high"]].tolist() == [0.0, 0.0, 0.0]
    assert not differences.loc[0, "established"]
    assert "90% percentile intervals from 3 resamples (seed 7)" in out
    # The run's K-curve figure carries the intervals as error bars.
    figure = (root / "run" / "relevance_curve.html").read_text()
    assert "sem: bootstrap interval" in figure and "copy: bootstrap interval" in figure
    assert "sem - copy (coarse): +0.000 [+0.000, +0.000] not established" in out


def test_bootstrap_files_are_reproducible(
    cli_run: tuple[Path, list[str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    root, argv, _ = cli_run
    assert main([*argv, "--out", str(root / "again")]) == 0
    capsys.readouterr()
    for model in ("sem", "sem-random-init"):
        for file in ("bootstrap.csv", "bootstrap_replicates.csv", "summary.json"):
            first = (root / "run" / model / "relevance" / file).read_bytes()
            assert first == (root / "again" / model / "relevance" / file).read_bytes(), file
    assert (root / "run" / "lift_differences.csv").read_bytes() == (
        root / "again" / "lift_differences.csv"
    ).read_bytes()


def test_a_study_file_asks_for_the_bootstrap(tmp_path: Path) -> None:
    ckpt = save_tiny(tmp_path / "m.pt")
    text = f'dataset = "synthetic"\n[checkpoints]\nm = "{ckpt.name}"\n[relevance]\n'
    knn = "[knn]\nbootstrap = 30\nks = [5]\n"
    good = 'analyses = ["relevance", "knn"]\n' + text
    (tmp_path / "good.toml").write_text(good + "bootstrap = 50\nconfidence = 0.9\n" + knn)
    study, _ = load_study(tmp_path / "good.toml")
    assert (study.relevance.bootstrap, study.relevance.confidence) == (50, 0.9)
    assert study.protocols.knn.bootstrap == 30 and list(study.checkpoints) == ["m"]
    (tmp_path / "bad.toml").write_text(text + "bootstrap = 0\n")
    with pytest.raises(SemprobeError, match="resamples >= 1"):
        load_study(tmp_path / "bad.toml")


def test_bootstrap_mean_is_the_accuracy_over_resampled_images() -> None:
    hits = np.arange(400) % 4 == 0  # accuracy 0.25
    low, high = bootstrap_mean(hits, 300, 3, 0.95)
    # The binomial standard error is sqrt(.25 * .75 / 400) = 0.0217: about +-0.042 at 95 %.
    assert 0.19 < low < 0.23 and 0.27 < high < 0.31
    assert bootstrap_mean(hits, 300, 3, 0.95) == (low, high)
    narrow = bootstrap_mean(hits, 300, 3, 0.5)
    assert low < narrow[0] < 0.25 < narrow[1] < high
    assert bootstrap_mean(np.ones(50), 20, 0, 0.9) == (1.0, 1.0)


def test_knn_accuracies_get_intervals(tmp_path: Path) -> None:
    from semprobe.checkpoint import load_model
    from semprobe.extraction import ExtractionOptions, features
    from semprobe.protocols.knn import KNNSettings, knn_table

    model = load_model(save_tiny(tmp_path / "sem.pt", seed=2)).model
    options = ExtractionOptions(
        dataset="synthetic:train=4,test=2", cache_dir=tmp_path / "cache", progress=False
    )
    train, test = features(model, options, "train"), features(model, options, "test")
    plain = KNNSettings(ks=(5,), temperatures=(0.07,), representations=("backbone",))
    booted = KNNSettings(
        ks=(5,), temperatures=(0.07,), representations=("backbone",), bootstrap=100, seed=4
    )
    table = knn_table(train, test, plain, "sem")
    with_intervals = knn_table(train, test, booted, "sem")
    assert "top1_low" not in table
    # The same accuracies, now inside their intervals.
    assert with_intervals["top1"].tolist() == table["top1"].tolist()
    row = with_intervals.iloc[0]
    assert row.top1_low <= row.top1 <= row.top1_high and row.top1_low < row.top1_high
    assert row.top5_low <= row.top5 <= row.top5_high
    with pytest.raises(SemprobeError, match="resamples >= 1"):
        KNNSettings(bootstrap=0)
    with pytest.raises(SemprobeError, match=r"in \(0, 1\)"):
        KNNSettings(bootstrap=5, confidence=2.0)


class SeededTrainer:
    """A user's own trainer (the :class:`semprobe.studies.Trainer` protocol): a tiny model whose
    weights are drawn from the configured seed."""

    def __init__(self) -> None:
        self.trained: list[tuple[str, int]] = []

    def check(self, config: dict, dataset: str) -> None:
        if "seed" not in config:
            raise SemprobeError("no seed")

    def check_trained_as_asked(self, path: Path, config: dict, dataset: str) -> None:
        self.check(config, dataset)

    def train(self, config: dict, path: Path, dataset: str) -> Path:
        self.trained.append((path.parent.name, config["seed"]))
        path.parent.mkdir(parents=True, exist_ok=True)
        extra = {} if config["sem"] else {"num_simplices": 0, "vocab": 0}
        return save_tiny(path, seed=100 * int(config["sem"]) + config["seed"], **extra)


SEED_STUDY = """
dataset = "synthetic:train=2,test=1"
analyses = ["relevance"]
seeds = [0, 1, 2]
out = "runs/seeded"
[checkpoints]
sem = "ckpt/seed{seed}/sem/final.ckpt"
base = "ckpt/seed{seed}/base/final.ckpt"
[pretrain.sem]
sem = true
[pretrain.base]
sem = false
[relevance]
k = 3
k_max = 3
epochs = 15
permutations = 20
reference = "random-init"
concepts = false
[extraction]
cache_dir = "cache"
progress = false
"""


def test_a_multi_seed_study(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from semprobe.cli.intervals import print_seed_report
    from semprobe.cli.report import print_table
    from semprobe.studies import load_seeded_study

    (tmp_path / "study.toml").write_text(SEED_STUDY)
    trainer = SeededTrainer()
    seeded = load_seeded_study(tmp_path / "study.toml", trainer)
    assert seeded is not None and seeded.seeds == [0, 1, 2]
    assert seeded.out == tmp_path / "runs" / "seeded"
    assert seeded.studies[2].relevance.seed == 2
    assert seeded.studies[1].checkpoints["sem"] == tmp_path / "ckpt/seed1/sem/final.ckpt"
    result = seeded.run()
    assert sorted(trainer.trained) == [(m, s) for m in ("base", "sem") for s in (0, 1, 2)]
    out = tmp_path / "runs" / "seeded"
    for seed in (0, 1, 2):
        assert (out / f"seed-{seed}" / "run.json").is_file()
    # The summary is the mean and std of the per-seed values that each seed's run wrote.
    summary = pd.read_csv(out / "seed_summary.csv")
    row = summary[(summary["model"] == "sem") & (summary["metric"] == "relevance_mean")].iloc[0]
    values = [
        json.loads((out / f"seed-{s}" / "sem" / "relevance" / "summary.json").read_text())[
            "relevance"
        ]["mean"]
        for s in (0, 1, 2)
    ]
    assert [row["seed_0"], row["seed_1"], row["seed_2"]] == pytest.approx(values)
    assert row["mean"] == pytest.approx(np.mean(values))
    assert row["std"] == pytest.approx(np.std(values, ddof=1))
    assert len(set(values)) == 3  # the seeds trained different models
    # The paired comparison across seeds: sem's lift minus base's, seed by seed.
    differences = pd.read_csv(out / "seed_lift_differences.csv")
    diff = differences.iloc[0]
    assert (diff["model"], diff["other"], diff["superclasses"], diff["n_seeds"]) == (
        "sem",
        "base",
        "coarse",
        3,
    )
    lifts = {
        m: [
            json.loads((out / f"seed-{s}" / m / "relevance" / "summary.json").read_text())[
                "lift_vs_random_init"
            ]
            for s in (0, 1, 2)
        ]
        for m in ("sem", "base")
    }
    per_seed = np.subtract(lifts["sem"], lifts["base"])
    assert [diff["seed_0"], diff["seed_1"], diff["seed_2"]] == pytest.approx(per_seed)
    assert diff["low"] < per_seed.mean() < diff["high"]
    # Random models on random data: no difference can be established.
    assert not diff["established"]
    print_seed_report(result, print_table)
    printed = capsys.readouterr().out
    assert "across seeds 0, 1, 2" in printed and "not established (3 seeds)" in printed


@pytest.mark.parametrize(
    ("seeds", "message"),
    [("[]", "non-empty list"), ("[0, 0]", "given twice"), ("[-1]", "[0, 2**32)")],
)
def test_bad_seeds_are_one_line(
    tmp_path: Path, seeds: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text = SEED_STUDY.replace("seeds = [0, 1, 2]", f"seeds = {seeds}")
    (tmp_path / "study.toml").write_text(text)
    assert main(["study", str(tmp_path / "study.toml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("semprobe: error: ") and message in err[0]
    assert not (tmp_path / "runs").exists() and not (tmp_path / "ckpt").exists()


def test_a_pretrained_checkpoint_needs_the_seed_in_its_path(tmp_path: Path) -> None:
    from semprobe.studies import load_seeded_study

    text = SEED_STUDY.replace("ckpt/seed{seed}/sem/", "ckpt/sem/")
    (tmp_path / "study.toml").write_text(text)
    with pytest.raises(SemprobeError, match=r"needs \{seed\} in its path"):
        load_seeded_study(tmp_path / "study.toml", SeededTrainer())
    (tmp_path / "study.toml").write_text(SEED_STUDY.replace("k = 3", "k = 3\nseed = 4"))
    with pytest.raises(SemprobeError, match=r"\[relevance\] sets seed"):
        load_seeded_study(tmp_path / "study.toml", SeededTrainer())
    with pytest.raises(SemprobeError, match="has seeds"):
        load_study(tmp_path / "study.toml", SeededTrainer())


@pytest.mark.parametrize(
    "name",
    [
        "semprobe.bootstrap",
        "semprobe.analysis.bootstrap",
        "semprobe.studies.seed_data",
        "semprobe.studies.seeds",
        "semprobe.cli.intervals",
    ],
)
def test_docstring_examples(name: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0


def test_seeds_on_the_command_line_replace_the_files(tmp_path: Path) -> None:
    """``semprobe study --seeds``: the same file at other seeds, or a file without seeds."""
    from semprobe.studies import load_seeded_study

    (tmp_path / "study.toml").write_text(SEED_STUDY)
    seeded = load_seeded_study(tmp_path / "study.toml", SeededTrainer(), seeds=[5, 7])
    assert seeded is not None and seeded.seeds == [5, 7] and sorted(seeded.studies) == [5, 7]
    assert seeded.studies[7].relevance.seed == 7
    assert seeded.studies[5].checkpoints["base"] == tmp_path / "ckpt/seed5/base/final.ckpt"
    (tmp_path / "plain.toml").write_text(SEED_STUDY.replace("seeds = [0, 1, 2]\n", ""))
    assert load_seeded_study(tmp_path / "plain.toml", SeededTrainer()) is None
    plain = load_seeded_study(tmp_path / "plain.toml", SeededTrainer(), seeds=[3])
    assert plain is not None and plain.seeds == [3] and plain.studies[3].relevance.seed == 3


@pytest.mark.parametrize(
    ("seeds", "message"), [(["1", "1"], "given twice"), (["-2"], "-2"), (["x"], "'x'")]
)
def test_bad_seeds_on_the_command_line_are_one_line(
    tmp_path: Path, seeds: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "study.toml").write_text(SEED_STUDY)
    try:
        code = main(["study", str(tmp_path / "study.toml"), "--seeds", *seeds])
    except SystemExit as exc:  # argparse's own errors (a value that is not a seed) exit there
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("semprobe: error: ") and message in err[0], err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "ckpt").exists()
