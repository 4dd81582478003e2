"""Shared fixtures: tiny real models and checkpoints, and the real CIFAR-100 images."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from semprobe.checkpoint import save_model
from semprobe.model import ModelSpec, SEMModel

REPO = Path(__file__).resolve().parents[1]
REAL_CIFAR = REPO.parent / "shared" / "data" / "cifar100-real"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--demo-seeds",
        action="store_true",
        help="also run the demo over three seeds (about 13 minutes on 2 cores)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--demo-seeds"):
        return
    skip = pytest.mark.skip(reason="the demo over three seeds takes ~13 min: pytest --demo-seeds")
    for item in items:
        if "demo_seeds" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def real_cifar() -> Path:
    """The 25,000 real CIFAR-100 images (ImageFolder), read-only; skip where absent."""
    if not (REAL_CIFAR / "train").is_dir():
        pytest.skip(f"real CIFAR-100 subset not found at {REAL_CIFAR}")
    return REAL_CIFAR


def tiny_spec(**overrides: object) -> ModelSpec:
    fields: dict[str, object] = {
        "backbone": "small_cnn",
        "num_simplices": 8,
        "vocab": 5,
        "tau": 0.5,
        "method": "byol",
        "dataset": "synthetic",
    }
    fields.update(overrides)
    return ModelSpec(**fields)  # type: ignore[arg-type]


@pytest.fixture
def tiny_model() -> SEMModel:
    torch.manual_seed(0)
    return SEMModel(tiny_spec()).eval()


@pytest.fixture
def tiny_checkpoint(tmp_path: Path, tiny_model: SEMModel) -> Path:
    path = tmp_path / "tiny.pt"
    save_model(tiny_model, path)
    return path


def _mounted_tmpfs(mount_point: Path, options: str):
    """Mount a tmpfs at ``mount_point`` for the duration; skip where mounting is not permitted."""
    import subprocess

    mount_point.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs ({options}) here: {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.fixture
def tiny_tmpfs(tmp_path: Path):
    """A 256 KiB tmpfs, so that 'disk full' is real."""
    yield from _mounted_tmpfs(tmp_path / "small_disk", "size=256k")


@pytest.fixture
def read_only_dir(tmp_path: Path):
    """A directory on a read-only mount (chmod does not stop root)."""
    yield from _mounted_tmpfs(tmp_path / "ro", "size=64k,ro")


WORDNET_SOURCE = Path("/usr/share/wordnet")


@pytest.fixture(scope="session")
def wordnet_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """NLTK's WordNet built from Debian's WordNet 3.0 into a temporary NLTK data folder."""
    from semprobe.wordnet import setup_wordnet

    if not (WORDNET_SOURCE / "data.noun").is_file():
        pytest.skip("WordNet 3.0 not installed (Debian packages wordnet-base, wordnet-sense-index)")
    target = tmp_path_factory.mktemp("nltk_wordnet")
    setup_wordnet(target, WORDNET_SOURCE, allow_download=False)
    return target


def save_tiny(path: Path, seed: int = 0, **spec: object) -> Path:
    """Save a seeded random-init tiny model (small CNN) at ``path``."""
    torch.manual_seed(seed)
    save_model(SEMModel(tiny_spec(**spec)), path)
    return path
