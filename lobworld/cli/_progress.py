"""What long commands show while they work: a first-run compile notice and progress bars.

:func:`compile_notice` prints one line on stderr before a command's first kernel call when the
Numba disk cache looks cold (no cached kernel index file beside the env modules, or in
``NUMBA_CACHE_DIR`` when set): the first run compiles the kernels, later runs load them.

:func:`progress` is a context manager around a :mod:`rich` progress bar of ``total`` units
that yields a callback ``advance(label)``; the library functions that take a ``progress``
argument (:func:`lobworld.scenarios.counterfactual.run_counterfactual`,
:func:`lobworld.scenarios.report.pre_trade_report`) call it once per finished strategy run.
With ``enabled=False`` (``--no-progress``, ``--json``) nothing is drawn.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pathlib
import sys
from collections.abc import Iterator

__all__ = ["kernel_cache_is_cold", "compile_notice", "progress", "COMPILE_NOTICE"]

COMPILE_NOTICE = "compiling kernels (first run only; later runs load them from the cache) ..."
_noticed = False


def kernel_cache_is_cold() -> bool:
    """True when no Numba cache index (``*.nbi``) of the env kernels is found (a cheap heuristic)."""
    env = os.environ.get("NUMBA_CACHE_DIR")
    if env:
        root = pathlib.Path(env)
        return not (root.is_dir() and next(root.rglob("*.nbi"), None) is not None)
    spec = importlib.util.find_spec("lobworld.envs")
    locs = list(spec.submodule_search_locations or []) if spec is not None else []
    for loc in locs:
        cache = pathlib.Path(loc) / "__pycache__"
        if cache.is_dir() and next(cache.glob("*.nbi"), None) is not None:
            return False
    return True


def compile_notice(stream=None) -> bool:
    """Print :data:`COMPILE_NOTICE` once per process when the kernel cache is cold; True if printed."""
    global _noticed
    if _noticed or not kernel_cache_is_cold():
        return False
    _noticed = True
    print(COMPILE_NOTICE, file=stream or sys.stderr, flush=True)
    return True


class _Advance:
    """The callback :func:`progress` yields: ``advance(label, n=1)``; ``advance.by(n)`` advances ``n``
    units keeping the label; ``set_total(n)`` fixes the bar's length."""

    def __init__(self, bar=None, task=None):
        self._bar, self._task = bar, task

    def __call__(self, label: str = "", n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(self._task, advance=n, label=label)

    def by(self, n: int) -> None:
        """Advance ``n`` units with no label (e.g. ``n`` episodes that just ended)."""
        if self._bar is not None:
            self._bar.update(self._task, advance=n)

    def set_total(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, total=int(n))


@contextlib.contextmanager
def progress(description: str, total: int | None = None, enabled: bool = True) -> Iterator[_Advance]:
    """A progress bar of ``total`` steps (None: until ``set_total``; a spinner with elapsed time meanwhile);
    yields ``advance(label)``."""
    if not enabled:
        yield _Advance()
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    cols = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("{task.fields[label]}")]
    with Progress(*cols, transient=False, console=Console(stderr=True)) as bar:
        task = bar.add_task(description, total=total, label="")
        try:
            yield _Advance(bar, task)
        except BaseException:  # a failed job leaves no bar behind: its error is what the user should read
            bar.live.transient = True
            bar.console.quiet = True
            raise
        t = bar.tasks[0].total
        if t is not None:
            bar.update(task, completed=t, label="done")
