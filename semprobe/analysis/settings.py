"""The settings of the relevance procedure, checked once when they are made."""

from __future__ import annotations

from dataclasses import dataclass

from semprobe.errors import SemprobeError
from semprobe.graph import Rule
from semprobe.validation import check_tau
from semprobe.wordnet import parse_superclass_source

REPRESENTATIONS = ("auto", "sem", "backbone", "logits")


@dataclass(frozen=True)
class RelevanceSettings:
    """Parameters of the relevance procedure (all recorded in each summary.json).

    ``superclasses`` is one source (``coarse``, ``wordnet[:DEPTH]``, ``file:PATH.csv``) or several
    separated by commas: the probe and W_K are fitted once and scored against each grouping; the
    first is the primary one (graph tables, concept labels, ``curve.csv``).
    """

    superclasses: str = "coarse"
    representation: str = "auto"
    tau: float | None = None  # None: the model's pre-training tau
    k: int = 10
    k_max: int = 50
    rule: Rule = "category"
    multiplicity: bool = False
    l1: float | str = 1e-3
    l2: float = 0.0
    epochs: int = 100
    permutations: int = 1000
    seed: int = 0
    reference: str | None = None  # "random-init"
    concepts: bool = True
    standardize: bool = True

    def __post_init__(self) -> None:
        if self.representation not in REPRESENTATIONS:
            raise SemprobeError(
                f"unknown representation {self.representation!r}; choose one of "
                f"{', '.join(REPRESENTATIONS)}"
            )
        if self.tau is not None:
            check_tau(self.tau)
        if self.k < 1 or self.k_max < 1:
            raise SemprobeError(f"K must be >= 1, got k={self.k}, k_max={self.k_max}")
        if self.reference not in (None, "random-init"):
            raise SemprobeError(f"unknown reference {self.reference!r}; use random-init")
        sources = self.superclass_sources
        if "" in sources or len(set(sources)) != len(sources):
            raise SemprobeError(
                f"superclasses {self.superclasses!r}: give one or more distinct sources "
                "separated by commas"
            )
        for source in sources:
            parse_superclass_source(source)  # a typo fails here, before any model is trained

    @property
    def superclass_sources(self) -> list[str]:
        """The superclass sources in order, primary first."""
        return [s.strip() for s in self.superclasses.split(",")]
