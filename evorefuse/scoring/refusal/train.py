"""Fit the shipped refusal model, `model.json` (python -m evorefuse.scoring.refusal.train).

Training data (see `sources.py`):
- the project's own examples, shipped in `train_data/`: hand-written refusals, partial refusals and
  compliances in seventeen languages, responses written in the manners of two dozen other assistants
  (`written_styles_en.jsonl`: Llama-2 with and without its system prompt, Llama-3, Gemma, Phi-3,
  Qwen, Mistral, GPT-3.5/4, Vicuna, Zephyr and others, labelled by XSTest's definitions), idiom
  combinations (`idioms.json`), and the embedded model's answers to the project's seed prompts;
- the reference files that exist on this machine, read at fit time and never copied into the
  package (only fitted coefficients ship): XSTest's Mistral-7B-Instruct responses and the ChatGPT
  study's responses, tones mapped as `sources.TONES` says.

Every example weighs 1. Fitted on the same data, the file comes out the same byte for byte;
`--check` verifies that. The figures of what this procedure does on data it never saw are in
`benchmarks/detector.py`; the in-sample accuracy printed here is not one of them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import date
from importlib import resources
from pathlib import Path

import numpy as np

from evorefuse.scoring.refusal.base import COMPLIANCE, FULL_REFUSAL
from evorefuse.scoring.refusal.fit import brier, features, fit_model, openings, predict
from evorefuse.scoring.refusal.learned import MODEL_FILE
from evorefuse.scoring.refusal.sources import (
    REFERENCE_SOURCES,
    Example,
    load_own,
    load_references,
)

LOCAL_DATA = "local_smollm2.jsonl"


def training_set(references: Sequence[str] = REFERENCE_SOURCES) -> tuple[list[Example], int]:
    """Own examples, the available reference files, and cut openings of both (and how many of the
    whole responses are reference ones)."""
    refs = load_references(references)
    whole = load_own() + refs
    cut, _ = openings(whole)
    return whole + cut, len(refs)


def build(*, embeddings: bool = True) -> tuple[dict, list[Example]]:
    examples, n_ref = training_set()
    feats = features(examples, embeddings=embeddings)
    model = fit_model(feats, examples)
    by_source: dict[str, int] = {}
    for e in examples:
        by_source[e.source] = by_source.get(e.source, 0) + 1
    model["meta"] = {"trained_on": dict(sorted(by_source.items())), "reference_responses": n_ref,
                     "refusals": int(sum(e.refusal for e in examples))}
    return model, examples


def sample_local(seeds: Path, limit: int, max_tokens: int = 160) -> int:
    """Write `train_data/local_smollm2.jsonl`: the embedded model's answers to our own seed prompts.

    Labels come from the pattern detector and only where it is unambiguous: a pattern-explicit
    refusal is kept as a refusal, an answer with no refusal or soft cue at all as compliance, and
    everything in between is dropped (a wrong label would teach the model its own mistakes). Why
    bother: these are compliant answers in another model's style to sensitive-sounding prompts,
    the hard negatives that keep the detector from learning "sensitive topic = refusal".
    Sampling is seeded (temperature 0.7, seed 0), so reruns give the same file."""
    import asyncio

    from evorefuse.models.base import SamplingParams
    from evorefuse.models.local import LocalBackend
    from evorefuse.scoring.refusal.analysis import analyse
    from evorefuse.scoring.refusal.features import is_explicit

    prompts = [json.loads(line)["prompt"] for line in seeds.read_text(encoding="utf-8").splitlines()
               if line.strip()][:limit]
    backend = LocalBackend()
    params = SamplingParams(temperature=0.7, top_p=0.95, max_tokens=max_tokens, seed=0)
    rows = []
    for prompt in prompts:
        res = asyncio.run(backend.complete([{"role": "user", "content": prompt}], params))
        text = res.choices[0].text.strip()
        if res.choices[0].finish_reason == "length":  # cut mid-sentence: keep complete sentences
            text = text[: max(text.rfind(". "), text.rfind(".\n")) + 1].strip()
        a = analyse(text)
        if not text or a.empty:
            continue
        if is_explicit(a):
            label = FULL_REFUSAL
        elif not a.strong and not a.soft:
            label = COMPLIANCE
        else:
            continue
        rows.append({"prompt": prompt, "response": text, "label": label, "lang": "en",
                     "source": "SmolLM2-135M-Instruct, labelled by the pattern detector"})
    target = Path(str(resources.files("evorefuse.scoring.refusal") / "train_data" / LOCAL_DATA))
    target.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                      encoding="utf-8")
    return len(rows)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m evorefuse.scoring.refusal.train",
                                 description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=None,
                    help="where to write the model (default: the package's model.json)")
    ap.add_argument("--check", action="store_true",
                    help="do not write; exit 1 if the result differs from the shipped model.json")
    ap.add_argument("--sample-local", type=Path, metavar="SEEDS_JSONL", default=None,
                    help=f"first regenerate train_data/{LOCAL_DATA} from the embedded model's "
                         "answers to these prompts (slow: minutes)")
    ap.add_argument("--sample-limit", type=int, default=200)
    ap.add_argument("--lite-only", action="store_true",
                    help="skip the embedding head (fast, for development: `learned` cannot load "
                         "such a model)")
    args = ap.parse_args(argv)
    if args.sample_local is not None:
        n = sample_local(args.sample_local, args.sample_limit)
        print(f"wrote {n} labelled local-model responses to train_data/{LOCAL_DATA}",
              file=sys.stderr)
    model, examples = build(embeddings=not args.lite_only)
    if not model["meta"]["reference_responses"]:
        print("no reference file found under ../shared/reference/: refusing to write a model "
              "fitted on the project's examples alone", file=sys.stderr)
        return 2
    text = json.dumps(model, ensure_ascii=False, separators=(",", ":")) + "\n"
    target = args.out or Path(str(resources.files("evorefuse.scoring.refusal") / MODEL_FILE))
    if args.check:
        same = target.is_file() and target.read_text(encoding="utf-8") == text
        print("model.json reproduced exactly" if same else "model.json differs", file=sys.stderr)
        return 0 if same else 1
    target.write_text(text, encoding="utf-8")
    feats = features(examples, embeddings=False)
    p = np.asarray([v.p_refusal for v in predict(model, feats)])
    y = np.asarray([e.refusal for e in examples], dtype=float)
    print(f"wrote {target} ({len(text) // 1024} KB) on {date.today()}: {len(examples)} examples; "
          f"in-sample accuracy {np.mean((p >= 0.5) == y):.3f}, Brier {brier(p, y):.4f} "
          "(held-out figures: benchmarks/detector.py)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
