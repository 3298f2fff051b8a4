"""Progress reporting: a live bar (rich) in a terminal, plain lines otherwise.

Every log step prints one line `step N/T | x.xx steps/s | ETA h:mm:ss | name value ...`; in a
terminal a progress bar with steps/s and ETA stays below those lines.
"""
from __future__ import annotations

import datetime
import sys
import time
from typing import Mapping

import jax


def format_metrics(metrics: Mapping[str, float], *, max_items: int | None = None) -> str:
  items = sorted(metrics.items())
  if max_items is not None:
    items = items[:max_items]
  return " ".join(f"{k} {v:.4g}" for k, v in items)


class Progress:
  """Reports steps/s, ETA and the latest metrics of a run from `start` to `total` steps."""

  def __init__(self, total: int, start: int, *, stream=None, live: bool | None = None):
    self.total, self.stream = total, stream or sys.stdout
    self.enabled = jax.process_index() == 0
    self._last_step, self._last_time = start, time.monotonic()
    self._bar = None
    if live is None:
      live = hasattr(self.stream, "isatty") and self.stream.isatty()
    if self.enabled and live:
      self._start_bar(start)

  def _start_bar(self, start: int) -> None:
    from rich import console as rich_console  # pylint: disable=g-import-not-at-top
    from rich import progress as rp  # pylint: disable=g-import-not-at-top
    self._bar = rp.Progress(
        rp.TextColumn("train"), rp.BarColumn(), rp.MofNCompleteColumn(),
        rp.TextColumn("{task.fields[rate]}"), rp.TextColumn("ETA"), rp.TimeRemainingColumn(),
        console=rich_console.Console(file=self.stream), transient=False)
    self._task = self._bar.add_task("train", total=self.total, completed=start, rate="")
    self._bar.start()

  def update(self, step: int) -> None:
    """Called after every step (cheap)."""
    if self._bar is not None:
      self._bar.update(self._task, completed=step)

  def log(self, step: int, metrics: Mapping[str, float]) -> float:
    """Prints one line with steps/s, ETA and the metrics; returns the steps/s."""
    now = time.monotonic()
    rate = (step - self._last_step) / max(now - self._last_time, 1e-9)
    self._last_step, self._last_time = step, now
    eta = datetime.timedelta(seconds=round((self.total - step) / rate)) if rate > 0 else "?"
    line = f"step {step}/{self.total} | {rate:.2f} steps/s | ETA {eta} | "
    self.message(line + format_metrics(metrics))
    if self._bar is not None:
      self._bar.update(self._task, completed=step, rate=f"{rate:.2f} steps/s")
    return rate

  def message(self, text: str) -> None:
    if not self.enabled:
      return
    if self._bar is not None:
      self._bar.console.print(text, highlight=False, markup=False)
    else:
      print(text, file=self.stream, flush=True)

  def close(self) -> None:
    if self._bar is not None:
      self._bar.stop()
      self._bar = None
