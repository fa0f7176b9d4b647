"""What a call may cost before it is sent, and what it cost once billed.

The worst case must hold whatever tokenizer the provider bills with, since budgets are checked
against it. The bound on prompt tokens is the UTF-8 byte count of every message (content and role)
plus a per-message and a per-request template allowance:

- byte-level BPE (GPT-2, tiktoken's cl100k/o200k, Llama 3, Qwen, SmolLM): every byte of the text
  is one base symbol and merges only join symbols, so the text never takes more tokens than
  bytes; special tokens in the text (`<|im_end|>` parsed as one token) only lower the count;
- SentencePiece with byte fallback (Llama 2, Mistral, Gemma): a character either has a piece or
  falls back to one token per byte, and the dummy-prefix `▁` adds at most one token per message;
- WordPiece and character vocabularies: at most one token per character, fewer than bytes;
- the chat template adds role markers and separators around each message (OpenAI documents 3 to 4
  tokens; Llama 3 about 5; the role name is counted as bytes) and, once per request, the reply
  priming and any default system prompt the template inserts when none is given (SmolLM2's and
  Qwen's are about 20 tokens, Llama 3.1's dated preamble about 25).

`benchmarks/token_bound.py` checks the bound against the embedded model's byte-level BPE and its
chat template on the reference sets' prompts and responses and on texts in 16 languages.

A provider can still bill more: a hidden system prompt, tool definitions, a reasoning model's
hidden tokens. `Endpoint` therefore reconciles: after every call it compares the bill with this
bound and scales the worst case of its later calls by the largest ratio seen.
"""

from __future__ import annotations

from collections.abc import Sequence

from evorefuse.models.base import Message
from evorefuse.models.spec import ModelSpec

MESSAGE_OVERHEAD = 8    # template tokens around one message, beyond its role name
REQUEST_OVERHEAD = 64   # reply priming and a default system prompt a template may insert


def prompt_token_bound(messages: Sequence[Message]) -> int:
    """More prompt tokens than any byte-level or byte-fallback tokenizer bills for `messages`."""
    total = REQUEST_OVERHEAD
    for m in messages:
        total += (len((m.get("content") or "").encode("utf-8"))
                  + len((m.get("role") or "").encode("utf-8")) + MESSAGE_OVERHEAD)
    return total


def price_factor(spec: ModelSpec, *, batch: bool) -> float:
    """1.0 at the standard rate; `batch_discount` for calls made through the Batch API."""
    return spec.batch_discount if batch else 1.0


def call_cost(spec: ModelSpec, prompt_tokens: int, completion_tokens: int, *,
              batch: bool = False) -> float:
    """USD of one call as billed (`batch`: it went through the Batch API)."""
    return spec.cost(prompt_tokens, completion_tokens) * price_factor(spec, batch=batch)


def planned_cost(spec: ModelSpec, prompt_tokens: int, completion_tokens: int) -> float:
    """USD a planned call will cost on this model: at the batch rate when the model is batched
    (what `evolve --dry-run` prints), the standard rate otherwise."""
    return call_cost(spec, prompt_tokens, completion_tokens, batch=spec.batch)


def reserve_factor(spec: ModelSpec) -> float:
    """The price factor to reserve a call at: a batched model whose failed lines are retried
    directly may pay the standard rate for any call."""
    return price_factor(spec, batch=spec.batch and spec.batch_retry != "direct")
