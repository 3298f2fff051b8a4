"""Config files: loaded by path as modules of a package standing for their folder (a config builds
on a sibling with `from . import other`, from any working directory, and what refers to them
unpickles in a fresh process, as in data workers), and their one argument handling
(psrjax.config_args)."""
import glob
import os
import subprocess
import sys
import textwrap

import cloudpickle
import ml_collections
import pytest

from psrjax import config_args, config_utils

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = sorted(glob.glob(os.path.join(REPO, "configs", "*.py")))


def _write(folder, name, text):
  os.makedirs(folder, exist_ok=True)
  with open(os.path.join(folder, name), "w") as f:
    f.write(textwrap.dedent(text))


def _pair(folder, word):
  """base.py and derived.py (`from . import base`) in `folder`; derived's `word` marks it."""
  _write(folder, "base.py", """
      import ml_collections

      def get_config(arg=None):
        return ml_collections.ConfigDict(dict(name="base", arg=arg or "", steps=10))
      """)
  _write(folder, "derived.py", f"""
      from . import base

      def get_config(arg=None):
        c = base.get_config(arg)
        c.name = "derived_{word}"
        return c
      """)


def test_a_config_imports_its_sibling_from_any_working_directory(tmp_path, monkeypatch):
  _pair(str(tmp_path / "one"), "one")
  _pair(str(tmp_path / "two"), "two")   # same file names in another folder: its own package
  os.makedirs(tmp_path / "elsewhere")
  monkeypatch.chdir(tmp_path / "elsewhere")
  for spec in ("../one/derived.py:x", str(tmp_path / "one" / "derived.py") + ":x"):
    c = config_utils.load_config(spec)
    assert (c.name, c.arg, c.steps) == ("derived_one", "x", 10)
  assert config_utils.load_config("../two/derived.py").name == "derived_two"
  # The shipped configs that build on pix2pixHD's, from here.
  edn = config_utils.load_config(os.path.relpath(os.path.join(REPO, "configs", "edn.py:tiny")))
  pix2pixhd = config_utils.load_config(os.path.join(REPO, "configs", "pix2pixhd.py:tiny"))
  assert edn.system == "edn" and edn.model == pix2pixhd.model
  assert edn.data.frames_per_example == 2 and pix2pixhd.data.frames_per_example == 1


def test_a_config_file_runs_anew_on_every_load(tmp_path):
  _pair(str(tmp_path), "a")
  assert config_utils.load_config(str(tmp_path / "derived.py")).name == "derived_a"
  _pair(str(tmp_path), "b")
  assert config_utils.load_config(str(tmp_path / "derived.py")).name == "derived_b"


@pytest.mark.parametrize("spec", ["configs/edn.py:tiny", "configs/pix2pix.py:runlocal",
                                  "configs/internet.py:runlocal,ss"])
def test_config_functions_unpickle_in_a_fresh_process(spec, tmp_path):
  """Data-worker processes cannot import a config's module by name: its functions (and the
  sibling modules they use) travel by value."""
  path, _, arg = spec.partition(":")
  module = config_utils.load_config_module(os.path.join(REPO, path))
  pickled = tmp_path / "get_config.pkl"
  pickled.write_bytes(cloudpickle.dumps(module.get_config))
  code = ("import pickle, sys; f = pickle.load(open(sys.argv[1], 'rb')); "
          "print(f(sys.argv[2]).to_json(sort_keys=True))")
  out = subprocess.run([sys.executable, "-c", code, str(pickled), arg], cwd=tmp_path, check=True,
                       capture_output=True, text=True, timeout=300).stdout
  assert out.strip() == module.get_config(arg).to_json(sort_keys=True)


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_every_config_takes_the_shared_arguments(path):
  with pytest.raises(ValueError) as info:
    config_utils.load_config(f"{path}:nope")
  allowed = str(info.value).split("(allowed: ")[1].rstrip(")").split(", ")
  assert set(config_args.SHARED) <= set(allowed)
  c = config_utils.load_config(f"{path}:runlocal,res=48,batch=6")
  assert (c.data.resolution, c.train.batch_size) == (48, 6)


def _toy():
  c = ml_collections.ConfigDict()
  c.data = dict(resolution=256, dataset="")
  c.pose = dict(label="stick")
  c.train = dict(batch_size=8)
  return c


def test_apply_shared_runs_the_variants_then_the_values():
  calls = []

  def runlocal(c):
    calls.append("runlocal")
    c.data.resolution, c.train.batch_size = 64, 4

  def tiny(c):
    calls.append("tiny")
    c.data.resolution = 32

  arg = config_args.parse("tiny,runlocal,res=48,label=discs,data=/d", label="")
  c = config_args.apply_shared(_toy(), arg, runlocal=runlocal, tiny=tiny,
                               data=lambda c, path: c.data.update(dataset="read " + path))
  assert calls == ["runlocal", "tiny"]
  assert (c.data.resolution, c.train.batch_size, c.pose.label, c.data.dataset) == (
      48, 4, "discs", "read /d")
  c = config_args.apply_shared(_toy(), config_args.parse(""), runlocal=runlocal, tiny=tiny)
  assert c == _toy() and calls == ["runlocal", "tiny"]


@pytest.mark.parametrize("arg,match", [
    ("label=discs", r"unknown config argument 'label' \(allowed: batch, data, res, runlocal, "
                    r"ss, tiny\)"),
    ("res=abc", "config argument 'res' expects int, got 'abc'"),
    ("batch", r"config argument 'batch' needs a value \(batch=...\)"),
    ("runlocal=1", "config argument 'runlocal' expects bool, got '1'"),
])
def test_parse_rejects_bad_arguments(arg, match):
  with pytest.raises(ValueError, match=match):
    config_args.parse(arg, ss=False)


def test_a_flag_takes_true_or_false():
  arg = config_args.parse("runlocal=True,tiny=false,ss", ss=False, vgg=True)
  assert (arg.runlocal, arg.tiny, arg.ss, arg.vgg) == (True, False, True, True)
  c = config_utils.load_config(os.path.join(REPO, "configs", "mfci.py:temporal=False,vgg=False"))
  assert (c.model.temporal_ranges, c.loss.vgg) == ((), 0.0)
