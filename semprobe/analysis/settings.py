"""The settings of the relevance procedure, checked once when they are made."""

from __future__ import annotations

from dataclasses import dataclass

from semprobe.bootstrap import check_confidence, check_resamples
from semprobe.errors import SemprobeError
from semprobe.graph import Rule
from semprobe.validation import check_tau
from semprobe.wordnet import parse_superclass_source, read_synset_overrides

REPRESENTATIONS = ("auto", "sem", "backbone", "logits")


@dataclass(frozen=True)
class RelevanceSettings:
    """Parameters of the relevance procedure (all recorded in each summary.json).

    ``superclasses`` is one source (``coarse``, ``wordnet[:DEPTH]``, ``file:PATH.csv``) or several
    separated by commas: the probe and W_K are fitted once and scored against each grouping; the
    first is the primary one (graph tables, concept labels, ``curve.csv``). ``synsets`` is an
    optional ``class,synset`` file that maps classes to WordNet senses by hand, for the
    ``wordnet`` sources and the concept labels (``--synsets FILE``). ``bootstrap`` (``None``: no
    intervals) is the number of resamples behind the ``confidence`` percentile intervals.
    ``simplex_copy`` keeps a simplex-major copy of each SEM model's test logits in the run
    (:mod:`semprobe.simplex_major`: the dashboard reads one simplex without reading the whole
    file; it doubles the disk the logits take).
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
    synsets: str | None = None
    bootstrap: int | None = None  # resamples for the intervals (semprobe.analysis.bootstrap)
    confidence: float = 0.95
    simplex_copy: bool = True

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
        if self.bootstrap is not None:
            check_resamples(self.bootstrap)
        check_confidence(self.confidence)
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
        if self.synsets is not None:
            object.__setattr__(self, "synsets", str(self.synsets))
            read_synset_overrides(self.synsets)  # so does a bad synsets file

    @property
    def superclass_sources(self) -> list[str]:
        """The superclass sources in order, primary first."""
        return [s.strip() for s in self.superclasses.split(",")]
