"""`evorefuse evaluate DATASET`: refusal-rate matrix and diversity of any seed-format dataset."""

from __future__ import annotations

from pathlib import Path

import click
import orjson

from evorefuse.commands.progress import TerminalProgress
from evorefuse.scoring.overlap import DEFAULT_NGRAM_OVERLAP, DEFAULT_SIMILARITY
from evorefuse.scoring.refusal.factory import NAMES_HELP, check_detector


@click.command("evaluate")
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("--target", "targets", multiple=True, help="Target model name (repeatable). "
              "Default: the config's roles.targets.")
@click.option("--samples", type=click.IntRange(1, 100), default=1, show_default=True,
              help="Samples per prompt (more than 1 only makes sense with --temperature > 0).")
@click.option("--temperature", type=click.FloatRange(0, 2), default=0.0, show_default=True,
              help="Target sampling temperature. 0 is greedy decoding, how XSTest and OR-Bench "
                   "measure refusal rates; use e.g. 0.7 with --samples 10 for a sampled rate.")
@click.option("--max-tokens", type=click.IntRange(1, 4096), default=50, show_default=True,
              help="Tokens per sampled response (top_p 0.995).")
@click.option("--out", "out", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write the JSON report (with per-prompt rates) to this file.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="TOML config defining the models.")
@click.option("--no-responses", is_flag=True, help="Diversity only; call no model.")
@click.option("--limit", type=click.IntRange(1), help="Only the first N prompts.")
@click.option("--detector", "detector", default=None, metavar="NAME",
              help=f"Refusal detector: {NAMES_HELP} (default: the config's roles.detector).")
@click.option("--cache", "cache_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Request cache (default ~/.cache/evorefuse/evaluate.sqlite).")
@click.option("--no-embeddings", is_flag=True, help="Skip the embedding diversity.")
@click.option("--against", "against", multiple=True, type=click.Path(path_type=Path),
              help="Benchmark file (repeatable): report each prompt's nearest benchmark prompt "
                   "and which are too close (nothing is dropped).")
@click.option("--max-similarity", type=click.FloatRange(0, 1), default=DEFAULT_SIMILARITY,
              show_default=True, help="--against: embedding similarity that is too close.")
@click.option("--max-ngram-overlap", type=click.FloatRange(0, 1), default=DEFAULT_NGRAM_OVERLAP,
              show_default=True, help="--against: word 3-gram overlap that is too close.")
def evaluate_command(dataset: Path, targets: tuple[str, ...], samples: int, temperature: float,
                     max_tokens: int, out: Path | None,
                     as_json: bool, config_path: Path | None, no_responses: bool,
                     limit: int | None, detector: str | None, cache_path: Path | None,
                     no_embeddings: bool, against: tuple[Path, ...], max_similarity: float,
                     max_ngram_overlap: float) -> None:
    """Measure targets' refusal rates (overall, per category, per language and category x
    language) and the lexical diversity of a dataset."""
    from evorefuse.config import load_config
    from evorefuse.evaluate import EvalSettings, evaluate
    from evorefuse.evaluate_table import format_table
    from evorefuse.fileio import check_output, write_output
    from evorefuse.scoring.overlap import OverlapThresholds
    from evorefuse.session import DEFAULT_CACHE

    cfg = load_config(config_path)
    names = list(targets) or list(cfg.roles.targets)
    for n in names:
        cfg.model(n, where="--target")
    if out is not None:
        check_output(out)
    detector_name = check_detector(detector, field="--detector") if detector else cfg.roles.detector
    report = evaluate(dataset, cfg=cfg, targets=names, settings=EvalSettings(samples=samples, temperature=temperature,
                                                               max_tokens=max_tokens),
                      detector=detector_name,
                      cache_path=cache_path or DEFAULT_CACHE, responses=not no_responses,
                      limit=limit, embeddings=not no_embeddings, against=against,
                      overlap=OverlapThresholds(max_similarity, max_ngram_overlap),
                      progress=TerminalProgress(quiet=False))
    if out is not None:
        write_output(out, orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    if as_json:
        short = {k: v for k, v in report.items() if k != "prompts"}
        click.echo(orjson.dumps(short, option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(format_table(report))
