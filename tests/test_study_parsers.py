"""A study's staleness check includes the pretraining dataset; study and config files are parsed
into a study (or a config) or refused in one line, whatever their content (hypothesis)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from semprobe.errors import SemprobeError
from semprobe.extraction import ExtractionOptions
from semprobe.pretrain.study_trainer import StudyTrainer, same_training_data
from semprobe.studies import Study, load_study
from tests.pretrain_runs import TINY_PRETRAIN


def test_a_checkpoint_pretrained_on_other_data_is_stale(tmp_path: Path) -> None:
    """Guarantee: a study never analyses a model pretrained on another dataset than its own."""
    ckpt = tmp_path / "models" / "m" / "final.ckpt"
    options = ExtractionOptions(cache_dir=tmp_path / "cache", progress=False)

    def study(dataset: str) -> Study:
        return Study(
            {"m": ckpt},
            dataset,
            [1.0],
            ["entropy"],
            options,
            pretrain={"m": TINY_PRETRAIN},
            trainer=StudyTrainer(),
        )

    assert "m" in study("synthetic:train=2,test=1").run(tmp_path / "run1").entropy
    trained = ckpt.read_bytes()
    # Another test split is the same pretraining data: reused.
    assert "m" in study("synthetic:train=2,test=2,seed=0").run(tmp_path / "run2").entropy
    for other in ("synthetic:train=3,test=1", "synthetic:train=2,test=1,seed=4"):
        with pytest.raises(
            SemprobeError, match=r"dataset = 'synthetic:train=2,test=1' \(the study"
        ):
            study(other).run(tmp_path / "run3")
    assert ckpt.read_bytes() == trained  # never retrained behind the user's back
    assert not (tmp_path / "run3").exists()


def _folder(root: Path, classes: dict[str, int]) -> Path:
    for name, count in classes.items():
        (root / "train" / name).mkdir(parents=True)
        for i in range(count):
            (root / "train" / name / f"{i}.png").write_bytes(b"x")
    (root / "test").mkdir()
    return root


def test_folder_datasets_are_compared_by_their_training_images(tmp_path: Path) -> None:
    a = _folder(tmp_path / "a", {"cat": 3, "dog": 2})
    copy = tmp_path / "copy"
    shutil.copytree(a, copy)
    other = _folder(tmp_path / "other", {"cat": 3, "dog": 1})
    assert same_training_data(f"imagefolder:{a}", f"imagefolder:{a}")
    assert same_training_data(f"imagefolder:{a}", f"imagefolder:{copy}")  # same images
    assert not same_training_data(f"imagefolder:{a}", f"imagefolder:{other}")
    # A folder that moved (with the repository): the old path is gone, the name is the same.
    moved = tmp_path / "elsewhere" / "a"
    shutil.move(str(a), moved)
    assert same_training_data(f"imagefolder:{a}", f"imagefolder:{moved}")
    assert not same_training_data(f"imagefolder:{a}", f"imagefolder:{other}")
    assert not same_training_data("cifar100", "cifar10")
    assert not same_training_data("synthetic", "synthetic:train=10")  # default train is 50
    assert same_training_data("synthetic", "synthetic:train=50,test=3,seed=0")


# -- fuzzed study and config files ----------------------------------------------------------------

_KEYS = st.sampled_from(
    [
        "dataset",
        "taus",
        "analyses",
        "out",
        "checkpoints",
        "probe",
        "relevance",
        "pretrain",
        "extraction",
        "bogus",
    ]
)
_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.floats(allow_nan=True)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def _one_line(exc: SemprobeError) -> bool:
    return "\n" not in str(exc).strip()


def _toml_value(value: object) -> str:
    import json

    if value is None:
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value != value:
        return "nan"
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
        )
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_KEYS, _VALUES, max_size=5))
def test_study_files_parse_or_fail_in_one_line(
    tmp_path_factory: pytest.TempPathFactory, data: dict[str, object]
) -> None:
    """Any TOML table: a Study, or one SemprobeError line; never another exception."""
    folder = tmp_path_factory.mktemp("study")
    text = "\n".join(f"{key} = {_toml_value(value)}" for key, value in data.items()) + "\n"
    file = folder / "s.toml"
    file.write_text(text)
    try:
        study, out = load_study(file)
    except SemprobeError as exc:
        failed = exc
    else:
        assert isinstance(study, Study) and isinstance(out, Path)
        return
    assert _one_line(failed)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_any_study_file_text_parses_or_fails_in_one_line(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    file = tmp_path_factory.mktemp("raw") / "s.toml"
    file.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        load_study(file)
    except SemprobeError as exc:
        failed: SemprobeError | None = exc
    else:
        failed = None
    assert failed is None or _one_line(failed)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "epochs",
                "lr",
                "method",
                "vocab",
                "batch_size",
                "tau_online",
                "seed",
                "optimizer",
                "num_simplices",
                "workers",
                "unknown_option",
            ]
        ),
        _VALUES,
        max_size=4,
    )
)
def test_pretrain_config_files_resolve_or_fail_in_one_line(
    tmp_path_factory: pytest.TempPathFactory, data: dict[str, object]
) -> None:
    """A pretraining config file: a resolved config, or one SemprobeError line."""
    from semprobe.pretrain.config import PretrainConfig, load_config_file

    file = tmp_path_factory.mktemp("cfg") / "c.toml"
    file.write_text("\n".join(f"{k} = {_toml_value(v)}" for k, v in data.items()) + "\n")
    try:
        values = load_config_file(str(file))
        config = PretrainConfig.from_dict({"dataset": "synthetic", **values}).resolved()
    except SemprobeError as exc:
        failed = exc
    else:
        assert config.epochs >= 1 and config.batch_size >= 2
        return
    assert _one_line(failed)
