"""What every CLI module shares: the consoles, library errors as one red line, progress bars."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from distillguard.errors import DistillGuardError

console = Console(stderr=True)
out = Console()

@contextmanager
def errors() -> Iterator[None]:
    try:
        yield
    except DistillGuardError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        console.print("[yellow]interrupted; the store keeps its last completed stage[/]")
        raise typer.Exit(130) from None


@contextmanager
def progress() -> Iterator[Callable[[str, int, int | None], None]]:
    bars = Progress(SpinnerColumn(), TextColumn("{task.description:<10}"), BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True)
    tasks: dict[str, Any] = {}

    def advance(stage: str, n: int, total: int | None) -> None:
        if stage not in tasks:
            tasks[stage] = bars.add_task(stage, total=total)
        bars.update(tasks[stage], advance=n, total=total)

    with bars:
        yield advance
