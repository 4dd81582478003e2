"""``seeds = [0, 1, 2]`` in a study file: the file's data as the study of one seed.

Each seed is the same study with that seed for pretraining (every ``[pretrain.<name>]``), the
tau sweep's probe (``[probe]``) and the relevance procedure (``[relevance]``: the random-init
twin, the permutation null and the bootstrap), and its own checkpoints: a checkpoint path holds
``{seed}``, replaced by each seed, so the seeds' models never overwrite each other. The seeds'
run directories are ``<out>/seed-<s>`` (:func:`~semprobe.studies.load_study` with ``seed``);
:mod:`semprobe.studies.seeds` runs them and tabulates mean, standard deviation and the per-seed
values.

Examples
--------
>>> data = {
...     "seeds": [0, 1],
...     "checkpoints": {"m": "ckpt/seed{seed}/m.ckpt"},
...     "pretrain": {"m": {"method": "byol"}},
... }
>>> one = for_seed(data, 1, "study.toml")
>>> one["checkpoints"], one["pretrain"]["m"]["seed"], one["relevance"]["seed"]
({'m': 'ckpt/seed1/m.ckpt'}, 1, 1)
"""

from __future__ import annotations

import copy
import numbers
from collections.abc import Mapping
from typing import Any

from semprobe.errors import SemprobeError

PLACEHOLDER = "{seed}"


def check_seeds(value: object, where: str) -> list[int]:
    """``seeds`` as a non-empty list of distinct integers in ``[0, 2**32)``."""
    if not isinstance(value, list) or not value:
        raise SemprobeError(f"{where}: seeds must be a non-empty list of integers, got {value!r}")
    for seed in value:
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise SemprobeError(f"{where}: seeds must be integers, got {seed!r}")
        if not 0 <= int(seed) < 2**32:
            raise SemprobeError(f"{where}: seeds must be in [0, 2**32), got {seed}")
    if len(set(value)) != len(value):
        raise SemprobeError(f"{where}: seeds are given twice in {value!r}")
    return [int(s) for s in value]


def for_seed(data: Mapping[str, Any], seed: int, where: str) -> dict[str, Any]:
    """The study file's ``data`` (without ``seeds``) as the study of ``seed``.

    Raises
    ------
    SemprobeError
        If ``seeds`` is malformed or does not hold ``seed``, a pretrained checkpoint's path lacks
        ``{seed}``, or a section sets the ``seed`` that ``seeds`` decides.
    """
    seeds = check_seeds(data.get("seeds"), where)
    if seed not in seeds:
        raise SemprobeError(f"{where}: seed {seed} is not one of seeds = {seeds}")
    out = copy.deepcopy({k: v for k, v in data.items() if k != "seeds"})
    checkpoints = out.get("checkpoints") or {}
    pretrain = out.get("pretrain") or {}
    if not isinstance(checkpoints, dict) or not isinstance(pretrain, dict):
        return out  # the study file's own checks say what is wrong
    for name in pretrain:
        if PLACEHOLDER not in str(checkpoints.get(name, PLACEHOLDER)):
            raise SemprobeError(
                f"{where}: with seeds, the checkpoint of pretrained model {name!r} needs "
                f"{PLACEHOLDER} in its path, so that the seeds do not share one checkpoint"
            )
    out["checkpoints"] = {n: str(p).replace(PLACEHOLDER, str(seed)) for n, p in checkpoints.items()}
    for section in [*(f"pretrain.{n}" for n in pretrain), "probe", "relevance"]:
        table = _section(out, section)
        if table is None:
            continue
        if "seed" in table:
            raise SemprobeError(
                f"{where}: [{section}] sets seed, but seeds = {seeds} sets it for each seed"
            )
        table["seed"] = seed
    return out


def _section(data: dict[str, Any], dotted: str) -> dict[str, Any] | None:
    """The (created if missing) table ``dotted`` of ``data``; None where it is not a table."""
    head, _, name = dotted.partition(".")
    table = data.setdefault(head, {})
    if name:
        table = table.get(name) if isinstance(table, dict) else None
    return table if isinstance(table, dict) else None
