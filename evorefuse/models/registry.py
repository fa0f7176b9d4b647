"""Endpoints by model name: one backend per name, shared by every role using it.

Sharing matters: the mutator and the judge on the same server share its concurrency and rate
limits, and the local model is loaded once. The registry knows specs only through a lookup
function, so the model layer does not depend on the config module above it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from evorefuse.errors import InputError
from evorefuse.models.base import ChatModel
from evorefuse.models.cache import RequestCache
from evorefuse.models.endpoint import Endpoint
from evorefuse.models.ledger import Ledger
from evorefuse.models.spec import ModelSpec

SpecLookup = Callable[[str], ModelSpec]


def check_credentials(specs: Iterable[ModelSpec], source: str | None = None) -> None:
    """Fail before any work when a needed API key variable is not set (exit 2, names the key)."""
    for spec in specs:
        if spec.kind == "local":
            continue
        if spec.api_key_env and not os.environ.get(spec.api_key_env):
            raise InputError(f"environment variable {spec.api_key_env} is not set (the API key "
                             f"for model {spec.name!r})", path=source,
                             field=f"models.{spec.name}.api_key_env")


def make_backend(spec: ModelSpec) -> ChatModel:
    if spec.kind == "local":
        from evorefuse.models.local import LocalBackend

        return LocalBackend(spec)
    from evorefuse.models.openai_backend import OpenAIBackend

    return OpenAIBackend(spec)


class Registry:
    """Endpoints by model name over one cache and one ledger."""

    def __init__(self, lookup: SpecLookup, cache: RequestCache | None, ledger: Ledger,
                 run_id: str = "") -> None:
        self.lookup = lookup
        self.cache = cache
        self.ledger = ledger
        self.run_id = run_id
        self._endpoints: dict[str, Endpoint] = {}

    def endpoint(self, name: str) -> Endpoint:
        ep = self._endpoints.get(name)
        if ep is None:
            spec = self.lookup(name)
            ep = Endpoint(make_backend(spec), spec, self.cache, self.ledger, self.run_id)
            self._endpoints[name] = ep
        return ep

    async def aclose(self) -> None:
        for ep in self._endpoints.values():
            await ep.aclose()
