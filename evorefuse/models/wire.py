"""The chat-completions wire format: a response body into our dataclasses, an error body into the
exception the user reads. Shared by direct requests and the lines of a batch's output file, which
carry the same bodies.

The JSON is parsed with orjson and validated here: anything not shaped like a chat completion
raises MalformedResponse, which callers retry like a broken body.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson

from .base import ChatResult, Choice, Message, SamplingParams, TokenLogprob, Usage
from .errors import EndpointAuthError, EndpointRequestError, one_line
from .pricing import prompt_token_bound


class MalformedResponse(Exception):
    """The body parsed but is not a chat completion (no choices, no message...)."""


@dataclass
class HTTPFailure:
    """A non-2xx answer, whichever path sent the request."""
    status: int
    headers: Mapping[str, str]
    body: Any  # the decoded JSON error body, or its text

    @classmethod
    def of(cls, status: int, headers: Mapping[str, str], content: bytes) -> HTTPFailure:
        try:
            body: Any = orjson.loads(content)
        except orjson.JSONDecodeError:
            body = content.decode("utf-8", "replace")
        return cls(status, headers, body)


def is_content_filter(failure: HTTPFailure) -> bool:
    """OpenAI: error.code == "content_filter"; Azure: the same, or details in error.innererror."""
    body = failure.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    parts: list[str] = []
    if isinstance(body, dict):
        for key in ("code", "type", "innererror", "message"):
            if body.get(key) is not None:
                parts.append(json.dumps(body[key]) if not isinstance(body[key], str) else body[key])
    else:
        parts.append(str(body))
    text = " ".join(parts).lower()
    return any(s in text for s in ("content_filter", "content filter", "content_policy",
                                   "responsibleaipolicyviolation", "content management policy"))


def server_message(failure: HTTPFailure) -> str:
    body = failure.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return str(body or f"HTTP {failure.status}")


def status_error(failure: HTTPFailure, *, where: str, name: str, key_env: str,
                 message: str) -> Exception:
    """The final error of a non-retryable status. `message` is the server's, already redacted."""
    status = failure.status
    msg = one_line(message, 200)
    if status in (401, 403):
        return EndpointAuthError(
            f"{where} refused the API key (HTTP {status}: {msg}); check the environment "
            f"variable {key_env or '(none configured)'}", endpoint=name, status=status)
    return EndpointRequestError(f"{where} rejected the request (HTTP {status}): {msg}",
                                endpoint=name, status=status)


def filtered(n: int) -> ChatResult:
    """A provider's content filter answered instead of the model: n refusals, nothing billed."""
    return ChatResult(choices=[Choice(text="", finish_reason="content_filter") for _ in range(n)],
                      usage=Usage(0, 0))


def parse_completion(data: Any, messages: Sequence[Message]) -> ChatResult:
    """Turn the decoded JSON body into our dataclasses. Without a usage block the prompt is
    counted at its `prompt_token_bound` (the worst case the budget reserved), never less."""
    if not isinstance(data, dict):
        raise MalformedResponse("body is not a JSON object")
    raw = data.get("choices")
    if not isinstance(raw, list) or not raw:
        raise MalformedResponse("no choices")
    choices: list[Choice] = []
    try:
        if len(raw) > 1:
            raw = sorted(raw, key=lambda c: c.get("index") or 0)
        for c in raw:
            msg = c["message"]
            text = msg.get("content")
            if not isinstance(text, str):
                text = msg.get("refusal") or ""  # OpenAI's structured refusal field
            choices.append(Choice(text=text, finish_reason=str(c.get("finish_reason") or "stop"),
                                  logprobs=_parse_logprobs(c.get("logprobs"))))
    except (KeyError, TypeError, AttributeError, ValueError) as err:
        raise MalformedResponse(f"bad choice: {type(err).__name__}") from None
    usage = data.get("usage")
    p_tok = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    c_tok = usage.get("completion_tokens") if isinstance(usage, dict) else None
    if not isinstance(p_tok, int) or not isinstance(c_tok, int):
        p_tok = prompt_token_bound(messages)
        c_tok = None
    _assign_completion_tokens(choices, c_tok)
    if c_tok is None:
        c_tok = sum(ch.completion_tokens for ch in choices)
    return ChatResult(choices=choices, usage=Usage(p_tok, c_tok))


def _parse_logprobs(lp: Any) -> list[TokenLogprob] | None:
    """`choice.logprobs.content[*].token/.logprob/.top_logprobs` -> TokenLogprob list."""
    content = lp.get("content") if isinstance(lp, dict) else None
    if not isinstance(content, list):
        return None
    return [TokenLogprob(str(t["token"]), float(t["logprob"]),
                         [(str(a["token"]), float(a["logprob"])) for a in t.get("top_logprobs") or ()])
            for t in content]


def _assign_completion_tokens(choices: list[Choice], total: int | None) -> None:
    """Per-choice token counts: exact from logprobs, else the usage total split by text length
    (so the parts add up to what the provider bills), else a chars/4 estimate."""
    if all(ch.logprobs is not None for ch in choices):
        for ch in choices:
            ch.completion_tokens = len(ch.logprobs or ())
        return
    if total is None:
        for ch in choices:
            ch.completion_tokens = (len(ch.text) + 3) // 4
        return
    if len(choices) == 1:
        choices[0].completion_tokens = total
        return
    lengths = [len(ch.text) for ch in choices]
    whole = sum(lengths)
    given = 0
    for ch, length in zip(choices, lengths):
        share = total * length // whole if whole else total // len(choices)
        ch.completion_tokens = share
        given += share
    choices[-1].completion_tokens += total - given


def with_n(params: SamplingParams, n: int) -> SamplingParams:
    return replace(params, n=n)


def merge_results(results: Sequence[ChatResult]) -> ChatResult:
    """One result from several requests for the same prompt; at the batch rate only if all were."""
    merged = ChatResult(choices=[], usage=Usage(), batch=all(r.batch for r in results))
    for r in results:
        merged.choices.extend(r.choices)
        merged.usage += r.usage
        merged.retries += r.retries
        merged.cache_hits += r.cache_hits
    return merged
