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
    cfg = load_config(config_path)
    click.echo(f"{'name':<16} {'kind':<7} {'model':<36} base_url")
    click.echo(f"{'local':<16} {'local':<7} {'SmolLM2-135M-Instruct.Q4_1':<36} (embedded, offline)")
    for name, spec in sorted(cfg.models.items()):
        click.echo(f"{name:<16} {spec.kind:<7} {spec.model:<36} "
                   f"{spec.base_url or '(OPENAI_BASE_URL or default)'}")


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
