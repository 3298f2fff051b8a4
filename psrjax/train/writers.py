"""Metric and sample writers: TensorBoard (clu `SummaryWriter`), a JSON-lines file, GIFs.

Outputs under the workdir:
  metrics.jsonl        one `{"step": N, "<name>": value, ...}` line per write of scalars
  tensorboard/         TensorBoard scalars, and sample videos as per-frame images
  samples/<step>.gif   the sample strip of `System.sample_video`
Only process 0 writes; other processes get a writer that discards everything.
"""
from __future__ import annotations

import json
import os
from typing import Any, Mapping

import imageio.v3 as iio
import jax
import numpy as np
from clu import metric_writers

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
SAMPLES_DIR = "samples"


class JsonlWriter(metric_writers.MetricWriter):
  """Writes scalars as JSON lines; other summary kinds belong to the other writers."""

  def __init__(self, path: str):
    self._file = open(path, "a", encoding="utf-8")  # pylint: disable=consider-using-with

  def write_scalars(self, step: int, scalars: Mapping[str, Any]):
    record = {"step": int(step)}
    record.update({k: float(v) for k, v in scalars.items()})
    self._file.write(json.dumps(record) + "\n")

  def write_summaries(self, step, values, metadata=None):
    """Tensor summaries are TensorBoard-only."""

  def write_images(self, step, images):
    """Images are written by the TensorBoard writer and `write_sample_video`."""

  def write_videos(self, step, videos):
    """Videos are written by `write_sample_video`."""

  def write_audios(self, step, audios, *, sample_rate):
    """Audio is TensorBoard-only."""

  def write_texts(self, step, texts):
    """Texts are TensorBoard-only."""

  def write_histograms(self, step, arrays, num_buckets=None):
    """Histograms are TensorBoard-only."""

  def write_hparams(self, hparams):
    self._file.write(json.dumps({"hparams": {k: str(v) for k, v in hparams.items()}}) + "\n")

  def flush(self):
    self._file.flush()

  def close(self):
    self._file.close()


class _NullWriter(JsonlWriter):
  """Discards everything (processes other than 0)."""

  def __init__(self):  # pylint: disable=super-init-not-called
    self._file = open(os.devnull, "w", encoding="utf-8")  # pylint: disable=consider-using-with


def make_writer(workdir: str) -> metric_writers.MetricWriter:
  """TensorBoard + JSON-lines writer on process 0, a discarding writer elsewhere."""
  if jax.process_index() != 0:
    return _NullWriter()
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  writers = [JsonlWriter(os.path.join(workdir, METRICS_FILE)),
             metric_writers.SummaryWriter(os.path.join(workdir, TENSORBOARD_DIR))]
  return metric_writers.AsyncMultiWriter(writers)


def write_sample_video(workdir: str, step: int, frames: np.ndarray,
                       writer: metric_writers.MetricWriter, *, fps: int = 8) -> str:
  """Writes `frames` (uint8 [T, H, W, 3]) to samples/<step>.gif and to the writer."""
  frames = np.asarray(frames)
  if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
    raise ValueError(f"sample_video must return uint8 [T, H, W, 3], got {frames.dtype} "
                     f"{list(frames.shape)}")
  writer.write_images(step, {"samples/frames": frames})
  path = os.path.join(workdir, SAMPLES_DIR, f"{step}.gif")
  if jax.process_index() == 0:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    iio.imwrite(path, frames, extension=".gif", duration=int(1000 / fps), loop=0)
  return path


def read_metrics(workdir: str) -> list[dict[str, Any]]:
  """All records of `metrics.jsonl` (for tests and notebooks)."""
  path = os.path.join(workdir, METRICS_FILE)
  with open(path, encoding="utf-8") as f:
    return [json.loads(line) for line in f if line.strip()]
