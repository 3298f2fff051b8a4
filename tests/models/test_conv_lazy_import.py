"""`psrjax.nn.cpu` (the CPU convolutions) is imported only when a CPU implementation is resolved:
importing any other psrjax module (the CLI, the systems, the trainer, its benchmark and lowering
helpers) never imports it.

Checked in a fresh interpreter, since this test session has imported it already. "auto" on a
GPU/TPU backend is simulated on this CPU host by replacing `jax.default_backend` (what "auto"
reads at trace time) with one that answers "gpu"; the lowering is for "cuda".
"""
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = r"""
import importlib, json, os, sys
import flax.linen as nn
import jax, jax.numpy as jnp
import psrjax
from psrjax.nn import Conv3D, ConvTranspose3D, conv3d

def cpu_imported():
  return "psrjax.nn.cpu" in sys.modules

class Net(nn.Module):
  impl: str

  @nn.compact
  def __call__(self, x):
    return ConvTranspose3D(3, impl=self.impl)(Conv3D(4, padding=1, impl=self.impl)(x))

def cuda_text(impl):
  x = jnp.zeros((1, 4, 8, 8, 3))
  params = jax.eval_shape(Net(impl).init, jax.random.key(0), x)
  return jax.jit(Net(impl).apply).trace(params, x).lower(lowering_platforms=("cuda",)).as_text()

def modules():  # every psrjax module but those of psrjax.nn.cpu
  root = os.path.dirname(psrjax.__file__)
  for folder, _, files in os.walk(root):
    for name in sorted(files):
      module = os.path.relpath(os.path.join(folder, name), root)[:-3].replace(os.sep, ".")
      if name.endswith(".py") and not module.startswith("nn.cpu"):
        yield ("psrjax." + module).removesuffix(".__init__")

for m in modules():
  importlib.import_module(m)
seen = {"imports": cpu_imported()}
text = cuda_text("xla")
seen.update(xla=cpu_imported(), xla_convs=text.count("stablehlo.convolution"))
# A GPU backend, simulated: "auto" reads jax.default_backend() at trace time.
real_backend, jax.default_backend = jax.default_backend, lambda: "gpu"
text = cuda_text("auto")
from psrjax.train import benchmark, lowering
x = jnp.ones((1, 4, 8, 8, 3))
params = Net("auto").init(jax.random.key(0), x)
forward = jax.jit(Net("auto").apply)
forward(params, x).block_until_ready()
ops = lowering.jaxpr_compute_dtypes(forward.trace(params, x).jaxpr)
flops = benchmark.function_flops(forward, params, x)
jax.default_backend = real_backend
seen.update(auto_gpu=cpu_imported(), auto_gpu_cpu_calls=text.count("psrjax_conv_"),
            auto_gpu_ops=sorted({op for op, _ in ops}), auto_gpu_flops=flops)
# The control: "auto" on the CPU backend resolves a CPU implementation, which imports it.
jax.make_jaxpr(lambda x, k: conv3d(x, k, padding=1))(jnp.zeros((1, 4, 8, 8, 3)),
                                                     jnp.zeros((3, 3, 3, 3, 4)))
seen["auto_cpu"] = cpu_imported()
print(json.dumps(seen))
"""


def test_cpu_package_is_imported_only_for_a_cpu_implementation():
  env = {**os.environ, "PYTHONPATH": REPO, "JAX_PLATFORMS": "cpu"}
  result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  seen = json.loads(result.stdout.strip().splitlines()[-1])
  assert not seen["imports"], "importing psrjax's modules imported psrjax.nn.cpu"
  assert not seen["xla"], "impl 'xla' imported psrjax.nn.cpu"
  assert seen["xla_convs"] > 0
  assert not seen["auto_gpu"], ("impl 'auto' on a (simulated) GPU backend, or the lowering and "
                                "benchmark helpers there, imported psrjax.nn.cpu")
  assert seen["auto_gpu_cpu_calls"] == 0
  assert seen["auto_gpu_ops"] == ["conv_general_dilated"] and seen["auto_gpu_flops"] > 0
  assert seen["auto_cpu"], "impl 'auto' on the CPU backend should resolve a CPU implementation"
