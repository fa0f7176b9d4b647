"""One test-set item as the harness formats and the dataset card read it.

The export builds its test rows from the run's archive; `ExportItem.from_row` takes such a row either
as a mapping (the JSONL test row: `id`, `prompt`, `category`, `language`, `seed_id`, `strategies`,
`refusal_rate` per target, `mean_refusal_rate`, `judge_verdict`, and `nearest_benchmark` when the
set was checked against benchmarks) or as any object with those attributes (a dataclass or pydantic
record), so the formats do not depend on how the export stores its rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from evorefuse.languages import DEFAULT_LANGUAGE


@dataclass(frozen=True)
class BenchmarkMatch:
    """The nearest prompt of a benchmark the item was checked against (`scoring.overlap`)."""

    prompt: str
    source: str
    similarity: float
    ngram_overlap: float


@dataclass(frozen=True)
class ExportItem:
    id: str
    prompt: str
    category: str | None = None
    language: str = DEFAULT_LANGUAGE
    seed_id: str | None = None
    strategies: tuple[str, ...] = ()
    refusal_rate: Mapping[str, float | None] = field(default_factory=dict)
    """Per target: the share of the target's scored responses that were refusals."""
    mean_refusal_rate: float | None = None
    judge_verdict: str | None = None
    nearest_benchmark: BenchmarkMatch | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any] | Any) -> ExportItem:
        """Build from a test row (mapping or attribute record). A row without id or prompt is a
        bug in whatever built it, not bad user input: ValueError."""
        def get(name: str, default: Any = None) -> Any:
            if isinstance(row, Mapping):
                return row.get(name, default)
            return getattr(row, name, default)

        item_id, prompt = get("id"), get("prompt")
        if not isinstance(prompt, str) or not prompt.strip() or item_id in (None, ""):
            raise ValueError(f"a test row needs an id and a prompt (got id={item_id!r})")
        match = get("nearest_benchmark")
        if isinstance(match, Mapping):
            match = BenchmarkMatch(str(match["prompt"]), str(match["source"]),
                                   float(match["similarity"]), float(match["ngram_overlap"]))
        return cls(id=str(item_id), prompt=prompt, category=get("category"),
                   language=get("language") or DEFAULT_LANGUAGE, seed_id=get("seed_id"),
                   strategies=tuple(get("strategies") or ()),
                   refusal_rate=dict(get("refusal_rate") or {}),
                   mean_refusal_rate=get("mean_refusal_rate"), judge_verdict=get("judge_verdict"),
                   nearest_benchmark=match if isinstance(match, BenchmarkMatch) else None)

    def metadata(self) -> dict[str, Any]:
        """What a harness keeps beside the prompt, JSON-ready, without empty fields."""
        data: dict[str, Any] = {"category": self.category, "language": self.language,
                                "seed_id": self.seed_id, "strategies": list(self.strategies),
                                "refusal_rate": dict(self.refusal_rate),
                                "mean_refusal_rate": self.mean_refusal_rate,
                                "judge_verdict": self.judge_verdict}
        if self.nearest_benchmark is not None:
            m = self.nearest_benchmark
            data["nearest_benchmark"] = {"prompt": m.prompt, "source": m.source,
                                         "similarity": round(m.similarity, 4),
                                         "ngram_overlap": round(m.ngram_overlap, 4)}
        return {k: v for k, v in data.items() if v not in (None, [], {})}
