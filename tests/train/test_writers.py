"""The trainer's writers: TensorBoard event files TensorBoard reads back, metrics.jsonl appends."""
import os
import subprocess
import sys

import numpy as np
from tensorboard.backend.event_processing import event_accumulator

from psrjax.train import writers

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _events(logdir):
  events = event_accumulator.EventAccumulator(str(logdir), size_guidance={"tensors": 0})
  events.Reload()
  return events


def test_scalars_and_images_read_back(tmp_path):
  writer = writers.make_writer(str(tmp_path))
  writer.write_scalars(1, {"g/l1": 0.5, "d/real": 1.25})
  writer.write_scalars(2, {"g/l1": 0.25})
  frames = np.random.default_rng(0).integers(0, 255, (3, 8, 10, 3), dtype=np.uint8)
  path = writers.write_sample_video(str(tmp_path), 2, frames, writer)
  writer.close()
  assert os.path.isfile(path)
  events = _events(tmp_path / writers.TENSORBOARD_DIR)
  assert [(e.step, e.value) for e in events.Scalars("g/l1")] == [(1, 0.5), (2, 0.25)]
  assert [(e.step, e.value) for e in events.Scalars("d/real")] == [(1, 1.25)]
  (image,) = events.Tensors("samples/frames")
  content = image.tensor_proto.string_val
  assert image.step == 2 and content[:2] == [b"10", b"8"] and len(content) == 5
  import imageio.v3 as iio  # pylint: disable=g-import-not-at-top
  np.testing.assert_array_equal(iio.imread(content[3], extension=".png"), frames[1])
  assert writers.read_metrics(str(tmp_path)) == [
      {"step": 1, "g/l1": 0.5, "d/real": 1.25}, {"step": 2, "g/l1": 0.25}]


def test_a_second_writer_appends(tmp_path):
  for step in (1, 2):
    writer = writers.make_writer(str(tmp_path))
    writer.write_scalars(step, {"loss": float(step)})
    writer.close()
  assert [r["step"] for r in writers.read_metrics(str(tmp_path))] == [1, 2]
  assert len(os.listdir(tmp_path / writers.TENSORBOARD_DIR)) == 2
  assert [e.step for e in _events(tmp_path / writers.TENSORBOARD_DIR).Scalars("loss")] == [1, 2]


def test_writing_needs_no_tensorflow(tmp_path):
  code = ("import sys, numpy as np\n"
          "from psrjax.train import writers\n"
          f"w = writers.make_writer({str(tmp_path)!r})\n"
          "w.write_scalars(1, {'a': 1.0})\n"
          "w.write_images(1, {'x': np.zeros((2, 4, 4, 3), np.uint8)})\n"
          "w.close()\n"
          "print('tensorflow' in sys.modules)\n")
  out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": REPO},
                       capture_output=True, text=True, check=True, timeout=120).stdout
  assert out.strip() == "False"
