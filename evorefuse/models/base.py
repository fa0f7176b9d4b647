"""The one chat interface every role (mutator, judge, target, responder) talks through.

Both implementations (OpenAI-compatible HTTP, embedded llama.cpp) return the same plain dataclasses,
so the cache can store them as JSON and replay them byte-for-byte on resume.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": "..."}


@dataclass(frozen=True)
class SamplingParams:
    """Sampling parameters of one request. `n` samples are drawn; each is cached on its own."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 256
    seed: int | None = None
    n: int = 1
    logprobs: bool = False
    top_logprobs: int = 0

    def cache_fields(self) -> dict[str, Any]:
        """What identifies one sample's distribution: everything except `n`."""
        d = asdict(self)
        d.pop("n")
        return d


@dataclass
class TokenLogprob:
    token: str
    logprob: float
    top: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class Choice:
    text: str
    finish_reason: str = "stop"  # "stop", "length", "content_filter"
    logprobs: list[TokenLogprob] | None = None
    completion_tokens: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "finish_reason": self.finish_reason,
            "completion_tokens": self.completion_tokens,
            "logprobs": None if self.logprobs is None else [
                [t.token, t.logprob, [list(x) for x in t.top]] for t in self.logprobs
            ],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Choice:
        lps = d.get("logprobs")
        return cls(
            text=d["text"],
            finish_reason=d.get("finish_reason", "stop"),
            completion_tokens=d.get("completion_tokens", 0),
            logprobs=None if lps is None else [
                TokenLogprob(tok, lp, [(a, b) for a, b in top]) for tok, lp, top in lps
            ],
        )

    @property
    def blocked(self) -> bool:
        """A provider's content filter answered instead of the model: counts as a refusal."""
        return self.finish_reason == "content_filter"


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __iadd__(self, other: Usage) -> Usage:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        return self


@dataclass
class ChatResult:
    choices: list[Choice]
    usage: Usage = field(default_factory=Usage)
    cache_hits: int = 0  # how many of the choices came from the cache (cost nothing)
    retries: int = 0
    batch: bool = False  # answered through the Batch API (billed at the batch rate)


class ChatModel(Protocol):
    """A raw model backend. No caching, ledger or budget here: `Endpoint` adds those.

    `complete` draws `params.n` samples. `sample_offset` is the index of the first sample, so a backend
    that seeds per sample (the local model) draws sample i identically whether it is asked for
    samples 0..9 at once or sample i alone (needed to fill cache gaps exactly).
    """

    name: str        # the endpoint name from the config, e.g. "local", "gpt4o"
    model: str       # the provider's model id
    supports_logprobs: bool

    async def complete(self, messages: Sequence[Message], params: SamplingParams,
                       sample_offset: int = 0) -> ChatResult: ...

    async def aclose(self) -> None: ...
