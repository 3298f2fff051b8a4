"""The pretrained feature networks convolve through psrjax's conv dispatch (`conv_impl`) and the
dtype policy, like the generators and discriminators: oneDNN on the CPU backend ("auto"), XLA's
convolution where named "xla" (what GPUs and TPUs run), with the same values either way."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from psrjax.models import pretrained
from psrjax.nn.cpu import onednn
from psrjax.train import lowering

# Networks, with module overrides that keep the test small.
NETWORKS = {"vgg16": {}, "vgg19": {"final_endpoint": "relu3_1"}, "alexnet": {},
            "inception_v3_fid": {"resize": False, "final_endpoint": "Mixed_5b"},
            "i3d": {"final_endpoint": "Mixed_3b"}}


def _net(name, *, abstract=False, **kwargs):
  """(module, variables, input); `abstract`: their shapes only (nothing initialised), for
  lowering. One jitted initialisation, not one program per initialiser and layer."""
  module = pretrained.make_module(name, **NETWORKS[name], **kwargs)
  shape = pretrained._network(name).EXAMPLE_INPUT_SHAPE  # pylint: disable=protected-access
  if abstract:
    x = jax.ShapeDtypeStruct(shape, jnp.float32)
    return module, jax.eval_shape(module.init, jax.random.key(0), x), x
  x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, shape), jnp.float32)
  return module, jax.jit(module.init)(jax.random.key(0), x), x


def _targets(module, variables, x, platform):
  text = lowering.lower_text(jax.jit(module.apply), (variables, x), platform)
  return {t for t in lowering.custom_call_targets(text)
          if t.startswith(lowering.CPU_CONV_TARGET_PREFIX)}, text


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_auto_runs_onednn_on_the_cpu_and_equals_xla(name):
  if not onednn.available():
    pytest.skip("psrjax's oneDNN extension is not built")
  module, variables, x = _net(name)
  cpu_calls, _ = _targets(module, variables, x, "cpu")
  assert cpu_calls, name
  xla = pretrained.make_module(name, **NETWORKS[name], conv_impl="xla")
  ours, ref = jax.jit(module.apply)(variables, x), jax.jit(xla.apply)(variables, x)
  for k in ref:
    np.testing.assert_allclose(np.asarray(ours[k]), np.asarray(ref[k]), rtol=2e-4,
                               atol=2e-4 * float(jnp.max(jnp.abs(ref[k]))) + 1e-6, err_msg=k)


@pytest.mark.parametrize("platform", ["tpu", "cuda"])
@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_xla_lowers_for_accelerators_in_the_input_dtype(name, platform):
  module, variables, x = _net(name, conv_impl="xla", abstract=True)
  cpu_calls, text = _targets(module, variables, jax.ShapeDtypeStruct(x.shape, jnp.bfloat16),
                             platform)
  assert not cpu_calls
  convs = [t for op, t in lowering.compute_dtypes(text) if op == "stablehlo.convolution"]
  assert convs and all(set(t) == {"bf16"} for t in convs), convs[:3]
