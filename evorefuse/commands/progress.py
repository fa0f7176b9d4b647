"""Progress on the terminal: tqdm bars, a line per generation, notices (hidden by -q but notices)."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm


class TerminalProgress:
    """tqdm bars and one line per committed generation (hidden by -q); notices always shown."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def bar(self, total: int, desc: str, unit: str = "lineage") -> tqdm:
        # None: tqdm draws only on a terminal, so logs and pipes stay clean.
        return tqdm(total=total, desc=desc, unit=unit, leave=False,
                    disable=True if self.quiet else None)

    def generation(self, s: dict[str, Any]) -> None:
        if self.quiet:
            return
        tqdm.write(
            f"gen {s['generation']}: best {s['best_fitness']:.3f} mean {s['mean_fitness']:.3f} "
            f"refusal(best) {s['mean_best_refusal_rate']:.2f} | {s['benign']}/{s['candidates']} "
            f"benign, {s['accepted']} accepted, {s['judge_rejected']} judge-rejected"
            + (f" ({s['judge_unreadable']} only for their language: the offline judge reads "
               "English, name an LLM judge)" if s.get("judge_unreadable") else "")
            + f", {s['parse_failures']} unparsed, {s['duplicates']} dup | calls {s['calls']} "
            f"hits {s['cache_hits']} cost ${s['cost']:.4f}")

    def notice(self, text: str) -> None:
        tqdm.write(text, file=sys.stderr)
