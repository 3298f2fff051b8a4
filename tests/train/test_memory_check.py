"""The memory check before the first step: a step that cannot fit the devices stops the run
with one line (the figure and the fixes) before anything is trained or saved."""
import os

import jax
import jax.numpy as jnp
import numpy as np

from psrjax import cli
from psrjax.train import memory

HERE = os.path.dirname(os.path.abspath(__file__))
TOY_CONFIG = os.path.join(HERE, "toy_config.py")


def test_the_need_is_xla_s_analysis_of_the_compiled_program():
  x = jnp.zeros((256, 256), jnp.float32)
  compiled = jax.jit(lambda a: (a @ a + 1.0).sum(0)).lower(x).compile()
  stats = compiled.memory_analysis()
  need = memory.step_bytes(compiled)
  assert need >= x.nbytes + 256 * 4                  # the argument and the output at least
  assert need == (stats.argument_size_in_bytes + stats.output_size_in_bytes
                  + stats.temp_size_in_bytes - stats.alias_size_in_bytes)
  assert memory.check_fits(compiled, jax.local_devices()[:1], what="it") == need


def test_a_step_too_large_for_the_host_stops_before_training(tmp_path, capsys, monkeypatch):
  monkeypatch.setattr(memory, "_host_available", lambda: 1 << 10)   # a 1-KiB machine
  workdir = tmp_path / "run"
  code = cli.main(["train", "--config", f"{TOY_CONFIG}:train.steps=2", "--workdir",
                   str(workdir)])
  line = capsys.readouterr().err.strip().splitlines()[-1]
  assert code == 2, line
  assert "the train step of stage" in line and "GiB" in line and "res=R" in line, line
  assert "bfloat16" in line and "remat" in line, line
  assert not os.path.isdir(workdir / "checkpoints") or not os.listdir(workdir / "checkpoints")


def test_unknown_backends_are_not_checked():
  class NoAnalysis:
    def memory_analysis(self):
      raise NotImplementedError
  assert memory.check_fits(NoAnalysis(), jax.local_devices()[:1], what="it") is None
  assert np.isfinite(memory.capacity(jax.local_devices())[0])
