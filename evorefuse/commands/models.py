"""`evorefuse models list` and `evorefuse models check NAME`: options and what is printed."""

from __future__ import annotations

from pathlib import Path

import click

from evorefuse.config import load_config


@click.group("models")
def models_command() -> None:
    """List configured models or check that one answers."""


@models_command.command("list")
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path))
def list_models(config_path: Path | None) -> None:
    """Models you can name in roles: `local` plus the config's [models.NAME] tables."""
    from evorefuse.models.spec import BUILTIN_MODELS

    cfg = load_config(config_path)
    click.echo(f"{'name':<16} {'kind':<7} {'model':<36} {'base_url':<36} system prompt")
    for name in dict.fromkeys([*BUILTIN_MODELS, *sorted(cfg.models)]):
        spec = cfg.model(name)
        where = ("(embedded, offline)" if spec.kind == "local"
                 else spec.base_url or "(OPENAI_BASE_URL or default)")
        prompt = (spec.system_prompt or "").replace("\n", " ")
        prompt = prompt if len(prompt) <= 60 else prompt[:57] + "..."
        click.echo(f"{name:<16} {spec.kind:<7} {spec.model:<36} {where:<36} {prompt or '-'}")


@models_command.command("check")
@click.argument("name")
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path))
def check_model(name: str, config_path: Path | None) -> None:
    """Send one tiny request: prints latency and whether logprobs work."""
    from evorefuse.preflight import check_endpoint

    cfg = load_config(config_path)
    cfg.model(name, where="NAME")
    result = check_endpoint(cfg, name)
    click.echo(f"{name}: ok, {result.latency_s * 1000:.0f} ms, logprobs "
               f"{'yes' if result.logprobs else 'no'}, answer {result.answer.strip()[:60]!r}")
