"""Cheaper embedders: would a faster model make the engine's checks decide as the shipped one does?

At 1,000 lineages the sentence embedder is most of the orchestrator's CPU (section `scale`): the int8
MiniLM costs about 4 ms per candidate, one text per call (`scoring.minilm_onnx` says why). This
measures what cheaper models would cost and how often their decisions differ from the shipped
model's, on the same texts:

- `static`: one vector per vocabulary token, each token run alone through the shipped int8 model
  (mean of its outputs), centred and reduced to 256 dimensions by PCA; a text is the mean of its
  tokens' vectors (the model2vec recipe, without its frequency weights, which need a corpus);
- `int8 L2`, `L3`, `L4`: the shipped weights cut to their first 2, 3 or 4 of 6 transformer layers,
  exported and quantised like the shipped model;
- `float` (sentence-transformers on torch): the model the shipped int8 one replaced, as the yardstick
  of how much a change of backend already moved the decisions.

Decisions: near-duplicate (a text's highest cosine similarity to another text of its pool is at or
above the threshold; shipped 0.945) and off-topic (a rewrite's similarity to its seed is below the
threshold; shipped 0.295). Each cheaper model gets its own thresholds, fitted to reproduce the
shipped decisions on the other sources and measured on the held-out one. Sources: the shipped seeds,
XSTest's prompts and EvoRefuse-Test's items (each also framed like an engine incumbent, as in
`benchmarks/embeddings.py`), and every candidate of a loopback evolution (`benchmarks/scale.py`'s
server and seeds: the texts the engine actually checks, with their seeds for the off-topic pairs).

    .venv/bin/python benchmarks/cheaper_embedders.py [--lineages 300] [--generations 2] [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import scale  # noqa: E402
from benchmarks.embeddings import framed, sources  # noqa: E402
from benchmarks.results import load_note, replace_section  # noqa: E402
from evorefuse.config import EvolutionSection  # noqa: E402
from evorefuse.evolution.gate import MIN_SEED_SIMILARITY  # noqa: E402
from evorefuse.languages import mostly_latin  # noqa: E402
from evorefuse.scoring import embeddings, minilm_onnx  # noqa: E402

NEAR_DUPLICATE = EvolutionSection().near_duplicate
KNIFE_EDGE = 0.01  # "close to the threshold": within this of it
STATIC_DIMS = 256


@dataclass
class Source:
    """One pool of texts, and the (seed, rewrite) pairs the off-topic check would see."""

    name: str
    texts: list[str]
    pairs: list[tuple[int, int]]


Encode = Callable[[Sequence[str]], np.ndarray]


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def reference_sources() -> list[Source]:
    """Seeds, XSTest and EvoRefuse-Test, each text with its framed rewrite (embeddings.py's pool)."""
    out = []
    for name, texts in sources().items():
        n = len(texts)
        pairs = [(i, n + i) for i in range(n)] + [(i, n + (i * 31 + 17) % n) for i in range(n)]
        out.append(Source(name, texts + framed(texts), pairs))
    return out


def run_source(lineages: int, generations: int) -> tuple[Source, float]:
    """Every distinct candidate of a loopback evolution, and each paired with its lineage's seed."""
    a = SimpleNamespace(lineages=lineages, generations=generations, latency=0.02, concurrency=128)
    outcome = scale.run_once(a, "onnx")
    rows = [json.loads(l) for l in (outcome.run_dir / "archive.jsonl").open()]
    scale.discard(outcome)
    index: dict[str, int] = {}
    seed_of: dict[int, int] = {}
    pairs = []
    for r in rows:
        text = r.get("prompt")
        if not text:
            continue
        i = index.setdefault(text, len(index))
        if r["strategy"] == "seed":
            seed_of[r["lineage"]] = i
        elif r["lineage"] in seed_of:
            pairs.append((seed_of[r["lineage"]], i))
    return Source("loopback run", list(index), pairs), outcome.wall


def static_encoder(shipped: minilm_onnx.OnnxMiniLM) -> tuple[Encode, float]:
    """Token vectors distilled from the shipped model; returns the encoder and the build's CPU s."""
    t0 = cpu_seconds()
    vocab = shipped.tokenizer.get_vocab()
    cls, sep = vocab["[CLS]"], vocab["[SEP]"]
    vectors = np.zeros((len(vocab), embeddings.DIM), np.float64)
    for start in range(0, len(vocab), 512):  # all inputs have 3 tokens: no padding
        ids = np.array([[cls, i, sep] for i in range(start, min(len(vocab), start + 512))], np.int64)
        hidden = shipped._hidden({"input_ids": ids, "attention_mask": np.ones_like(ids),
                                  "token_type_ids": np.zeros_like(ids)})
        vectors[start:start + len(ids)] = hidden.mean(axis=1)
    centred = vectors - vectors.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    table = (centred @ vt[:STATIC_DIMS].T).astype(np.float32)
    tokenizer = shipped.tokenizer

    def encode(texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), STATIC_DIMS), np.float32)
        for i, text in enumerate(texts):
            ids = tokenizer.encode(text, add_special_tokens=False).ids
            if ids:
                v = table[ids].mean(axis=0)
                out[i] = v / max(float(np.linalg.norm(v)), 1e-12)
        return out

    return encode, cpu_seconds() - t0


