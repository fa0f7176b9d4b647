"""Errors the user can act on.

Every bad input ends as one line on stderr and exit code 2 (click's own convention for usage errors),
never a traceback. The line names where the problem is (file, line, field) so the user can fix it.
"""

from __future__ import annotations

from pathlib import Path

import click


class InputError(click.ClickException):
    """Bad input from the user: a file, a config key, a command-line value. Exit code 2."""

    exit_code = 2

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        where = ""
        if path is not None:
            where = str(path)
            if line is not None:
                where += f":{line}"
            where += ": "
        if field:
            where += f"{field}: "
        super().__init__(where + message)
        self.path = path
        self.line = line
        self.field = field


class RunFailed(click.ClickException):
    """The run could not go on (for example an endpoint rejected our key). Exit code 1."""

    exit_code = 1


class Interrupted(click.ClickException):
    """The user stopped the work (Ctrl-C or SIGTERM): exit 130 or 143, with how to continue."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: object = None) -> None:
        click.echo(self.format_message(), err=True)


class BudgetExceeded(Exception):
    """A call would exceed --max-calls or --max-cost; raised before the call is made."""
