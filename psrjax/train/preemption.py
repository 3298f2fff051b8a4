"""SIGTERM handling: the run finishes its current step, saves a checkpoint and exits cleanly."""
from __future__ import annotations

import contextlib
import signal
import threading

import jax
import numpy as np
from jax.experimental import multihost_utils


class StopFlag:
  """Set by SIGTERM (or by hand); `requested` agrees across processes on sync steps."""

  def __init__(self):
    self._event = threading.Event()

  def set(self) -> None:
    self._event.set()

  def requested(self, *, sync_step: bool) -> bool:
    """True when any process was asked to stop (multi-process: checked on sync steps only)."""
    local = self._event.is_set()
    if jax.process_count() == 1:
      return local
    if not sync_step:
      return False
    return bool(np.any(multihost_utils.process_allgather(np.int32(local))))


@contextlib.contextmanager
def sigterm_stops(flag: StopFlag):
  """Routes SIGTERM to `flag.set()` while the block runs (main thread only)."""
  if threading.current_thread() is not threading.main_thread():
    yield flag
    return
  previous = signal.signal(signal.SIGTERM, lambda signum, frame: flag.set())
  try:
    yield flag
  finally:
    signal.signal(signal.SIGTERM, previous)