def truncated_encoder(weights: str, layers: int, folder: Path) -> Encode:
    model = minilm_onnx.build(weights, folder / f"L{layers}", layers=layers)
    return minilm_onnx.OnnxMiniLM(model, os.path.join(weights, "tokenizer.json")).encode


def float_encoder() -> Encode:
    enc = embeddings.load_encoder("torch")
    return lambda texts: np.asarray(enc.encode(texts, batch_size=64), np.float32)


def nearest(emb: np.ndarray) -> np.ndarray:
    """Each row's highest cosine similarity to another row."""
    sims = emb @ emb.T
    np.fill_diagonal(sims, -1.0)
    return sims.max(axis=1)


@dataclass
class Decisions:
    """What one model decides on one source: per text, and per (seed, rewrite) pair."""

    nearest: np.ndarray
    topic: np.ndarray
    latin: np.ndarray  # which texts / pairs the engine decides by cosine at all


def decide(src: Source, emb: np.ndarray) -> Decisions:
    latin_text = np.array([mostly_latin(t) for t in src.texts])
    i = np.array([p[0] for p in src.pairs], int)
    j = np.array([p[1] for p in src.pairs], int)
    topic = np.einsum("ij,ij->i", emb[i], emb[j]) if len(i) else np.zeros(0)
    return Decisions(nearest(emb), topic, latin_text)


def best_threshold(ref: np.ndarray, ref_thr: float, new: np.ndarray, below: bool) -> float:
    """The threshold on `new` that best reproduces `ref >= ref_thr` (or `<`), searched widely:
    a static model's similarities live on another scale."""
    target = ref < ref_thr if below else ref >= ref_thr
    grid = np.round(np.arange(0.05, 0.9995, 0.001), 3)
    scores = [float(np.mean(target == ((new < t) if below else (new >= t)))) for t in grid]
    return float(grid[int(np.argmax(scores))])


