"""Where a run runs: `train.platform` (no silent CPU fallback) and `train.compute_dtype=auto`
(bfloat16 on accelerators, float32 on the CPU) in the paper configs."""
import glob
import os

import jax
import jax.numpy as jnp
import pytest

from psrjax import config_utils
from psrjax.train import platform
from psrjax.train import precision

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAPER_CONFIGS = sorted(glob.glob(os.path.join(REPO, "configs", "*.py")))


class _Device:
  def __init__(self, platform_name, kind):
    self.platform, self.device_kind = platform_name, kind


def test_required_platform_accepts_its_devices_and_names_the_fallback():
  gpus = [_Device("gpu", "NVIDIA H100 80GB HBM3")] * 2
  platform.check("gpu", gpus)
  platform.check("any", jax.devices())
  platform.check("cpu", jax.devices())
  platform.check("tpu", [_Device("tpu", "TPU v5 lite")])
  with pytest.raises(ValueError) as error:
    platform.check("tpu", gpus)
  assert str(error.value).startswith(
      "train.platform='tpu' but JAX runs on gpu (2 x NVIDIA H100 80GB HBM3): libtpu did not load")
  assert "\n" not in str(error.value)
  with pytest.raises(ValueError, match="train.platform='cpu' but JAX runs on gpu"):
    platform.check("cpu", gpus)


def test_auto_compute_dtype_is_bfloat16_on_accelerators_only():
  config = config_utils.load_config(os.path.join(REPO, "configs", "pix2pixhd.py"))
  assert config.train.compute_dtype == "auto"
  assert precision.compute_dtype(config) == jnp.float32   # this CPU
  assert precision.compute_dtype(config, "gpu") == jnp.bfloat16
  assert precision.compute_dtype(config, "tpu") == jnp.bfloat16
  config.train.compute_dtype = "float32"
  assert precision.compute_dtype(config, "tpu") == jnp.float32


@pytest.mark.parametrize("path", PAPER_CONFIGS, ids=os.path.basename)
def test_paper_configs_compute_in_bfloat16_and_read_with_every_core_on_accelerators(path):
  """The paper configs: "auto" dtype and data workers; their runlocal variants keep explicit
  workers and, on the CPU, float32."""
  paper = config_utils.load_config(path)
  assert paper.train.compute_dtype == "auto" and paper.train.data_workers == "auto"
  runlocal = config_utils.load_config(f"{path}:runlocal")
  assert isinstance(runlocal.train.data_workers, int)
  assert precision.compute_dtype(runlocal) == jnp.float32
