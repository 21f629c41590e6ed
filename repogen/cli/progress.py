"""What a person sees while ``repogen build`` runs: one rich spinner line per model and warnings that are
always shown."""

from __future__ import annotations

from typing import Any, Callable


class BuildProgress:
    """Rich progress on stderr (stdout stays for the summary or the --json object)."""

    def __init__(self, enabled: bool):
        from rich.console import Console

        self.console = Console(stderr=True)
        self.enabled = enabled
        self.progress = None
        if enabled:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                                     console=self.console, transient=False)

    def __enter__(self) -> "BuildProgress":
        if self.progress:
            self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress:
            self.progress.__exit__(*exc)

    def task(self, name: str) -> Callable[[str], None]:
        if not self.progress:
            return lambda stage: None
        task_id = self.progress.add_task(f"{name}: queued", total=None)
        return lambda stage: self.progress.update(task_id, description=f"{name}: {stage}")

    def warn(self, msg: str) -> None:
        # Always shown, progress or not: a fallback nobody sees is a surprise later.
        self.console.print(msg, style="bold yellow", markup=False, highlight=False, soft_wrap=True)
