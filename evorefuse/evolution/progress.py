"""How the engine reports progress without printing: the command line decides what to show.

The engine calls a `Progress`; `commands/` passes one that draws tqdm bars and prints a line per
generation, tests and benchmarks pass `SILENT`.
"""

from __future__ import annotations

from typing import Any, Protocol


class Bar(Protocol):
    def update(self, n: int = 1) -> Any: ...

    def close(self) -> None: ...


class Progress(Protocol):
    def bar(self, total: int, desc: str, unit: str = ...) -> Bar: ...

    def generation(self, summary: dict[str, Any]) -> None:
        """One generation is committed; `summary` is its line of the event log."""

    def notice(self, text: str) -> None:
        """Something the user must know even when progress is hidden."""


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


class _Silent:
    def bar(self, total: int, desc: str, unit: str = "item") -> Bar:
        return _NoBar()

    def generation(self, summary: dict[str, Any]) -> None:
        pass

    def notice(self, text: str) -> None:
        pass


SILENT: Progress = _Silent()
