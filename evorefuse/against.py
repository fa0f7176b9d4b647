"""`--against PATH...`: how close a set's items are to the benchmarks a model may have been tuned on.

`export` drops the items too close to a benchmark prompt (a set that repeats XSTest measures
memory, not over-refusal) and says which; `evaluate` reports them without dropping anything (it
measures the set it is given). Both keep each item's closest benchmark prompt. The comparison
itself is `scoring.overlap` (embedding similarity and word 3-gram overlap, README "Overlap with
benchmarks"); this module reads the files first, so a file that cannot be read as prompts stops
the command (exit 2) before any model is called.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from evorefuse.scoring.overlap import (
    ItemOverlap,
    OverlapThresholds,
    ReferenceSets,
    find_overlaps,
)
from evorefuse.seeds import load_references


@dataclass(frozen=True)
class TooClose:
    """An item too close to a benchmark prompt, and the prompt it is close to."""

    id: str
    prompt: str
    match: dict[str, object]
    """`ItemOverlap.record()`: the benchmark prompt, its file, similarity, 3-gram overlap and the
    measure(s) that passed their threshold."""

    def describe(self) -> str:
        """One line for the console."""
        m = self.match
        prompt = str(m["prompt"])
        short = prompt if len(prompt) <= 70 else prompt[:67] + "..."
        return (f"{self.id}: too close to {Path(str(m['source'])).name} {m.get('id')} "
                f"(similarity {m['similarity']:.2f}, 3-gram overlap {m['ngram_overlap']:.2f}): "
                f"{short!r}")


@dataclass
class AgainstCheck:
    """The benchmark files an export or evaluation is checked against, read once."""

    references: ReferenceSets
    thresholds: OverlapThresholds = field(default_factory=OverlapThresholds)

    @classmethod
    def load(cls, paths: Sequence[str | Path],
             thresholds: OverlapThresholds | None = None) -> AgainstCheck | None:
        """None when no file is given; InputError (exit 2) for a file that is not prompts."""
        if not paths:
            return None
        return cls(load_references(paths), thresholds or OverlapThresholds())

    @property
    def files(self) -> list[str]:
        return [Path(f).name for f in self.references.files]

    def measure(self, ids: Sequence[str], prompts: Sequence[str]) -> AgainstResult:
        found = find_overlaps(list(prompts), self.references, self.thresholds)
        return AgainstResult(list(ids), found, self.files)


@dataclass
class AgainstResult:
    """Each item's closest benchmark prompt, in the order the items were given."""

    ids: list[str]
    overlaps: list[ItemOverlap]
    files: list[str]

    def record(self, i: int) -> dict[str, object] | None:
        """What the item's row keeps as `nearest_benchmark`."""
        return self.overlaps[i].record()

    def too_close(self, prompts: Sequence[str]) -> list[TooClose]:
        return [TooClose(self.ids[i], prompts[i], self.overlaps[i].record() or {})
                for i, o in enumerate(self.overlaps) if o.too_close]

    def kept(self) -> list[int]:
        """Indices of the items not too close to any benchmark prompt."""
        return [i for i, o in enumerate(self.overlaps) if not o.too_close]
