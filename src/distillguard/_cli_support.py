"""What every CLI module shares: the consoles, library errors as one red line, progress bars."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from distillguard.errors import DistillGuardError

console = Console(stderr=True)
out = Console()

@contextmanager
def errors() -> Iterator[None]:
    try:
        yield
    except DistillGuardError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)  # text, not markup
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


def require_lab() -> None:
    """``ConfigError`` naming the install command when the ``lab`` extra (torch, transformers) is missing."""
    from distillguard.errors import ConfigError

    try:
        import openai  # noqa: F401
        import torch  # noqa: F401
        import transformers
    except ImportError as exc:
        raise ConfigError(f"this command needs the lab extra: pip install 'distillguard[lab]' ({exc})") from exc
    # Our own progress bars and messages say what happens; transformers' per-save bars and notices repeat it.
    transformers.utils.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
