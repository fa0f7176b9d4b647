"""Build endpoints from the config: one backend per model name, shared by every role using it.

Sharing matters: the mutator and the judge on the same server share its concurrency and rate
limits, and the local model is loaded once.
"""

from __future__ import annotations

import os

from evorefuse.config import Config
from evorefuse.errors import InputError
from evorefuse.models.base import ChatModel
from evorefuse.models.cache import RequestCache
from evorefuse.models.endpoint import Endpoint
from evorefuse.models.ledger import Ledger
from evorefuse.models.spec import ModelSpec


def check_credentials(cfg: Config, names: list[str]) -> None:
    """Fail before any work when a needed API key variable is not set (exit 2, names the key)."""
    for name in names:
        spec = cfg.model(name)
        if spec.kind == "local":
            continue
        if spec.api_key_env and not os.environ.get(spec.api_key_env):
            raise InputError(f"environment variable {spec.api_key_env} is not set (the API key "
                             f"for model {name!r})", path=cfg.source,
                             field=f"models.{name}.api_key_env")


def make_backend(spec: ModelSpec) -> ChatModel:
    if spec.kind == "local":
        from evorefuse.models.local import LocalBackend

        return LocalBackend(spec)
    from evorefuse.models.openai_backend import OpenAIBackend

    return OpenAIBackend(spec)


class Registry:
    """Endpoints by model name over one cache and one ledger."""

    def __init__(self, cfg: Config, cache: RequestCache | None, ledger: Ledger,
                 run_id: str = "") -> None:
        self.cfg = cfg
        self.cache = cache
        self.ledger = ledger
        self.run_id = run_id
        self._endpoints: dict[str, Endpoint] = {}

    def endpoint(self, name: str) -> Endpoint:
        ep = self._endpoints.get(name)
        if ep is None:
            spec = self.cfg.model(name)
            ep = Endpoint(make_backend(spec), spec, self.cache, self.ledger, self.run_id)
            self._endpoints[name] = ep
        return ep

    async def aclose(self) -> None:
        for ep in self._endpoints.values():
            await ep.aclose()
