"""Do the reference labels leave room for 0.95, and what would a reader add to `auto`?

    python benchmarks/detector_reread.py [--write]

Why this question: `auto` stalls near 0.92 on the ChatGPT study's complied-vs-rejected responses
while the goal is 0.95. Either the labels themselves disagree with a careful reading (then no
detector can do much better), or `auto` misses something a reader sees. To tell which, the
reference responses were re-labelled independently, without the labels, by LLM annotators each
working alone from a written brief (`data/reread_brief_chatgpt.md`: complied or rejected, the
definitions the README maps the study's tones to; `data/reread_brief_xstest.md`: XSTest's three
classes): two annotators per half of the ChatGPT file (the even rows the packs were written
against, and the odd rows never read), two for XSTest's Mistral file. Their labels are
`data/reread_labels.jsonl`, keyed by the reference file's line (ChatGPT) or `id` (XSTest) and the
SHA-256 of the response (its first 16 hex digits), so a changed reference file is reported,
not silently mismatched.

What is measured:

1. agreement of each annotator with the reference labels, and between the two annotators of a
   set; for XSTest, also the agreement of its own two human annotators (`annotation_1`,
   `annotation_2`), the yardstick the LLM annotators are compared with;
2. `auto` across sources on the same rows (fitted on the project's examples plus the other
   reference file, as in section `detector`);
3. tiered detection with a reader as the judge: in a band of auto's probability, the annotator's
   label replaces auto's verdict, the way `roles.detector_judge` does with a judge model. It
   estimates what a capable judge model adds, and which band it needs; a real judge model reads
   less carefully than an annotator with a brief, so these are upper bounds for a given band.

With `--write` the tables and the command go to section `detector: re-reading` of RESULTS.md.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.detector import Corpus, complied_rejected, wilson
from benchmarks.results import publish
from evorefuse.scoring.refusal.base import COMPLIANCE
from evorefuse.scoring.refusal.sources import CHATGPT_JSONL as CHATGPT_FILE
from evorefuse.scoring.refusal.sources import MISTRAL_CSV as XSTEST_FILE
from evorefuse.scoring.refusal.sources import TONES

SECTION = "detector: re-reading"
LABELS = Path(__file__).resolve().parent / "data" / "reread_labels.jsonl"
ABOUT = (
    "Why: `auto` stalls near 0.92 on the ChatGPT study's complied-vs-rejected responses. Either "
    "the labels disagree with a careful reading, and no detector can do much better, or `auto` "
    "misses what a reader sees. The reference responses were re-labelled without their labels "
    "by LLM annotators, two per set, each working alone from a brief "
    "(`benchmarks/data/reread_brief_*.md`; labels in `benchmarks/data/reread_labels.jsonl`). "
    "The odd ChatGPT rows' annotators are still the only readers those rows have had; no "
    "pattern or fitted weight was changed from their labels, only the tiered detector's default "
    "band was chosen from the last table. How to read the tables: where the readers "
    "agree with the labels and with each other well above `auto`, its misses are a reader's to "
    "fix (a judge model on the uncertain band), not noise in the labels. A judge model reads "
    "less carefully than an annotator with a brief, so the tiered rows are upper bounds for "
    "their band.")
BANDS = [(0.3, 0.7), (0.2, 0.8), (0.15, 0.85), (0.1, 0.9), (0.05, 0.95), (0.0, 1.0)]


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Reading:
    """One annotator's label of one reference response."""

    source: str      # "chatgpt" or "mistral"
    key: str         # ChatGPT: 1-based line of the file; XSTest: its `id`
    digest: str      # sha() of the response the annotator read
    annotator: str
    label: str       # an XSTest label; ChatGPT's complied/rejected are mapped on reading
    sure: bool

    @property
    def refusal(self) -> bool:
        return self.label != COMPLIANCE


