"""TensorFlow is optional (the `tfds` extra): psrjax's modules import without it, and writing a
TFDS video dataset, the one feature that needs it, fails first with a line naming the extra.

Checked in fresh interpreters whose import system finds no `tensorflow` (as where it is not
installed), since this environment has it.
"""
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

HIDE_TENSORFLOW = r"""
import importlib, json, os, sys

class NoTensorFlow:
  # Wraps a meta path finder so that it finds no `tensorflow`.
  def __init__(self, finder):
    self.finder = finder

  def find_spec(self, name, path=None, target=None):
    if name == "tensorflow" or name.startswith("tensorflow."):
      return None
    return self.finder.find_spec(name, path, target)

  def __getattr__(self, name):
    return getattr(self.finder, name)

sys.meta_path[:] = [NoTensorFlow(f) for f in sys.meta_path]
"""


def _run(code: str) -> dict:
  env = {**os.environ, "PYTHONPATH": REPO, "JAX_PLATFORMS": "cpu"}
  result = subprocess.run([sys.executable, "-c", HIDE_TENSORFLOW + code], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads(result.stdout.strip().splitlines()[-1])


def _import(modules: str) -> dict:
  return _run(f"""
import psrjax
modules = {modules}
failed = {{}}
for m in modules:
  try:
    importlib.import_module(m)
  except ImportError as e:
    failed[m] = str(e)
print(json.dumps({{"failed": failed, "tensorflow": "tensorflow" in sys.modules}}))
""")


def test_psrjax_imports_without_tensorflow():
  every = f"""[m for m in (
    ("psrjax." + os.path.relpath(os.path.join(d, f), os.path.dirname(psrjax.__file__))[:-3]
     .replace(os.sep, ".")).removesuffix(".__init__")
    for d, _, fs in os.walk(os.path.dirname(psrjax.__file__)) for f in sorted(fs)
    if f.endswith(".py"))]"""
  seen = _import(every)
  assert seen == {"failed": {}, "tensorflow": False}


def test_prepare_without_tensorflow_is_one_line_naming_the_extra(tmp_path):
  seen = _run(f"""
import contextlib, io
import imageio.v3 as iio
import numpy as np
from psrjax import cli
os.makedirs("{tmp_path}/videos")
iio.imwrite("{tmp_path}/videos/clip.mp4", np.zeros((4, 32, 32, 3), np.uint8), extension=".mp4",
            fps=8, codec="libx264", macro_block_size=1)
err = io.StringIO()
with contextlib.redirect_stderr(err):
  code = cli.main(["prepare", "--videos", "{tmp_path}/videos", "--out", "{tmp_path}/out"])
print(json.dumps({{"code": code, "stderr": err.getvalue(), "out": os.path.exists("{tmp_path}/out")}}))
""")
  assert seen["code"] == 2 and not seen["out"]
  assert seen["stderr"].strip().splitlines() == [
      "psrjax prepare: error: writing a TFDS video dataset (psrjax prepare, the builders in "
      "datasets/) needs TensorFlow: pip install 'psrjax[tfds]'"]