def agreement(ref: np.ndarray, ref_thr: float, new: np.ndarray, thr: float, below: bool) -> str:
    if not len(ref):
        return "-"
    a = ref < ref_thr if below else ref >= ref_thr
    b = new < thr if below else new >= thr
    return f"{np.mean(a == b):.3f} ({int(np.sum(a & ~b))}/{int(np.sum(~a & b))})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lineages", type=int, default=300)
    ap.add_argument("--generations", type=int, default=2)
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    load0 = os.getloadavg()[0]
    weights = embeddings.model_path()
    shipped = minilm_onnx.OnnxMiniLM(minilm_onnx.ensure_built(weights),
                                     os.path.join(weights, "tokenizer.json"))
    run, run_wall = run_source(a.lineages, a.generations)
    srcs = [*reference_sources(), run]
    static, static_build = static_encoder(shipped)
    with tempfile.TemporaryDirectory() as tmp:
        models: dict[str, Encode] = {"shipped int8 L6": shipped.encode, "float L6": float_encoder(),
                                     **{f"int8 L{k}": truncated_encoder(weights, k, Path(tmp))
                                        for k in (4, 3, 2)},
                                     "static": static}
        decided: dict[str, dict[str, Decisions]] = {}
        cpu: dict[str, float] = {}
        n_texts = sum(len(s.texts) for s in srcs)
        for name, encode in models.items():
            t0 = cpu_seconds()
            decided[name] = {s.name: decide(s, encode(s.texts)) for s in srcs}
            cpu[name] = (cpu_seconds() - t0) / n_texts * 1000
    ref = decided["shipped int8 L6"]

    lines = [
        (f"Command: `.venv/bin/python benchmarks/cheaper_embedders.py --lineages {a.lineages} "
         f"--generations {a.generations} --write`"),
        (f"Date: {time.strftime('%Y-%m-%d')}; nproc: {os.cpu_count()}; Python "
         f"{platform.python_version()}; {load_note(load0)}."),
        "",
        f"{n_texts} texts: " + ", ".join(f"{s.name} {len(s.texts)}" for s in srcs)
        + f" (the loopback run: {a.lineages} lineages x {a.generations} generations, "
        f"{run_wall:.0f} s). Agreement with the shipped model's decisions at its thresholds "
        f"(near-duplicate {NEAR_DUPLICATE}, off-topic {MIN_SEED_SIMILARITY}), each cheaper model at "
        "thresholds fitted on the other sources; in brackets the texts or pairs flagged by the "
        "shipped model only / by the cheaper one only. Only texts the engine decides by cosine "
        "(mostly Latin script).",
        "",
        "| model | CPU per text (ms) | ratio to shipped | " +
        " | ".join(f"near-dup {s.name}" for s in srcs) + f" | near-dup {run.name}, its own best "
        "threshold | off-topic, all pairs |",
        "|---|---:|---:|" + "---|" * (len(srcs) + 2),
    ]
    own_best: dict[str, float] = {}
    for name in models:
        cells = []
        for held in srcs:
            rest = [s.name for s in srcs if s is not held]
            fit_ref = np.concatenate([ref[s].nearest[ref[s].latin] for s in rest])
            fit_new = np.concatenate([decided[name][s].nearest[ref[s].latin] for s in rest])
            thr = best_threshold(fit_ref, NEAR_DUPLICATE, fit_new, below=False)
            h = ref[held.name].latin
            cells.append(f"{agreement(ref[held.name].nearest[h], NEAR_DUPLICATE, decided[name][held.name].nearest[h], thr, False)} at {thr:.3f}")
        # The most a threshold could do on the run's texts, fitted on them: an upper bound.
        h = ref[run.name].latin
        own = best_threshold(ref[run.name].nearest[h], NEAR_DUPLICATE,
                             decided[name][run.name].nearest[h], below=False)
        cells.append(f"{agreement(ref[run.name].nearest[h], NEAR_DUPLICATE, decided[name][run.name].nearest[h], own, False)} at {own:.3f}")
        own_best[name] = float(np.mean((ref[run.name].nearest[h] >= NEAR_DUPLICATE)
                                       == (decided[name][run.name].nearest[h] >= own)))
        # Off-topic: too few pairs fall below the threshold per source to fit on three and measure
        # on one, so one threshold over all pairs (an upper bound on held-out agreement).
        t_ref = np.concatenate([ref[s.name].topic for s in srcs])
        t_new = np.concatenate([decided[name][s.name].topic for s in srcs])
        t_thr = best_threshold(t_ref, MIN_SEED_SIMILARITY, t_new, below=True)
        cells.append(f"{agreement(t_ref, MIN_SEED_SIMILARITY, t_new, t_thr, True)} at {t_thr:.3f}")
        lines.append(f"| {name} | {cpu[name]:.2f} | {cpu[name] / cpu['shipped int8 L6']:.2f} | "
                     + " | ".join(cells) + " |")
    cheaper = [m for m in models if m not in ("shipped int8 L6", "float L6")]
    best = max(cheaper, key=lambda m: own_best[m])
    lines += ["", (f"On the candidates of the run, with the threshold fitted on them, the best "
                   f"cheaper model ({best}) repeats {own_best[best]:.3f} of the shipped near-duplicate "
                   f"decisions; the float model, which the shipped one replaced, "
                   f"{own_best['float L6']:.3f}. A cheaper model is worth its CPU only if it comes "
                   "near the float model here.")]
    edge = [f"{s.name} {np.mean(np.abs(ref[s.name].nearest[ref[s.name].latin] - NEAR_DUPLICATE) <= KNIFE_EDGE):.2f}"
            for s in srcs]
    lines += ["", (f"Share of texts whose nearest neighbour under the shipped model lies within "
                   f"{KNIFE_EDGE} of the near-duplicate threshold: {', '.join(edge)}. The static "
                   f"table is built once from the shipped model ({static_build:.0f} s of CPU, not in "
                   "its per-text figure).")]
    body = "\n".join(lines)
    print(body)
    if a.write:
        replace_section("cheaper_embedders", body)


if __name__ == "__main__":
    main()