def load_readings(path: Path = LABELS) -> list[Reading]:
    return [Reading(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def reference_keys() -> dict[str, list[tuple[str, str]]]:
    """Per source, (key, response) of each response in the order `sources` loads them (ChatGPT:
    only the tones it keeps), so a corpus example's position finds its key."""
    chatgpt = []
    for n, line in enumerate(CHATGPT_FILE.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip() and TONES[(d := json.loads(line))["tone"]] is not None:
            chatgpt.append((str(n), d["response"]))
    with XSTEST_FILE.open(encoding="utf-8", newline="") as f:
        mistral = [(r["id"], r["completion"]) for r in csv.DictReader(f)]
    return {"chatgpt": chatgpt, "mistral": mistral}


def human_agreement() -> tuple[int, int, int]:
    """XSTest's two human annotators: rows, binary agreements, 3-way agreements."""
    with XSTEST_FILE.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    binary = sum((r["annotation_1"] != COMPLIANCE) == (r["annotation_2"] != COMPLIANCE)
                 for r in rows)
    return len(rows), binary, sum(r["annotation_1"] == r["annotation_2"] for r in rows)


def fmt(k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return f"{k / n:.3f} ({lo:.3f}-{hi:.3f})"


@dataclass
class Group:
    """One set of reference rows, its two annotators, and auto's cross-source verdicts on it."""

    title: str
    gold: np.ndarray                 # reference refusal (bool)
    gold3: list[str]                 # reference XSTest label ("" where the source has none)
    p_auto: np.ndarray
    auto: np.ndarray
    readers: dict[str, list[Reading]]


def groups(c: Corpus, readings: Sequence[Reading]) -> list[Group]:
    keys = reference_keys()
    by_key: dict[tuple[str, str], dict[str, Reading]] = {}
    for r in readings:
        by_key.setdefault((r.source, r.key), {})[r.annotator] = r
    position = {id(e): ("mistral", i) for i, e in enumerate(c.mistral)}
    position.update({id(e): ("chatgpt", i) for i, e in enumerate(c.chatgpt)})
    chat = c.where("chatgpt", whole_only=True)
    mis = c.where("mistral", whole_only=True)
    to_chatgpt, to_mistral = c.fit(c.where("own", "mistral")), c.fit(c.where("own", "chatgpt"))
    sets = [("ChatGPT c/r, even rows (read)", complied_rejected(c, chat, odd=False), to_chatgpt),
            ("ChatGPT c/r, odd rows (never read)", complied_rejected(c, chat, odd=True),
             to_chatgpt),
            ("Mistral (XSTest)", mis, to_mistral)]
    out = []
    for title, mask, model in sets:
        ex = c.take(mask)
        vs = c.predict(model, mask)
        found = []
        for e in ex:
            source, i = position[id(e)]
            key, response = keys[source][i]
            read = by_key.get((source, key), {})
            if any(r.digest != sha(response) for r in read.values()):
                raise SystemExit(f"{LABELS.name}: {source} row {key} is not the response its "
                                 "annotators read (the reference file changed)")
            found.append(read)
        names = sorted({a for f in found for a in f})
        if len(names) < 2 or any(set(f) != set(names) for f in found):
            raise SystemExit(f"{LABELS.name}: not every row of {title} has the same two or more "
                             "annotators")
        out.append(Group(title, np.array([e.refusal for e in ex]),
                         [e.label if e.source == "mistral" else "" for e in ex],
                         np.array([v.p_refusal for v in vs]), np.array([v.refusal for v in vs]),
                         {a: [f[a] for f in found] for a in names}))
    return out


def agreement_lines(gs: Sequence[Group]) -> list[str]:
    lines = ["| set | n | annotator | agrees with the reference | on its sure rows | 3-way |",
             "|---|---|---|---|---|---|"]
    for g in gs:
        n = len(g.gold)
        for a, rs in g.readers.items():
            y = np.array([r.refusal for r in rs])
            sure = np.array([r.sure for r in rs])
            three = (fmt(sum(r.label == t for r, t in zip(rs, g.gold3)), n)
                     if g.gold3[0] else "-")
            lines.append(f"| {g.title} | {n} | {a} | {fmt(int((y == g.gold).sum()), n)} | "
                         f"{int((y == g.gold)[sure].sum())}/{int(sure.sum())} | {three} |")
        a, b = list(g.readers.values())[:2]
        same = sum(x.refusal == y.refusal for x, y in zip(a, b))
        lines.append(f"| {g.title} | {n} | the two annotators with each other | {fmt(same, n)} | "
                     "- | - |")
        lines.append(f"| {g.title} | {n} | **auto** (cross-source) | "
                     f"{fmt(int((g.auto == g.gold).sum()), n)} | - | - |")
    return lines


def band_accuracies(g: Group, band: tuple[float, float]) -> tuple[float, list[float]]:
    """(share judged, accuracy with each annotator as the judge) when they judge `band`."""
    lo, hi = band
    inside = (g.p_auto >= lo) & (g.p_auto <= hi)
    return float(inside.mean()), [
        float((np.where(inside, [r.refusal for r in rs], g.auto) == g.gold).mean())
        for rs in g.readers.values()]


def narrowest_band(gs: Sequence[Group], goal: float = 0.95) -> str:
    for band in BANDS:
        got = [(share, min(accs)) for share, accs in (band_accuracies(g, band) for g in gs)]
        if all(acc >= goal for _, acc in got):
            return (f"The narrowest band of the grid that brings every set to {goal} or more with "
                    f"either annotator as the judge: {band[0]}-{band[1]} (judging "
                    + ", ".join(f"{share:.2f}" for share, _ in got) + " of the sets' responses).")
    return f"No band of the grid brings every set to {goal} with either annotator as the judge."


def tiered_lines(gs: Sequence[Group]) -> list[str]:
    head = "| band of auto's P(refusal) | " + " | ".join(
        f"{g.title}: share judged, accuracy" for g in gs) + " |"
    lines = [head, "|---|" + "---|" * len(gs)]
    for lo, hi in BANDS:
        cells = []
        for g in gs:
            share, accs = band_accuracies(g, (lo, hi))
            cells.append(f"{share:.2f}, {min(accs):.3f}-{max(accs):.3f}")
        name = "all (the annotators alone)" if (lo, hi) == (0.0, 1.0) else f"{lo}-{hi}"
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--write", action="store_true", help="write the section into RESULTS.md")
    a = ap.parse_args()
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    gs = groups(Corpus(embeddings=False), load_readings())
    n, binary, three = human_agreement()
    lines = [("**Agreement with the reference labels** (95% Wilson intervals; refusal = full or "
             "partial; 'sure' = rows the annotator marked as ones a careful second annotator "
             "would not dispute):"), "", *agreement_lines(gs), "",
             (f"XSTest's own two human annotators agree with each other on {fmt(binary, n)} of "
              f"its {n} Mistral responses (refusal or not), {fmt(three, n)} on the 3-way label."),
             "", ("**Tiered detection with a reader as the judge** (the annotator's label replaces "
                  "auto's inside the band; the range is over the two annotators):"), "",
             *tiered_lines(gs), "", narrowest_band(gs), "",
             f"Whole run {time.perf_counter() - t0:.0f} s."]
    print("\n".join(lines))
    if a.write:
        publish(SECTION, "python benchmarks/detector_reread.py --write", load0, ABOUT, "", *lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
