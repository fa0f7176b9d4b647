"""Build a prompt judge from a config file: the one place that turns judge names into endpoints.

Kept to one small function so the session's composition root can replace it: it needs only
`Config.model(name)` for each LLM judge, an endpoint per model (no cache: judging a file is one
pass), and the credential check that fails before any work when a key variable is unset.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from evorefuse.errors import InputError
from evorefuse.scoring.harm.judge import (
    Mode,
    PromptJudge,
    build_prompt_judge,
    judge_model_name,
    llm_judge_names,
    resolve_mode,
)


def judge_from_config(config_path: Path | None, names: Sequence[str] | None,
                      mode: Mode = "auto") -> tuple[PromptJudge, Callable[[], Awaitable[None]]]:
    """(judge, async close). `names` None: the config's `roles.judge` (default `local`, the
    classifier). An unknown name is bad input naming the option, exit 2."""
    from evorefuse.config import load_config
    from evorefuse.models.endpoint import Endpoint
    from evorefuse.models.ledger import Ledger
    from evorefuse.models.registry import check_credentials, make_backend

    cfg = load_config(config_path)
    names = list(names) if names else cfg.judges()
    endpoints: dict[str, Endpoint] = {}
    if resolve_mode(names, mode) != "classifier":
        ledger = Ledger()
        for name in llm_judge_names(names):
            model = judge_model_name(name)
            if model != "local" and model not in cfg.models:
                where = f"the config has [models.*] for: {', '.join(sorted(cfg.models))}" \
                    if cfg.models else "no config file names any model (pass -c CONFIG)"
                raise InputError(f"judge {name!r} is not configured ({where}); offline judges: "
                                 "local (the classifier), local-llm", field="--judge")
            spec = cfg.model(model, where="--judge")
            check_credentials(cfg, [model])
            endpoints[name] = Endpoint(make_backend(spec), spec, None, ledger)

    async def close() -> None:
        for ep in endpoints.values():
            await ep.aclose()

    return build_prompt_judge(names, endpoints, mode), close
