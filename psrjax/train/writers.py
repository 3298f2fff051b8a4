"""Metric and sample writers: TensorBoard event files, a JSON-lines file, GIFs.

Outputs under the workdir (local or a bucket URL such as `gs://bucket/run`, `psrjax.paths`):
  metrics.jsonl        one `{"step": N, "<name>": value, ...}` line per write of scalars
  tensorboard/         TensorBoard scalars, and sample videos as per-frame images
  samples/<step>.gif   the sample strip of `System.sample_video`
Only process 0 writes; other processes get a writer that discards everything.

TensorBoard event files are written with the `tensorboard` package's protos and record framing
alone, so training never imports TensorFlow. Objects in a bucket cannot be appended to, so
there:
  * metrics.jsonl is kept in memory (its existing lines read back when a run resumes) and the
    whole object is rewritten on `flush`: readers see the previous or the new version, never a
    partial line;
  * each `flush` uploads the events written since the previous one as a new event file
    (TensorBoard reads every event file of a run directory, in name order).
Locally both are plain files appended to. (So in a bucket, two processes writing one workdir's
metrics.jsonl at once, e.g. a training run and `psrjax eval`, keep only the lines of the one
that flushes last; locally both append.) The trainer flushes with every checkpoint and on
close; writes also flush a bucket's objects once `FLUSH_SECONDS` have passed since the last
upload.
"""
from __future__ import annotations

import io
import itertools
import json
import os
import socket
import struct
import time
from typing import Any, Mapping

import imageio.v3 as iio
import jax
import numpy as np
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.proto import summary_pb2
from tensorboard.compat.proto import tensor_pb2
from tensorboard.compat.proto import tensor_shape_pb2
from tensorboard.compat.proto import types_pb2
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
from tensorboard.plugins.image import metadata as image_metadata

from psrjax import paths

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
SAMPLES_DIR = "samples"
FLUSH_SECONDS = 60.0  # bucket objects: the longest a write waits for its upload
_event_files = itertools.count(1)  # numbers this process's event files (unique names)


class JsonlWriter:
  """Writes scalars as JSON lines (see the module docstring for bucket workdirs)."""

  def __init__(self, path: str):
    self._path, self._remote = path, paths.is_url(path)
    self._uploaded = time.monotonic()
    if self._remote:
      self._text = paths.read_text(path) if paths.isfile(path) else ""
      if self._text and not self._text.endswith("\n"):
        self._text += "\n"
      self._dirty = False
    else:
      self._file = open(path, "a", encoding="utf-8")  # pylint: disable=consider-using-with

  def _write_line(self, record: dict[str, Any]) -> None:
    line = json.dumps(record) + "\n"
    if not self._remote:
      self._file.write(line)
      return
    self._text += line
    self._dirty = True
    if time.monotonic() - self._uploaded > FLUSH_SECONDS:
      self.flush()

  def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
    self._write_line({"step": int(step), **{k: float(v) for k, v in scalars.items()}})

  def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
    """Images go to TensorBoard and `write_sample_video`, not to the JSON lines."""

  def write_hparams(self, hparams: Mapping[str, Any]) -> None:
    self._write_line({"hparams": {k: str(v) for k, v in hparams.items()}})

  def flush(self) -> None:
    if not self._remote:
      self._file.flush()
    elif self._dirty:
      paths.write_text(self._path, self._text)
      self._dirty, self._uploaded = False, time.monotonic()

  def close(self) -> None:
    self.flush()
    if not self._remote:
      self._file.close()


def _record(data: bytes) -> bytes:
  """One TFRecord: length, its masked CRC32C, the data, its masked CRC32C."""
  header = struct.pack("<Q", len(data))
  return (header + struct.pack("<I", masked_crc32c(header)) + data
          + struct.pack("<I", masked_crc32c(data)))


def _png(image: np.ndarray) -> bytes:
  return iio.imwrite("<bytes>", np.asarray(image, np.uint8), extension=".png")


def image_summary(tag: str, images: np.ndarray) -> summary_pb2.Summary.Value:
  """A TensorBoard image summary (the image plugin's format: [width, height, png, ...]) of
  uint8 images [N, H, W, C] (or one [H, W, C])."""
  images = np.asarray(images)
  images = images[None] if images.ndim == 3 else images
  if images.dtype != np.uint8 or images.ndim != 4:
    raise ValueError(f"images {tag!r} must be uint8 [N, H, W, C], got {images.dtype} "
                     f"{list(images.shape)}")
  content = [str(images.shape[2]).encode(), str(images.shape[1]).encode()]
  content += [_png(image) for image in images]
  tensor = tensor_pb2.TensorProto(
      dtype=types_pb2.DT_STRING, string_val=content,
      tensor_shape=tensor_shape_pb2.TensorShapeProto(
          dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=len(content))]))
  meta = image_metadata.create_summary_metadata(display_name=tag, description="")
  return summary_pb2.Summary.Value(tag=tag, tensor=tensor, metadata=meta)


