"""Checks that a model answers before anything is created or paid for.

Why a failure here is bad input (exit 2): a model that cannot be reached before anything else has
happened is a configuration problem, named by its config key, not a failed run. `reachable` costs
nothing (it lists the server's models, no tokens); `check_endpoint` sends one tiny chat request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import openai

from evorefuse import interrupts
from evorefuse.config import Config
from evorefuse.errors import InputError
from evorefuse.models.base import SamplingParams
from evorefuse.models.errors import EndpointError
from evorefuse.models.local import gguf_path
from evorefuse.models.openai_backend import DEFAULT_BASE_URL
from evorefuse.models.spec import ModelSpec
from evorefuse.session import Session

PROBE = [{"role": "user", "content": "Say hello in one word."}]


@dataclass(frozen=True)
class CheckResult:
    latency_s: float
    answer: str
    logprobs: bool


def check_endpoint(cfg: Config, name: str) -> CheckResult:
    """Call model `name` once, uncached (a check must reach the model)."""
    session = Session.standalone(cfg, models=[name], cache_path=None, run_id="check")

    async def go() -> CheckResult:
        try:
            t = time.perf_counter()
            ep = session.endpoint(name)
            params = SamplingParams(temperature=0.0, max_tokens=8, seed=0, logprobs=True,
                                    top_logprobs=3)
            if ep.spec.batch:  # a check must answer in seconds, not a batch's hours
                r = await ep.backend.probe(PROBE, params)  # type: ignore[attr-defined]
            else:
                r = await ep.chat(PROBE, params, role="check")
            return CheckResult(time.perf_counter() - t, r.choices[0].text,
                               bool(r.choices[0].logprobs))
        finally:
            await session.aclose()

    try:
        return interrupts.run(go())
    except EndpointError as exc:
        raise InputError(str(exc.message), path=cfg.source, field=f"models.{name}") from None


def reachable(cfg: Config, names: list[str]) -> None:
    """Every named model can be reached with its key (the server's model list: free), or exit 2
    naming the model, before a run directory is created."""
    for name in names:
        spec = cfg.model(name)
        if spec.kind == "local":
            gguf_path()  # the embedded weights are installed
            continue
        interrupts.run(_list_models(spec, cfg.source))


async def _list_models(spec: ModelSpec, source: str) -> None:
    import os

    field = f"models.{spec.name}"
    base_url = spec.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
    key = os.environ.get(spec.api_key_env) if spec.api_key_env else None
    client = openai.AsyncOpenAI(api_key=key or "EMPTY", base_url=base_url, max_retries=2,
                                timeout=min(spec.timeout, 20.0))
    try:
        await client.models.list()
    except openai.AuthenticationError:
        raise InputError(f"{base_url} rejected the API key in {spec.api_key_env or '(none)'}",
                         path=source, field=field) from None
    except openai.NotFoundError:
        pass  # a server without a model list (some proxies): the first call will tell
    except openai.APIConnectionError as exc:
        raise InputError(f"cannot reach {base_url} ({exc.__cause__ or exc})", path=source,
                         field=field) from None
    except openai.APIStatusError as exc:
        if exc.status_code >= 500 or exc.status_code == 429:
            return  # busy or failing for now: the run's own retries handle that
        raise InputError(f"{base_url} answered {exc.status_code} to a model list request",
                         path=source, field=field) from None
    finally:
        await client.close()
