"""Fine-tuning MiniLM's low-rank adapter for the harm classifier (training only: needs torch).

What is trained: a rank-`RANK` adapter on every linear layer of the six encoder layers (`tuned.
TARGETS`) plus a linear head on the mean-pooled output, with binary cross-entropy (harmful or not),
classes balanced by weighting the harmful ones. The base weights stay frozen, so what ships is the
adapter (`tuned.ADAPTER_FILE`), not a copy of the model.

Why these settings: they were tried once, not swept, on the project's chat-style prompts left out
of training (never on the check sets), against a full fine-tune of every weight (learning rate
4e-5, 3 epochs): the adapter did as well (harmless prompts let through with 95% of harmful ones
kept out: 0.820 against 0.824; the head alone 0.773) at 1/70 of what would ship.
`benchmarks/gate.py` reports the shipped procedure. Batches are groups of prompts of similar length
(less padding), in a seeded order, so a refit on the same machine repeats itself; across machines,
float sums can differ in the last bits.

Scores for fitting the stack (`train.py`) are read back through `tuned.TunedScorer`, i.e. the int8
ONNX model that ships, not the float torch model that was trained.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from evorefuse.scoring.harm.tuned import (
    TARGETS,
    Adapter,
    TunedScorer,
    build_model,
    save_adapter,
)

RANK = 8
ALPHA = 16.0
LEARNING_RATE = 1e-3
EPOCHS = 4
BATCH = 16
MAX_TOKENS = 256  # what the int8 model reads (minilm_onnx.MAX_SEQ_LENGTH)
SEED = 0


def settings(max_tokens: int = MAX_TOKENS) -> list[int | float]:
    """Everything a fine-tuning run's result depends on besides its data: part of the names its
    cached scores and adapters are kept under, so a changed setting never reads a stale one."""
    return [RANK, ALPHA, LEARNING_RATE, EPOCHS, BATCH, max_tokens, SEED]


def low_rank(base: Any, a: np.ndarray | None = None, b: np.ndarray | None = None) -> Any:
    """A torch module computing base(x) + s * B A x with `base` frozen: A random and B zero (the
    adapter starts as the identity) unless given."""
    import torch

    class LowRank(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.base = base
            self.A = torch.nn.Parameter(torch.randn(RANK, base.in_features) * 0.01 if a is None
                                        else torch.from_numpy(np.asarray(a, np.float32)))
            self.B = torch.nn.Parameter(torch.zeros(base.out_features, RANK) if b is None
                                        else torch.from_numpy(np.asarray(b, np.float32)))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.base(x) + (x @ self.A.T @ self.B.T) * (ALPHA / RANK)

    return LowRank()


def wrap(bert: Any, adapter: Adapter | None = None) -> dict[str, Any]:
    """Put a low-rank module around every target layer of a BertModel (in place); the modules by
    adapter key prefix (`L{i}.{target}`)."""
    modules: dict[str, Any] = {}
    for i, layer in enumerate(bert.encoder.layer):
        for target in TARGETS:
            parent_name, _, child = target.rpartition(".")
            parent = layer.get_submodule(parent_name)
            key = f"L{i}.{target}"
            given = adapter is not None and f"{key}.A" in adapter
            modules[key] = low_rank(getattr(parent, child),
                                    adapter[f"{key}.A"] if given else None,
                                    adapter[f"{key}.B"] if given else None)
            setattr(parent, child, modules[key])
    return modules


def fit_adapter(texts: Sequence[str], harmful: Sequence[bool], *, seed: int = SEED,
                epochs: int = EPOCHS, threads: int = 2,
                max_tokens: int = MAX_TOKENS) -> dict[str, np.ndarray]:
    """Train the adapter and head on `texts`; returns the arrays `tuned.save_adapter` writes.
    (`benchmarks/detector_semantic.py` also trains one on refusals, `harmful` then meaning
    "refused", with `max_tokens` 128 to keep the fine-tuning of long responses affordable.)"""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from evorefuse.scoring.embeddings import model_path

    if len(set(map(bool, harmful))) < 2 or len(texts) != len(harmful):
        raise ValueError("fine-tuning needs harmful and harmless prompts, one label per prompt")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    weights = model_path()
    tok = AutoTokenizer.from_pretrained(weights)
    bert = AutoModel.from_pretrained(weights, attn_implementation="eager")
    for p in bert.parameters():
        p.requires_grad = False
    adapters = wrap(bert)
    head = torch.nn.Linear(bert.config.hidden_size, 1)
    params = [p for a in adapters.values() for p in (a.A, a.B)] + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=LEARNING_RATE, weight_decay=0.01)

    y = torch.tensor([float(h) for h in harmful])
    positive = float(y.mean())
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor([(1 - positive) / positive]))
    lengths = np.array([len(t) for t in texts])
    batches_per_epoch = (len(texts) + BATCH - 1) // BATCH
    steps = max(1, epochs * batches_per_epoch)

    def schedule(step: int) -> float:  # 10% warm-up, then linear decay to zero
        return min(1.0, step / (0.1 * steps)) * max(0.0, (steps - step) / (0.9 * steps))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    bert.train()
    for _ in range(epochs):
        # shuffle, sort by length within windows of 50 batches, then shuffle the batches
        order = rng.permutation(len(texts))
        window = BATCH * 50
        order = np.concatenate([w[np.argsort(lengths[w], kind="stable")]
                                for w in np.array_split(order, max(1, len(order) // window))])
        batches = [order[i:i + BATCH] for i in range(0, len(order), BATCH)]
        for k in rng.permutation(len(batches)):
            b = batches[k]
            enc = tok([texts[j] for j in b], padding=True, truncation=True,
                      max_length=max_tokens, return_tensors="pt")
            hidden = bert(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            logits = head((hidden * mask).sum(1) / mask.sum(1)).squeeze(-1)
            loss = loss_fn(logits, y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    out = {f"{name}.{part}": getattr(a, part).detach().numpy().copy()
           for name, a in adapters.items() for part in ("A", "B")}
    out["head.w"] = head.weight.detach().numpy().reshape(-1).copy()
    out["head.b"] = head.bias.detach().numpy().reshape(()).copy()
    out["scale"] = np.asarray(ALPHA / RANK, np.float32)
    return out


@contextmanager
def shipped_scorer(adapter: dict[str, np.ndarray]) -> Iterator[TunedScorer]:
    """`adapter` built into the int8 model it would ship as, for as long as the block runs
    (callers that time scoring keep the build out of the measurement)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "adapter.npz"
        save_adapter(adapter, path)
        yield TunedScorer(path, build_model(path, Path(tmp)))


def score(adapter: dict[str, np.ndarray], texts: Sequence[str]) -> np.ndarray:
    """Log-odds of harm of `texts` under `adapter`, through the int8 model it would ship as."""
    with shipped_scorer(adapter) as scorer:
        return scorer.logits(texts)