class TensorBoardWriter:
  """TensorBoard event files in `logdir`, written without TensorFlow (see the module docstring:
  one appended file locally, one new file per flush in a bucket)."""

  def __init__(self, logdir: str):
    self._logdir, self._remote = logdir, paths.is_url(logdir)
    self._pending: list[bytes] = []
    self._uploaded = time.monotonic()
    self._file = None
    if not self._remote:
      paths.makedirs(logdir)
      self._file = open(self._new_name(), "ab")  # pylint: disable=consider-using-with
      self._file.write(self._version_record())
      self._file.flush()

  def _new_name(self) -> str:
    name = (f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}."
            f"{os.getpid()}.{next(_event_files):06d}")
    return paths.join(self._logdir, name)

  @staticmethod
  def _version_record() -> bytes:
    event = event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2")
    return _record(event.SerializeToString())

  def _write_event(self, step: int, values: list[summary_pb2.Summary.Value]) -> None:
    event = event_pb2.Event(wall_time=time.time(), step=int(step),
                            summary=summary_pb2.Summary(value=values))
    record = _record(event.SerializeToString())
    if not self._remote:
      self._file.write(record)
      self._file.flush()
      return
    self._pending.append(record)
    if time.monotonic() - self._uploaded > FLUSH_SECONDS:
      self.flush()

  def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
    self._write_event(step, [summary_pb2.Summary.Value(tag=k, simple_value=float(v))
                             for k, v in scalars.items()])

  def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
    self._write_event(step, [image_summary(k, v) for k, v in images.items()])

  def write_hparams(self, hparams: Mapping[str, Any]) -> None:
    """Hyperparameters are kept in metrics.jsonl and config.json."""

  def flush(self) -> None:
    if not self._remote:
      self._file.flush()
    elif self._pending:
      data = io.BytesIO()
      data.write(self._version_record())
      for record in self._pending:
        data.write(record)
      paths.write_bytes(self._new_name(), data.getvalue())
      self._pending, self._uploaded = [], time.monotonic()

  def close(self) -> None:
    self.flush()
    if self._file is not None:
      self._file.close()


class MultiWriter:
  """Passes every write on to each of `writers`."""

  def __init__(self, writers):
    self.writers = list(writers)

  def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
    for writer in self.writers:
      writer.write_scalars(step, scalars)

  def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
    for writer in self.writers:
      writer.write_images(step, images)

  def write_hparams(self, hparams: Mapping[str, Any]) -> None:
    for writer in self.writers:
      writer.write_hparams(hparams)

  def flush(self) -> None:
    for writer in self.writers:
      writer.flush()

  def close(self) -> None:
    for writer in self.writers:
      writer.close()


def make_writer(workdir: str) -> MultiWriter:
  """TensorBoard + JSON-lines writer on process 0, a discarding writer elsewhere."""
  if jax.process_index() != 0:
    return MultiWriter([])
  paths.makedirs(workdir)
  return MultiWriter([JsonlWriter(paths.join(workdir, METRICS_FILE)),
                      TensorBoardWriter(paths.join(workdir, TENSORBOARD_DIR))])


def write_sample_video(workdir: str, step: int, frames: np.ndarray, writer, *,
                       fps: int = 8) -> str:
  """Writes `frames` (uint8 [T, H, W, 3]) to samples/<step>.gif and to the writer."""
  frames = np.asarray(frames)
  if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
    raise ValueError(f"sample_video must return uint8 [T, H, W, 3], got {frames.dtype} "
                     f"{list(frames.shape)}")
  writer.write_images(step, {"samples/frames": frames})
  path = paths.join(workdir, SAMPLES_DIR, f"{step}.gif")
  if jax.process_index() == 0:
    paths.write_bytes(path, iio.imwrite("<bytes>", frames, extension=".gif",
                                        duration=int(1000 / fps), loop=0))
  return path


def read_metrics(workdir: str) -> list[dict[str, Any]]:
  """All records of `metrics.jsonl` (for tests and notebooks)."""
  text = paths.read_text(paths.join(workdir, METRICS_FILE))
  return [json.loads(line) for line in text.splitlines() if line.strip()]
