"""Refusal detectors on XSTest's human-labelled responses: accuracy, precision, recall, F1, Brier, speed.

    python benchmarks/detector.py [--write] [--judge-n 40] [--folds 5]

Data: ../shared/reference/xstest_v2_completions_mistralinstruct.csv (450 Mistral-7B-Instruct
responses, refusal = full or partial refusal). The learned and auto detectors are trained on these
very responses (plus the project's own data), so their figures here are 5-fold cross-validated: per
fold the model is refitted with the training script's own functions (`train.fit_model`) on the
project's data plus the other four folds, and scored on the held-out fold. The pattern detector has
no fitted parameters (its probabilities are set by hand). The judge runs on the embedded 135M
model, which is far too small to be a good judge: it is measured on a balanced subsample only, to
show the plumbing works, not as a serious figure; the other detectors are reported on the same
subsample for comparison.

Speed is measured on this machine with the shipped model: in-process (after loading models) and
through the CLI (`evorefuse detect`, the summary line's responses/s, plus the wall time with
process start-up).

`--write` replaces the `## detector` section of benchmarks/RESULTS.md (other sections are kept).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evorefuse.scoring.refusal import train as T  # noqa: E402
from evorefuse.scoring.refusal.auto import EMBED_BAND, AutoDetector  # noqa: E402
from evorefuse.scoring.refusal.base import Verdict  # noqa: E402
from evorefuse.scoring.refusal.learned import (  # noqa: E402
    LearnedDetector,
    LearnedModel,
    first_sentences,
)
from evorefuse.scoring.refusal.patterns import PatternDetector  # noqa: E402

RESULTS = ROOT / "benchmarks" / "RESULTS.md"
SECTION = "## detector"


def metrics(verdicts: Sequence[Verdict], examples: Sequence[T.Example]) -> dict[str, float]:
    y = np.array([e.refusal for e in examples])
    r = np.array([v.refusal for v in verdicts])
    p = np.array([v.p_refusal for v in verdicts])
    tp = int(np.sum(r & y))
    fp = int(np.sum(r & ~y))
    fn = int(np.sum(~r & y))
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    return {
        "n": len(examples), "acc": float(np.mean(r == y)), "prec": prec, "rec": rec,
        "f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0,
        "brier": float(np.mean((p - y) ** 2)),
        "acc3": float(np.mean([v.label == e.label for v, e in zip(verdicts, examples)])),
        "unknown": int(sum(v.label == "unknown" for v in verdicts)),
    }


def cross_validate(own: list[T.Example], ref: list[T.Example], cut: list[T.Example],
                   origin: list[int], feats: T.Features, folds: int,
                   embed_lookup: Callable[[Sequence[str]], np.ndarray]
                   ) -> dict[str, list]:
    """Out-of-fold verdicts on `ref` for: the learned detector (full head), the lite head alone,
    and the auto detector (its real code, with the fold's model). Also the auto detector on the
    held-out responses' openings (first 200 characters, about the 50 tokens fitness reads), fitted
    with and without the training openings (`T.openings`) of the training folds; an opening never
    trains a fold that holds its original out."""
    from sklearn.model_selection import StratifiedKFold

    no = len(own)
    whole = own + ref
    everything = whole + cut
    origin_arr = np.asarray(origin)
    y = np.array([e.refusal for e in ref])
    names = ("learned", "lite", "auto", "auto+emb")
    out: dict[str, list[Verdict | None]] = {k: [None] * len(ref) for k in names}
    opening_examples: list[T.Example] = []
    opening_runs: dict[str, list[Verdict]] = {"pattern": [], "auto": [], "auto, no openings": []}
    embedded = 0
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=T.SEED)
    for tr, te in skf.split(np.zeros(len(ref)), y):
        train_whole = np.r_[np.arange(no), no + tr]
        idx = np.r_[train_whole, len(whole) + np.flatnonzero(np.isin(origin_arr, train_whole))]
        model = T.fit_model(feats.take(idx), [everything[i] for i in idx])
        plain = T.fit_model(feats.take(train_whole), [everything[i] for i in train_whole])
        held = feats.take(no + te)
        fold_responses = [ref[i].response for i in te]
        with_emb = AutoDetector(LearnedModel.from_json(model), embed_fn=embed_lookup,
                                band=EMBED_BAND)
        runs = {
            "learned": T.predict(model, held, "full"),
            "lite": T.predict(model, held, "lite"),
            "auto": AutoDetector(LearnedModel.from_json(model)).detect(
                [""] * len(te), fold_responses),
            "auto+emb": with_emb.detect([""] * len(te), fold_responses),
        }
        embedded += with_emb.embedded
        for k, vs in runs.items():
            for j, i in enumerate(te):
                out[k][i] = vs[j]
        cuts = [T.Example(ref[i].prompt, T.truncate(ref[i].response, T.TRUNCATE_AT[-1]),
                          ref[i].label, "reference:opening")
                for i in te if ref[i].label != T.PARTIAL_REFUSAL
                and len(ref[i].response) > T.TRUNCATE_AT[-1] + 40]
        texts = [c.response for c in cuts]
        opening_examples += cuts
        opening_runs["pattern"] += PatternDetector().detect([""] * len(texts), texts)
        opening_runs["auto"] += AutoDetector(LearnedModel.from_json(model)).detect(
            [""] * len(texts), texts)
        opening_runs["auto, no openings"] += AutoDetector(LearnedModel.from_json(plain)).detect(
            [""] * len(texts), texts)
    result: dict[str, list] = {k: [v for v in vs if v is not None] for k, vs in out.items()}
    result["_embedded"] = embedded  # type: ignore[assignment]
    result["_openings"] = [opening_examples, opening_runs]
    return result


def speed_in_process(name: str, responses: list[str]) -> tuple[float, float]:
    """(responses/s after warm-up, seconds of model loading) with the shipped model."""
    from evorefuse.scoring import embeddings

    t = time.perf_counter()
    det = {"pattern": PatternDetector, "learned": LearnedDetector, "auto": AutoDetector,
           "auto+emb": lambda: AutoDetector(band=EMBED_BAND)}[name]()
    det.detect([""], ["warm up"])
    if name in ("learned", "auto+emb"):
        embeddings.embed(["warm up the embedding model"])
    load = time.perf_counter() - t
    embeddings.clear_cache()
    t = time.perf_counter()
    det.detect([""] * len(responses), responses)
    return len(responses) / (time.perf_counter() - t), load


def speed_cli(responses: list[str], detector: str) -> tuple[float, float]:
    """(responses/s reported by `evorefuse detect`, wall seconds including process start-up)."""
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "in.jsonl"
        src.write_text("".join(json.dumps({"completion": r}) + "\n" for r in responses),
                       encoding="utf-8")
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "evorefuse", "detect", str(src), "--detector",
                               detector, "--out", str(Path(d) / "out.jsonl")],
                              capture_output=True, text=True, cwd=ROOT)
        wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"CLI failed: {proc.stderr.strip()}")
    m = re.search(r"(\d+) responses/s", proc.stderr)
    return (float(m.group(1)) if m else float("nan")), wall


def judge_subsample(ref: list[T.Example], n: int, seed: int = 0) -> list[int]:
    """Balanced: n/2 refusals and n/2 compliances, drawn with a fixed seed."""
    rng = random.Random(seed)
    pos = [i for i, e in enumerate(ref) if e.refusal]
    neg = [i for i, e in enumerate(ref) if not e.refusal]
    return sorted(rng.sample(pos, n // 2) + rng.sample(neg, n - n // 2))


def run_judge(ref: list[T.Example], idx: list[int]) -> tuple[list[Verdict], float, int]:
    import asyncio

    from evorefuse.scoring.refusal.judge import JudgeDetector, local_endpoint

    det = JudgeDetector(local_endpoint())
    t = time.perf_counter()
    vs = asyncio.run(det.adetect([ref[i].prompt for i in idx], [ref[i].response for i in idx]))
    return vs, len(idx) / (time.perf_counter() - t), det.repaired


def row(name: str, m: dict[str, float], speed: str, note: str = "") -> str:
    return (f"| {name} | {m['n']} | {m['acc']:.3f} | {m['prec']:.3f} | {m['rec']:.3f} | "
            f"{m['f1']:.3f} | {m['brier']:.4f} | {m['acc3']:.3f} | {speed} | {note} |")


HEADER = ("| detector | n | accuracy | precision | recall | F1 | Brier | 3-way label acc. | "
          "responses/s | how measured |\n|---|---|---|---|---|---|---|---|---|---|")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--judge-n", type=int, default=40, help="judge subsample size (0: skip)")
    ap.add_argument("--reference", type=Path, default=T.REFERENCE_CSV)
    args = ap.parse_args()
    if not args.reference.is_file():
        print(f"reference data not available: {args.reference} is missing", file=sys.stderr)
        return 2

    ref = T.load_reference(args.reference)
    own = T.load_own()
    t0 = time.perf_counter()
    cut, origin = T.openings(own + ref)
    feats = T.features(own + ref + cut)
    print(f"features for {len(own) + len(ref) + len(cut)} responses in {time.perf_counter() - t0:.1f} s",
          file=sys.stderr)
    table = {first_sentences(e.response): feats.E[i] for i, e in enumerate(own + ref + cut)}

    def embed_lookup(texts: Sequence[str]) -> np.ndarray:
        return np.stack([table[t] for t in texts]) if texts else np.zeros((0, 384))

    responses = [e.response for e in ref]
    pattern_v = PatternDetector().detect([e.prompt for e in ref], responses)
    cv = cross_validate(own, ref, cut, origin, feats, args.folds, embed_lookup)
    gray = cv.pop("_embedded")
    opening_examples, opening_runs = cv.pop("_openings")

    speeds = {name: speed_in_process(name, responses)
              for name in ("pattern", "learned", "auto", "auto+emb")}
    cli_auto, cli_wall = speed_cli(responses, "auto")
    cli_pattern, cli_pattern_wall = speed_cli(responses, "pattern")
    cli_learned, cli_learned_wall = speed_cli(responses, "learned")

    results = {
        "pattern": metrics(pattern_v, ref),
        "learned": metrics(cv["learned"], ref),
        "lite": metrics(cv["lite"], ref),
        "auto": metrics(cv["auto"], ref),
        "auto+emb": metrics(cv["auto+emb"], ref),
    }
    cvnote = f"{args.folds}-fold CV, refitted per fold"
    lines = [HEADER,
             row("pattern", results["pattern"],
                 f"{speeds['pattern'][0]:.0f} (CLI {cli_pattern:.0f})", "no fitted parameters"),
             row("learned (patterns + MiniLM, logistic)", results["learned"],
                 f"{speeds['learned'][0]:.0f} (CLI {cli_learned:.0f})", cvnote),
             row("lite head alone (no embeddings)", results["lite"], "-", cvnote),
             row("**auto** (default: patterns + lite head)", results["auto"],
                 f"{speeds['auto'][0]:.0f} (CLI {cli_auto:.0f})", cvnote),
             row(f"auto + embeddings for lite p in {EMBED_BAND[0]}-{EMBED_BAND[1]}",
                 results["auto+emb"], f"{speeds['auto+emb'][0]:.0f}",
                 f"{cvnote}; embedded {gray} of {len(ref)}")]

    opening_lines = [HEADER] + [
        row(name, metrics(vs, opening_examples), "-",
            "no fitted parameters" if name == "pattern" else
            cvnote + ("; trained on whole responses only" if "no openings" in name else
                      "; training folds' openings included"))
        for name, vs in opening_runs.items()]

    judge_lines: list[str] = []
    if args.judge_n:
        idx = judge_subsample(ref, args.judge_n)
        sub = [ref[i] for i in idx]
        jv, jspeed, repaired = run_judge(ref, idx)
        judge_lines = [
            HEADER,
            row("judge (local SmolLM2-135M)", metrics(jv, sub), f"{jspeed:.2f}",
                f"balanced subsample of {len(idx)}; {repaired} labels only after the format-repair "
                f"turn, {metrics(jv, sub)['unknown']} still unparseable (counted as refusals)"),
            row("pattern", metrics([pattern_v[i] for i in idx], sub), "-", "same subsample"),
            row("auto", metrics([cv["auto"][i] for i in idx], sub), "-", "same subsample, CV"),
        ]

    nproc = os.cpu_count()
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    base_rate = float(np.mean([e.refusal for e in ref]))
    text = "\n".join([
        SECTION,
        "",
        f"Command: `python benchmarks/detector.py --write` · date {date.today()} · machine: "
        f"`nproc` = {nproc}, {cpu} (CPU shared with other jobs while measured).",
        "",
        f"Data: XSTest v2, Mistral-7B-Instruct, {len(ref)} human-labelled responses "
        f"({base_rate:.1%} refusals = full or partial; always answering \"compliance\" scores "
        f"{1 - base_rate:.3f}). Refusal is the positive class. Brier is on p_refusal. "
        f"Trained detectors: out-of-fold predictions of models refitted per fold with "
        f"`evorefuse.scoring.refusal.train` on the project's {len(own)} own examples plus the "
        f"other folds. The pattern detector's rules and packs were written with this set in view "
        f"(a few English soft-refusal and premise-rejection phrasings, and vetoes for definitions "
        f"of crimes and for capability disclaimers), so its figure is optimistic for other models, "
        f"and so are the trained detectors' figures, which use the patterns as features.",
        "",
        *lines,
        "",
        f"Speed: in-process = after loading the models, embedding cache cleared; CLI = the "
        f"responses/s printed by `evorefuse detect` on the same {len(ref)} responses, which "
        f"includes loading the models (wall time with process start-up: auto "
        f"{cli_wall:.1f} s, pattern {cli_pattern_wall:.1f} s, learned {cli_learned_wall:.1f} s: "
        f"importing torch and loading MiniLM is most of the latter).",
        "",
        f"Openings: what fitness and `evaluate` read is the first 24-50 tokens of a response. The "
        f"same held-out responses cut at {T.TRUNCATE_AT[-1]} characters (about 50 tokens; partial "
        f"refusals left out, since their refusal may come after the cut; {len(opening_examples)} "
        f"responses), each fold's model fitted with or without the openings of its training "
        f"responses:",
        "",
        *opening_lines,
        "",
        *([f"Judge on the embedded model, balanced subsample of {args.judge_n} "
           "(a 135M model is not a usable judge; this checks the plumbing, not the method):",
           "", *judge_lines, ""] if judge_lines else []),
        "Published anchors, for comparison only (a different, larger set: XSTest's 2,250 "
        "responses of five models, Röttger et al. 2024): XSTest's prefix string-matcher 88.4% "
        "accuracy, its GPT-4 judge 82.1%. Not measured here.",
        "",
    ])
    print(text)
    if args.write:
        write_section(text)
        print(f"updated {RESULTS}", file=sys.stderr)
    return 0


def write_section(section: str) -> None:
    """Replace (or append) the `## detector` section of RESULTS.md, keeping every other section."""
    from benchmarks.results import replace_section

    replace_section(SECTION.removeprefix("## "), section.split("\n", 1)[1], RESULTS)


if __name__ == "__main__":
    sys.exit(main())
