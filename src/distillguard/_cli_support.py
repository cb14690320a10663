"""What every CLI module shares: the consoles, library errors as one red line, progress bars."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

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


class _Count(ProgressColumn):
    """``done/total`` when the total is known, else ``done`` alone (rich's ``MofNCompleteColumn`` shows ``n/?``)."""

    def render(self, task: Task) -> Text:
        done = f"{int(task.completed):,}"
        return Text(f"{done}/{int(task.total):,}" if task.total is not None else done, style="progress.download")


class Bars:
    """``bars(stage, advance, total)``: the progress callback the library takes, drawn as rich bars.

    A stage that runs again (a reference period's enrichment, then the traffic's) gets a fresh bar once its
    bar is complete or its total changes, so one period's rows are never counted against another's total.
    """

    def __init__(self, bars: Progress) -> None:
        self.bars = bars
        self._current: dict[str, tuple[TaskID, int | None]] = {}  # stage → its bar and total
        self._done: dict[TaskID, int] = {}

    def __call__(self, stage: str, n: int, total: int | None) -> None:
        task, known = self._current.get(stage, (None, None))
        if task is None or known != total or (total is not None and self._done[task] >= total):
            task = self.bars.add_task(stage, total=total)
            self._current[stage], self._done[task] = (task, total), 0
        self._done[task] += n
        self.bars.update(task, advance=n)

    def rows(self) -> list[tuple[str, int, int | None]]:
        """(stage, done, total) of every bar so far, in order."""
        return [(t.description, int(t.completed), None if t.total is None else int(t.total)) for t in self.bars.tasks]


@contextmanager
def progress() -> Iterator[Bars]:
    """Progress bars on stderr, gone when the block ends (``Bars``)."""
    bars = Progress(SpinnerColumn(), TextColumn("{task.description:<10}"), BarColumn(),
                    _Count(), TimeElapsedColumn(), console=console, transient=True)
    with bars:
        yield Bars(bars)


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
