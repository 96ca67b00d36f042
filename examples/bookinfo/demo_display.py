"""What the demo shows: a step progress bar, phase lines, and the live traffic split table.

On a terminal the progress bar and the split table redraw in place while step results and
phase changes scroll above them; anywhere else (CI logs, a test's captured console) only the
printed lines appear, so everything a reader needs is also printed as a line.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Self

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

__all__ = ["DemoDisplay", "Split", "split_table"]


@dataclass(frozen=True)
class Split:
    """Requests served per version in a window, with what the operator reports beside them."""

    served: Mapping[str, int]
    seconds: float
    weights: Mapping[str, int] = field(default_factory=dict)
    metrics: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    routed_by: Mapping[str, int] = field(default_factory=dict)
    """Subset -> weight in the Envoy routes istiod generated, that routed the window ({}: none)."""

    @property
    def total(self) -> int:
        return sum(self.served.values())

    def share(self, version: str) -> float:
        """Percent of the window's requests that ``version`` served (0 when there were none)."""
        return 100.0 * self.served.get(version, 0) / self.total if self.total else 0.0

    def summary(self, versions: Iterable[str]) -> str:
        parts = [f"{v} {self.served.get(v, 0)} requests ({self.share(v):.1f}%)" for v in versions]
        weights = " / ".join(f"{v} {w}%" for v, w in sorted(self.weights.items()))
        routed = " / ".join(f"{v} {w}%" for v, w in sorted(self.routed_by.items()))
        return (
            f"served in {self.seconds:.1f} s: " + ", ".join(parts)
            + (f"; VirtualService weights: {weights}" if weights else "")
            + (f"; routed by istiod's Envoy routes: {routed}" if routed else "")
        )


def _number(value: Any, suffix: str = "", digits: int = 1) -> str:
    return "-" if value is None else f"{float(value):.{digits}f}{suffix}"


def split_table(split: Split, *, versions: Iterable[str], title: str) -> Table:
    """One row per version: served requests and share, weight, and the operator's metrics."""
    table = Table(title=title, title_justify="left", expand=False)
    for name in ("version", "served", "share", "weight", "req/s", "success", "p99"):
        table.add_column(name, justify="left" if name == "version" else "right")
    for version in versions:
        metrics = split.metrics.get(version) or {}
        weight = split.weights.get(version)
        table.add_row(
            version,
            str(split.served.get(version, 0)),
            f"{split.share(version):5.1f}%",
            "-" if weight is None else f"{weight}%",
            _number(metrics.get("requestRate")),
            _number(metrics.get("successRate"), "%"),
            _number(metrics.get("latencyP99Ms"), " ms", 0),
        )
    return table


class _StepsProgress(Progress):
    """A progress bar with one extra renderable (the split table) drawn below it."""

    extra: RenderableType | None = None

    def get_renderables(self) -> Iterator[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        if self.extra is not None:
            yield self.extra


class DemoDisplay:
    """Steps with a progress bar; ``phase()`` and ``note()`` print lines above it."""

    def __init__(self, console: Console, *, steps: int) -> None:
        self.console = console
        self._progress = _StepsProgress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._task = self._progress.add_task("starting", total=steps)
        self._last_phase: str | None = None

    def __enter__(self) -> Self:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.extra = None
        self._progress.stop()

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        """Show ``title`` as the current step; print it with its duration once it is done."""
        self._progress.update(self._task, description=title)
        started = time.monotonic()
        try:
            yield
        except BaseException:
            self.console.print(f"[red]✗[/red] {title} ({time.monotonic() - started:.1f} s)")
            raise
        self._progress.advance(self._task)
        self.console.print(f"[green]✓[/green] {title} ({time.monotonic() - started:.1f} s)")

    def phase(self, phase: str, message: str) -> None:
        """Print a phase change of the release (repeats of the same phase are not printed)."""
        if phase == self._last_phase:
            return
        self._last_phase = phase
        self.console.print(f"    phase [bold cyan]{phase}[/bold cyan]" + (f": {message}" if message else ""))

    def note(self, text: str) -> None:
        self.console.print(f"    {text}")

    def show(self, renderable: RenderableType | None) -> None:
        """Draw ``renderable`` (or nothing) below the progress bar until replaced."""
        self._progress.extra = renderable
        self._progress.refresh()
