"""The seven-methods study files: valid as shipped, and a real-data slice of the CPU one runs.

``studies/cifar100_real_methods_cpu.toml`` trains BYOL, MoCo v2+, SimCLR, Barlow Twins, VICReg,
SwAV and DINO with and without SEM; its slice here keeps every key and cuts the budget (4 train
and 2 test images per class, 1 epoch, L = 8, 20 probe epochs, 10 permutations) so that all 14
models train and are analysed in a few minutes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from semprobe.cli import main
from semprobe.pretrain.config import METHODS, PretrainConfig
from semprobe.pretrain.study_trainer import StudyTrainer
from semprobe.studies import load_study

REPO = Path(__file__).resolve().parents[1]
FILES = ["cifar100_real_methods_cpu.toml", "cifar100_real_methods_gpu.toml"]
MODELS = {f"{m}{suffix}" for m in METHODS for suffix in ("-sem", "")}
# What may differ between a method's SEM model and its baseline: SEM itself.
SAME = ("backbone", "epochs", "batch_size", "optimizer", "lr", "weight_decay", "warmup_epochs")
SAME += ("proj_hidden_dim", "proj_output_dim", "queue_size", "num_prototypes", "seed")


@pytest.mark.parametrize("name", FILES)
def test_shipped_methods_study_files_are_valid(name: str) -> None:
    study, _ = load_study(REPO / "studies" / name, trainer=StudyTrainer())
    assert set(study.analyses) == {"relevance", "knn"}
    assert study.relevance.reference == "random-init"
    configs = {
        model: PretrainConfig.from_dict({"dataset": study.dataset, **section}).resolved()
        for model, section in study.pretrain.items()
    }
    assert set(configs) == set(study.checkpoints) == MODELS
    for method in METHODS:
        sem, base = configs[f"{method}-sem"], configs[method]
        assert (sem.method, sem.sem, base.method, base.sem) == (method, True, method, False)
        assert [getattr(sem, k) for k in SAME] == [getattr(base, k) for k in SAME], method
        # Each method keeps its own SEM temperatures (the authors' scripts).
        own = PretrainConfig(method=method).resolved()
        assert (sem.tau_online, sem.tau_target) == (own.tau_online, own.tau_target)
    budgets = {(c.backbone, c.epochs, c.optimizer, c.lr) for c in configs.values()}
    assert len(budgets) == 1, "every model gets the same budget"
    if "gpu" in name:
        assert all((c.num_simplices, c.vocab) == (5000, 13) for c in configs.values() if c.sem)
        assert budgets == {("resnet18", 20, "adamw", 2e-3)}
    else:
        assert budgets == {("small_cnn", 2, "adamw", 2e-3)}


@pytest.mark.slow
def test_real_data_slice_of_the_methods_study(real_cifar: Path, tmp_path: Path) -> None:
    data = tmp_path / "cifar"
    for split, per_class in (("train", 4), ("test", 2)):
        for class_dir in sorted((real_cifar / split).iterdir()):
            (data / split / class_dir.name).mkdir(parents=True)
            for image in sorted(class_dir.iterdir())[:per_class]:
                shutil.copy(image, data / split / class_dir.name / image.name)
    shutil.copy(real_cifar / "superclasses.csv", data / "superclasses.csv")
    text = (REPO / "studies" / FILES[0]).read_text()
    text = text.replace("../../shared/data/cifar100-real", str(data))
    assert text.count("epochs = 2\n") == 14  # the study's budget, cut to one epoch here
    text = text.replace("epochs = 2\n", "epochs = 1\n").replace(
        "batch_size = 256", "batch_size = 64"
    )
    text = text.replace("num_simplices = 500", "num_simplices = 8")
    text = text.replace("queue_size = 4096", "queue_size = 256").replace(
        "workers = 1", "workers = 0"
    )
    text = text.replace("permutations = 200", "permutations = 10\nepochs = 20")
    text = text.replace("k_max = 30", "k_max = 5")
    study_file = tmp_path / "studies" / "slice.toml"
    study_file.parent.mkdir()
    study_file.write_text(text)
    assert main(["study", str(study_file)]) == 0
    out = tmp_path / "runs" / "cifar100-real-methods-cpu"
    comparison = pd.read_csv(out / "comparison.csv")
    twins = comparison["model"].str.endswith("-random-init")
    assert set(comparison.loc[~twins, "model"]) == MODELS
    assert set(comparison.loc[twins, "model"]) == {f"{m}-random-init" for m in MODELS}
    trained = comparison[~twins].set_index("model")
    assert trained["lift_vs_random_init"].notna().all()
    for method in METHODS:
        tau = PretrainConfig(method=method).resolved().tau_online
        assert trained.loc[f"{method}-sem", "features"] == f"sem@tau={tau:g}"
        assert trained.loc[method, "features"] == "backbone"
    study = pd.read_csv(out / "study.csv")
    assert set(study["analysis"]) >= {"relevance", "knn"}
    knn = study[study["analysis"] == "knn"]
    assert set(knn["model"]) == MODELS
    assert knn["value"].between(0, 1).all()
    assert set(knn.loc[knn["model"] == "swav", "representation"]) == {"backbone"}
    assert set(knn.loc[knn["model"] == "swav-sem", "representation"]) == {"backbone", "sem"}
