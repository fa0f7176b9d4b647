"""Would fine-tuning MiniLM as a refusal classifier make `auto` hold on unseen assistants?

    python benchmarks/detector_finetune.py [--write] [--epochs 2] [--only c/r|mistral] [--limit N]

all-MiniLM-L6-v2 (torch, CPU, float32) with a linear head on its mean-pooled output is fine-tuned
on the opening (`learned.first_sentences`: two sentences, <= 300 characters, <= 96 tokens) of the
responses the patterns leave to the head, fitted on the project's examples plus one reference file
and measured on the other, both ways, as `benchmarks/detector.py` measures `auto`. Three readings of
its logit z: alone, added to the lite head's logit, and added at half weight. Slow: about 20 min of
CPU per direction on a shared 2-core machine; `--limit` caps the training rows for a smoke run.
Measurement only: `auto` must not import torch, so nothing here ships.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import date

import numpy as np

from benchmarks.detector import Corpus, Metrics, complied_rejected, wilson
from evorefuse.scoring.embeddings import model_path
from evorefuse.scoring.refusal.learned import first_sentences, verdicts

SECTION = "detector: fine-tuned MiniLM"
MAX_TOKENS = 96
BATCH = 32
LEARNING_RATE = 4e-5


def fine_tune(texts: list[str], labels: np.ndarray,
              epochs: int) -> Callable[[list[str]], np.ndarray]:
    """The fine-tuned classifier, as a function from texts to logits."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(2)
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(model_path())

    class Classifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc = AutoModel.from_pretrained(model_path())
            self.lin = torch.nn.Linear(self.enc.config.hidden_size, 1)

        def forward(self, texts: list[str]) -> torch.Tensor:
            b = tok(texts, padding=True, truncation=True, max_length=MAX_TOKENS,
                    return_tensors="pt")
            h = self.enc(**b).last_hidden_state
            m = b["attention_mask"].unsqueeze(-1).float()
            return self.lin((h * m).sum(1) / m.sum(1)).squeeze(-1)

    model = Classifier()
    opt = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=0.01)
    y = torch.tensor(labels, dtype=torch.float32)
    steps = epochs * ((len(texts) + BATCH - 1) // BATCH)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 - s / steps)
    rng = np.random.default_rng(0)
    model.train()
    t0 = time.perf_counter()
    for epoch in range(epochs):
        order = rng.permutation(len(texts))
        for k in range(0, len(texts), BATCH):
            j = order[k:k + BATCH]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                model([texts[q] for q in j]), y[j])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        print(f"  epoch {epoch}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    model.eval()

    def logits(batch: list[str]) -> np.ndarray:
        with torch.no_grad():
            return np.concatenate([model(batch[k:k + 64]).numpy()
                                   for k in range(0, len(batch), 64)] or [np.zeros(0)])
    return logits


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--only", choices=["c/r", "mistral"], default=None)
    ap.add_argument("--limit", type=int, default=0, help="cap the training rows (smoke run)")
    args = ap.parse_args()
    c = Corpus(embeddings=False)
    y = np.array([e.refusal for e in c.examples], dtype=int)
    chat = c.where("chatgpt", whole_only=True)
    tests = [("c/r", complied_rejected(c, chat), ("own", "mistral")),
             ("odd", complied_rejected(c, chat, odd=True), ("own", "mistral")),
             ("mistral", c.where("mistral", whole_only=True), ("own", "chatgpt"))]
    lines = [("| reading (fitted on own + the other reference file) | test | binary accuracy "
              "| 3-way |"), "|---|---|---|---|"]
    tuned: dict[tuple[str, ...], Callable[[list[str]], np.ndarray]] = {}
    for title, test, fit_on in tests:
        if args.only and title.replace("odd", "c/r") != args.only:
            continue
        if fit_on not in tuned:
            train = np.flatnonzero(c.where(*fit_on) & ~c.feats.explicit)
            if args.limit:
                train = train[np.random.default_rng(0).permutation(len(train))[:args.limit]]
            print(f"fine-tuning on {' + '.join(fit_on)}: {len(train)} responses", file=sys.stderr)
            tuned[fit_on] = fine_tune([first_sentences(c.examples[i].response) for i in train],
                                      y[train], args.epochs)
        auto = c.fit(c.where(*fit_on))
        te = np.flatnonzero(test)
        z = tuned[fit_on]([first_sentences(c.examples[i].response) for i in te])
        p = np.clip(auto.lite.score(c.feats.X[te]), 1e-4, 1 - 1e-4)
        lite_logit = np.log(p / (1 - p))
        analyses = [c.feats.analyses[i] for i in te]
        for name, zz in (("auto (lite head; baseline)", lite_logit), ("fine-tuned alone", z),
                         ("lite + fine-tuned logit", lite_logit + z),
                         ("lite + half the fine-tuned logit", lite_logit + z / 2)):
            m = Metrics.of(verdicts(1 / (1 + np.exp(-zz)), analyses, auto), c.take(test))
            lo, hi = wilson(round(m.acc * m.n), m.n)
            lines.append(f"| {name} | {title} (n={m.n}) | {m.acc:.3f} ({lo:.3f}-{hi:.3f}) | "
                         f"{m.acc3:.3f} |")
            print(lines[-1], flush=True)
    text = "\n".join([
        (f"Command: `python benchmarks/detector_finetune.py --write --epochs {args.epochs}` · "
         f"date {date.today()} · machine shared with other jobs while measured."), "",
        ("all-MiniLM-L6-v2 fine-tuned (torch, CPU) on the openings of the responses the patterns "
         "leave to the head, fitted on own + one reference file, measured on the other; "
         "c/r = ChatGPT complied vs rejected, odd = its odd half; 95% Wilson intervals."), "",
        *lines, ""])
    if args.write and not (args.only or args.limit):
        from benchmarks.results import replace_section
        replace_section(SECTION, text)
        print("updated benchmarks/RESULTS.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
