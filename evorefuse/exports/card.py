"""The dataset card: a README.md beside an export, as Hugging Face dataset repositories carry.

A test set is only usable by someone else if they can tell how it was made: which models wrote,
judged and were refused by it, from which seeds, with which configuration (its hash), how many items
in which languages and categories, how often each target refused them, what was filtered out and
under which licence. The card says all that in Hugging Face's format: YAML front matter (written by
`yaml.safe_dump`, so values cannot break it) and a Markdown body from a jinja2 template.

Markdown is not HTML, so the template runs with autoescape off; every value goes through the `md`
filter instead, which flattens line breaks and escapes what Markdown or an HTML renderer would read
as markup (a prompt containing `|` cannot break a table, nor `<script>` become a tag).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import yaml

from evorefuse.exports.items import ExportItem
from evorefuse.languages import language_name, primary

CARD_NAME = "README.md"
DEFAULT_LICENSE = "cc-by-4.0"
TAGS = ("over-refusal", "pseudo-malicious", "safety", "evorefuse")
_SIZE_BUCKETS = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                 (1_000_000, "100K<n<1M"))


@dataclass(frozen=True)
class ModelRoles:
    """Who did what: names as configured, with the model each name stands for if known."""

    mutator: str
    judges: tuple[str, ...]
    targets: tuple[str, ...]
    responder: str | None = None
    detector: str = "auto"


@dataclass(frozen=True)
class SetSummary:
    """Counts and refusal rates of the exported items."""

    n_items: int
    languages: Mapping[str, int] = field(default_factory=dict)
    categories: Mapping[str, int] = field(default_factory=dict)
    refusal_rates: Mapping[str, float] = field(default_factory=dict)
    """Per target: mean refusal rate over the items that target scored."""

    @classmethod
    def of(cls, items: Sequence[ExportItem]) -> SetSummary:
        rates: dict[str, list[float]] = {}
        for item in items:
            for target, rate in item.refusal_rate.items():
                if rate is not None:
                    rates.setdefault(target, []).append(rate)
        return cls(len(items), dict(Counter(i.language for i in items).most_common()),
                   dict(Counter(i.category or "uncategorised" for i in items).most_common()),
                   {t: sum(v) / len(v) for t, v in sorted(rates.items())})


@dataclass(frozen=True)
class CardFacts:
    """Everything the card states; the export command fills it from the run directory."""

    pretty_name: str
    data_files: tuple[str, ...]
    """The exported files, relative to the card (they sit in the same directory)."""
    export_format: str
    summary: SetSummary
    run_id: str
    config_hash: str
    evorefuse_version: str
    created: str
    """ISO date of the export."""
    preset: str
    generations: int
    models: ModelRoles
    seed_files: tuple[str, ...]
    seed_count: int
    dropped: Mapping[str, int] = field(default_factory=dict)
    """Candidates left out by the export's rules, by reason."""
    benchmarks_checked: tuple[str, ...] = ()
    """Files the items were checked against for overlap (`scoring.overlap`)."""
    benchmark_overlaps_dropped: int = 0
    license: str = DEFAULT_LICENSE
    description: str | None = None


_MD_ESCAPE = re.compile(r"([\\`*_\[\]|#!~])")


def md(value: object) -> str:
    """A value as inline Markdown text: one line, HTML-inert, markup characters escaped."""
    text = " ".join(str(value).split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_ESCAPE.sub(r"\\\1", text)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("evorefuse.exports", "templates"),
                             autoescape=False, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["md"] = md
    env.filters["pct"] = lambda x: f"{100 * x:.1f}%"
    env.filters["language_name"] = language_name
    return env


def front_matter(facts: CardFacts) -> dict[str, object]:
    """The card's metadata in the fields the Hugging Face Hub reads."""
    n = facts.summary.n_items
    size = next((label for limit, label in _SIZE_BUCKETS if n < limit), "n>1M")
    languages = sorted({primary(code) for code in facts.summary.languages}) or ["en"]
    return {
        "license": facts.license,
        "pretty_name": facts.pretty_name,
        "language": languages,
        "task_categories": ["text-generation"],
        "tags": list(TAGS),
        "size_categories": [size],
        "configs": [{"config_name": "default",
                     "data_files": [{"split": "test", "path": list(facts.data_files)}]}],
    }


def render_card(facts: CardFacts) -> str:
    """The whole README.md: front matter, then the body."""
    header = yaml.safe_dump(front_matter(facts), allow_unicode=True, sort_keys=False)
    body = _environment().get_template("dataset_card.md.j2").render(f=facts)
    return f"---\n{header}---\n\n{body}"


def card_path(export_path: Path) -> Path:
    """Where the card of an export goes: README.md in the export's directory. Writing it (with the
    same atomic, checked output as the export itself) is the export command's job."""
    return export_path.parent / CARD_NAME
