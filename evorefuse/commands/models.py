"""`evorefuse models list` and `evorefuse models check NAME`."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import click

from evorefuse.config import load_config
from evorefuse.errors import InputError


@click.group("models")
def models_command() -> None:
    """List configured models or check that one answers."""


@models_command.command("list")
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path))
def list_models(config_path: Path | None) -> None:
    """Models you can name in roles: `local` plus the config's [models.NAME] tables."""
    cfg = load_config(config_path)
    click.echo(f"{'name':<16} {'kind':<7} {'model':<36} base_url")
    click.echo(f"{'local':<16} {'local':<7} {'SmolLM2-135M-Instruct.Q4_1':<36} (embedded, offline)")
    for name, spec in sorted(cfg.models.items()):
        click.echo(f"{name:<16} {spec.kind:<7} {spec.model:<36} {spec.base_url or '(OPENAI_BASE_URL or default)'}")


@models_command.command("check")
@click.argument("name")
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path))
def check_model(name: str, config_path: Path | None) -> None:
    """Send one tiny request: prints latency and whether logprobs work."""
    from evorefuse.models.base import SamplingParams
    from evorefuse.models.endpoint import Endpoint
    from evorefuse.models.errors import EndpointError
    from evorefuse.models.ledger import Ledger
    from evorefuse.models.registry import check_credentials, make_backend

    cfg = load_config(config_path)
    spec = cfg.model(name, where="NAME")
    check_credentials(cfg, [name])

    async def go() -> tuple[float, str, bool]:
        ep = Endpoint(make_backend(spec), spec, None, Ledger())
        try:
            t = time.perf_counter()
            r = await ep.chat([{"role": "user", "content": "Say hello in one word."}],
                              SamplingParams(temperature=0.0, max_tokens=8, seed=0, logprobs=True,
                                             top_logprobs=3), role="check")
            return time.perf_counter() - t, r.choices[0].text, bool(r.choices[0].logprobs)
        finally:
            await ep.aclose()

    try:
        latency, text, has_lp = asyncio.run(go())
    except EndpointError as exc:
        # A model that cannot be reached is a configuration problem here: exit 2, one line.
        raise InputError(str(exc.message), path=cfg.source, field=f"models.{name}") from None
    click.echo(f"{name}: ok, {latency * 1000:.0f} ms, logprobs {'yes' if has_lp else 'no'}, "
               f"answer {text.strip()[:60]!r}")
