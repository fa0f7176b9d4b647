"""`evorefuse report RUN_DIR [-o DIR]`: a self-contained HTML page with plots of a run."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("report")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Directory for index.html and the PNGs (default: RUN_DIR/report).")
def report_command(run_dir: Path, out_dir: Path | None) -> None:
    """Write an HTML report with plots for a run."""
    from evorefuse.report import build_report

    path = build_report(run_dir, out_dir)
    click.echo(f"report: {path}", err=True)
