"""What the config says about one model endpoint (`[models.NAME]` in the TOML file)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSpec:
    """One configured endpoint. Prices are USD per 1M tokens, as providers quote them.

    The API key itself is never stored here: only the name of the environment variable that holds
    it, so a resolved config can be written to the run directory without leaking secrets.
    """

    name: str
    model: str
    base_url: str | None = None          # None: OPENAI_BASE_URL, else the openai package default
    api_key_env: str = "OPENAI_API_KEY"
    kind: str = "openai"                 # "openai" (any OpenAI-compatible server) or "local"
    max_concurrency: int = 16
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    timeout: float = 60.0                # seconds per request attempt
    max_retries: int = 6
    price_in: float = 0.0
    price_out: float = 0.0
    supports_n: bool = True              # some servers ignore n>1; then samples are asked one by one
    supports_logprobs: bool = True
    deadline: float = 300.0              # seconds per request across all its attempts and waits
    max_response_bytes: int = 8 << 20    # a larger body is refused while it is read
    batch: bool = False                  # every call through the OpenAI Batch API
    batch_discount: float = 0.5          # batch price = price * batch_discount
    batch_poll_interval: float = 30.0    # seconds between polls of a batch in flight
    batch_retry: str = "batch"           # failed lines: "batch" (a smaller batch) or "direct"

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.price_in + completion_tokens * self.price_out) / 1e6


LOCAL_SPEC = ModelSpec(name="local", model="SmolLM2-135M-Instruct.Q4_1", kind="local",
                       max_concurrency=1, api_key_env="", supports_n=True, supports_logprobs=True)
