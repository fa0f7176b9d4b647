"""The dataset card written beside every export: the facts a reader of the exported set needs,
gathered from the run directory (`exports.card` renders them).

Why the card is skipped rather than written over a README.md that evorefuse did not write: an
export's `-o` may point into any directory (a repository's root, say), and a user's README is
not ours to replace. A card evorefuse wrote before (its front matter carries the `evorefuse` tag)
is replaced by the card of the new export.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from evorefuse import __version__
from evorefuse.config import Config
from evorefuse.exports.card import (
    TAGS,
    CardFacts,
    ModelRoles,
    SetSummary,
    card_path,
    render_card,
)
from evorefuse.exports.items import ExportItem
from evorefuse.fileio import check_output
from evorefuse.runstore import RunStore

TITLES = {"test": "over-refusal test set", "promptfoo": "over-refusal test set (promptfoo)",
          "inspect": "over-refusal test set (inspect_ai)", "sft": "SFT data against over-refusal",
          "dpo": "DPO pairs against over-refusal"}


@dataclass(frozen=True)
class CardPlan:
    """Where the card of an export goes, or why it is not written."""

    path: Path
    skipped: str | None = None


def plan_card(export_path: Path) -> CardPlan:
    """Decide, before any work, whether the card beside `export_path` is written: not over a
    README.md (or a link, a directory...) that is not an evorefuse card."""
    path = card_path(export_path)
    if path.is_symlink() or (path.exists() and not (path.is_file() and _is_ours(path))):
        return CardPlan(path, f"{path} exists and was not written by evorefuse: no dataset "
                              "card written (export to another directory for one)")
    check_output(path, option="dataset card")
    return CardPlan(path)


def _is_ours(path: Path) -> bool:
    """Whether README.md is a card evorefuse wrote (YAML front matter with our tags)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    if not text.startswith("---\n"):
        return False
    try:
        front = yaml.safe_load(text[4:text.find("\n---", 4)])
    except yaml.YAMLError:
        return False
    return isinstance(front, dict) and set(TAGS) <= set(front.get("tags") or ())


def card_text(store: RunStore, cfg: Config, *, export_path: Path, fmt: str,
              items: Sequence[ExportItem], dropped: Mapping[str, int],
              benchmarks: Sequence[str] = (), overlaps_dropped: int = 0) -> str:
    """The card of one export of the run in `store`."""
    seeds = store.seeds()
    checkpoint = store.checkpoint() or {}
    sources = tuple(dict.fromkeys(str(s["source"]) for s in seeds if s.get("source")))
    facts = CardFacts(
        pretty_name=f"evorefuse {TITLES.get(fmt, fmt)}: {store.path.name}",
        data_files=(export_path.name,), export_format=fmt, summary=SetSummary.of(items),
        run_id=store.run_id, config_hash=str(store.manifest().get("config_hash", "")),
        evorefuse_version=__version__, created=time.strftime("%Y-%m-%d", time.gmtime()),
        preset=cfg.run.preset, generations=int(checkpoint.get("generation", 0)),
        models=ModelRoles(mutator=cfg.roles.mutator, judges=tuple(cfg.judges()),
                          targets=tuple(cfg.roles.targets),
                          responder=cfg.roles.responder if fmt in ("sft", "dpo") else None,
                          detector=cfg.roles.detector),
        seed_files=sources, seed_count=len(seeds), dropped=dict(dropped),
        benchmarks_checked=tuple(benchmarks), benchmark_overlaps_dropped=overlaps_dropped)
    return render_card(facts)
