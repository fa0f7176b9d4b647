"""The `evorefuse` command line (click). Each subcommand lives in `evorefuse.commands.<name>`.

Subcommands are imported lazily so `evorefuse --help` and light commands do not pay for torch or
llama.cpp imports.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from evorefuse import __version__, interrupts

_COMMANDS = {
    "evolve": "evolve", "resume": "evolve", "status": "status", "seeds": "seeds",
    "evaluate": "evaluate", "detect": "detect", "judge": "judge", "export": "export",
    "report": "report", "models": "models",
}
_HELP = {
    "evolve": "Evolve pseudo-malicious instructions from seeds into a new run directory.",
    "resume": "Continue an interrupted run (or extend a finished one with --generations).",
    "status": "Show a run's progress, best instructions and spending, without changing it.",
    "seeds": "Write new seeds per category (or from a policy) and language.",
    "evaluate": "Measure targets' refusal rates and the lexical diversity of a dataset.",
    "detect": "Label responses as refusals (JSONL or CSV in, JSONL out).",
    "judge": "Label prompts harmless / controversial / harmful (JSONL, CSV or TXT in).",
    "export": "Export a run as a test set, SFT data or DPO preference pairs.",
    "report": "Write an HTML report with plots for a run.",
    "models": "List configured models or check that one answers.",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        module = _COMMANDS.get(name)
        if module is None:
            return None
        mod = importlib.import_module(f"evorefuse.commands.{module}")
        return getattr(mod, f"{name}_command")

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(n, _HELP[n]) for n in _COMMANDS])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="evorefuse")
def cli() -> None:
    """Grow sets of harmless instructions that language models wrongly refuse."""


def main() -> None:
    """Entry point: click without its own Ctrl-C handling, so an interrupted command exits 130
    (143 for SIGTERM) and says what was kept, instead of "Aborted!" and exit 1."""
    # Our matrix products are small (a few candidates against the archive); OpenBLAS's worker
    # threads mostly spin on them: 1.7x the CPU of one thread for the archive check on an idle
    # machine, 2.6x beside busy processes (benchmarks/RESULTS.md, blas_threads). Read when numpy
    # loads, hence before any command is imported; a user's own setting wins.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    interrupts.install()
    try:
        rv = cli.main(standalone_mode=False)
    except click.exceptions.Abort as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):
            _interrupted(interrupts.EXIT_SIGINT)
        click.echo("Aborted!", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, interrupts.Terminated) as exc:
        _interrupted(interrupts.exit_code(exc))
    sys.exit(rv if isinstance(rv, int) else 0)


def _interrupted(code: int) -> None:
    click.echo("interrupted; no output was written (outputs are written whole or not at all); "
               "model calls already made are cached, so running the command again reuses them",
               err=True)
    sys.exit(code)
