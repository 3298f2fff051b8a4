"""Every shipped config (configs/*.py: the paper default, `runlocal` and `tiny` variants) and the
cluster commands of the README and the launchers start on 1, 2 (`slow`) and 8 devices with no
batch or mesh edits: `mesh.data=-1` takes a data axis that divides the global batch, eval
batches are rounded up to it and padded; an explicit `mesh.data` that cannot split the batch
stays a one-line error.

Only sizes that leave the batch, mesh and eval-batch settings alone are shrunk (resolution and
the discriminator depth it allows;
for the 2-step runs the sizes of the config's own `tiny` variant) to keep the tests fast.
"""
import glob
import math
import os
import re
import shlex

import jax
import numpy as np
import pytest

from psrjax import cli
from psrjax import config_utils
from psrjax.train import context as context_lib
from psrjax.train import partitioning
from psrjax.train import state as state_lib

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = sorted(glob.glob(os.path.join(REPO, "configs", "*.py")))
VARIANTS = ("", "runlocal", "tiny")
MAX_RES = 32
# Fields of the `tiny` variant copied into `runlocal` for the 2-step runs: sizes only (the
# stage count stays runlocal's, so its EMA groups exist).
TINY_SECTIONS, KEEP = ("data", "pose", "model", "loss"), ("model.layers",)


def _specs():
  out = []
  for path in CONFIGS:
    for variant in VARIANTS:
      spec = f"{path}:{variant}" if variant else path
      try:
        config_utils.load_config(spec)
      except ValueError as e:  # a config without this optional variant
        if "unknown config argument" not in str(e) or variant == "runlocal":
          raise
        continue
      out.append(spec)
  return out


SPECS = _specs()


def _name(spec: str) -> str:
  return os.path.relpath(spec, REPO)


def small(config):
  """`config` with its resolution capped at MAX_RES (batch, mesh and eval settings untouched)."""
  data = config.get("data")
  if data is not None and data.get("resolution", 0) > MAX_RES:
    data.resolution = MAX_RES
    model = config.get("model")
    if model is not None and model.get("generator") == "unet":   # pix2pix: at most a 1x1 bottleneck
      model.unet_downs = min(model.unet_downs, int(math.log2(MAX_RES)))
    if model is not None and "d_layers" in model:
      # the coarsest discriminator scale keeps a 1x1 output with padding 1 (cocovid's PatchGANs)
      coarsest = MAX_RES >> (model.get("num_d", 1) - 1)
      while model.d_layers > 1 and 3 * 2 ** model.d_layers > coarsest:
        model.d_layers -= 1
    if model is not None and "kp_num_blocks" in model:
      _small_fomm(model, config.loss)
  config.train.data_workers = 0
  return config


def _small_fomm(model, loss) -> None:
  """FOMM's (and INTERnet's) sizes at MAX_RES: hourglasses that divide their input, a
  discriminator whose 4x4 valid convolutions keep >= 1 pixel at its smallest image scale, a VGG pyramid whose relu5_1 keeps >= 1 pixel."""
  for prefix in ("kp", "dm"):
    size = int(MAX_RES * model[f"{prefix}_scale_factor"])
    while model[f"{prefix}_num_blocks"] > 1 and size % 2 ** model[f"{prefix}_num_blocks"]:
      model[f"{prefix}_num_blocks"] -= 1
  size, blocks = int(MAX_RES * min(model.get("d_scales", (1.0,)))), 0   # the smallest scale
  while blocks < model.d_num_blocks and size - 3 >= 1:
    size, blocks = (size - 3) // 2, blocks + 1
  model.d_num_blocks = blocks
  loss.scales = tuple(s for s in loss.scales if MAX_RES * s >= 16)


def expected_data_axis(config, num_devices: int) -> int:
  """The largest divisor of the devices that divides the global batch's microbatches."""
  batch, accum = config.train.batch_size, config.train.get("grad_accum", 1)
  return max(d for d in range(1, num_devices + 1)
             if num_devices % d == 0 and batch % (d * accum) == 0)


def check_context(ctx, config, num_devices: int) -> None:
  """Mesh shape, local and global train batch, and the padded eval batch of a context."""
  data = expected_data_axis(config, num_devices)
  assert dict(ctx.mesh.shape) == {"data": data, "replica": num_devices // data, "model": 1}
  batch = config.train.batch_size
  assert {np.shape(v)[0] for v in ctx.first_batch.values()} == {batch}
  key = sorted(ctx.first_batch)[0]
  array = ctx.global_batch({key: ctx.first_batch[key]})[key]
  assert array.shape[0] == batch and len(array.addressable_shards) == num_devices
  assert {s.data.shape[0] for s in array.addressable_shards} == {batch // data}
  eval_batch = math.ceil(config.eval.batch_size / data) * data
  assert ctx.eval_data.batch_size == eval_batch
  assert ctx.evals["system"].evaluator.data is ctx.eval_data
  first = ctx.eval_data.dataset[0]
  assert first["_valid"].shape == (eval_batch,)


# 2 devices (slow): 8 already takes a data axis smaller than the devices wherever the batch does
# not divide by 8, and each context build traces the system's initialisation again.
# One test process builds a spec's contexts for every device count: they share its system and
# its traced initialisation (psrjax.train.context, equal configs in one process).
@pytest.mark.parametrize("num_devices", [1, pytest.param(2, marks=pytest.mark.slow), 8])
@pytest.mark.parametrize("spec", [pytest.param(s, marks=pytest.mark.xdist_group(f"context-{_name(s)}"))
                                  for s in SPECS], ids=_name)
def test_config_builds_its_context(spec, num_devices):
  config = small(config_utils.load_config(spec))
  ctx = context_lib.build_context(config, None, devices=jax.devices()[:num_devices])
  check_context(ctx, config, num_devices)


def runlocal_with_tiny_sizes(path: str):
  """`path:runlocal` with the size fields of `path:tiny` (its batch, mesh, eval and schedule
  settings unchanged)."""
  config = config_utils.load_config(f"{path}:runlocal")
  tiny = config_utils.load_config(f"{path}:tiny")
  for section in TINY_SECTIONS:
    if section not in tiny:
      continue
    for key, value in tiny[section].items():
      if f"{section}.{key}" not in KEEP:
        config[section][key] = value
  config.train.data_workers = 0
  return config


@pytest.mark.slow  # minutes: compiling each system's 8-device step on a 2-core CPU
@pytest.mark.parametrize("path", [p for p in CONFIGS if f"{p}:tiny" in SPECS], ids=_name)
def test_runlocal_trains_two_steps_on_eight_devices(path):
  config = runlocal_with_tiny_sizes(path)
  ctx = context_lib.build_context(config, None)
  check_context(ctx, config, 8)
  batch = ctx.global_batch(ctx.first_batch)
  state = state_lib.create_state(ctx.init_fn, ctx.base_key, batch, ctx.state_shardings, ctx.mesh)
  step = ctx.jit_step(ctx.stages[0])
  for i in range(2):
    local = dict(ctx.batched[i + 1])
    state, metrics = step(state, ctx.global_batch(local), ctx.base_key, ctx.constants)
  metrics = jax.device_get(metrics)
  assert int(jax.device_get(state["step"])) == 2
  assert metrics and all(np.isfinite(v) for v in metrics.values()), metrics


# ------------------------------------------------------------------ README and launchers
def _read(*parts) -> str:
  with open(os.path.join(REPO, *parts), encoding="utf-8") as f:
    return f.read()


def _default(script: str, variable: str) -> str:
  """The default of `VAR=${X:-default}` in a shell script."""
  match = re.search(rf"^{variable}=\$\{{[\w]+:-([^}}]*)\}}", script, re.M)
  assert match, f"no default for {variable}"
  return match.group(1)


def _train_args(words):
  """(config spec, [(key, value)] overrides) of `psrjax train` arguments."""
  spec, overrides, words = None, [], list(words)
  while words:
    word = words.pop(0)
    if word == "--config":
      spec = words.pop(0)
    elif word.startswith("--config."):
      key, _, value = word[len("--config."):].partition("=")
      overrides.append((key, value if _ else words.pop(0)))
    elif word in ("--workdir", "--coordinator", "--num-processes", "--process-id"):
      words.pop(0)
  return spec, overrides


def _readme_commands(*parts):
  """(name, config spec, overrides) of every cluster command in a README's "Scaling out"."""
  readme = _read(*parts)
  section = readme[readme.index("## Scaling out"):]
  end = section.find("\n## ", 1)
  section = section if end < 0 else section[:end]
  tpu, slurm = _read("launch", "tpu_pod.sh"), _read("launch", "slurm_gpu.sbatch")
  where, commands = "/".join(parts), []
  for block in re.findall(r"```bash\n(.*?)```", section, re.S):
    for line in block.replace("\\\n", " ").splitlines():
      words = shlex.split(line.split("#")[0])
      if "launch/tpu_pod.sh" in words:
        env = dict(w.split("=", 1) for w in words if re.match(r"^[A-Z_]+=", w))
        config = env.get("CONFIG", _default(tpu, "CONFIG"))
        extra = shlex.split(env.get("EXTRA_ARGS", _default(tpu, "EXTRA_ARGS")))
        commands.append((f"{where} tpu_pod.sh", *_train_args(["--config", config, *extra])))
      elif "launch/slurm_gpu.sbatch" in words:
        rest = words[words.index("launch/slurm_gpu.sbatch") + 1:]
        config = rest[0] if rest else _default(slurm, "CONFIG")
        commands.append((f"{where} sbatch", *_train_args(["--config", config, *rest[2:]])))
      elif words[:2] == ["psrjax", "train"]:
        commands.append((f"{where} psrjax train", *_train_args(words[2:])))
  inline = re.findall(r"It runs `(psrjax train [^`]*)`", section)
  commands += [(f"{where} tpu_pod.sh inline", *_train_args(shlex.split(c)[2:])) for c in inline]
  return commands


def _launcher_commands():
  """(name, spec, overrides) of each launcher's default command and its header examples."""
  tpu, slurm = _read("launch", "tpu_pod.sh"), _read("launch", "slurm_gpu.sbatch")
  assert re.search(r"psrjax train --config \$CONFIG --workdir \S+ \$EXTRA_ARGS", tpu)
  assert re.search(r'psrjax train --config "\$CONFIG" --workdir "\$WORKDIR" "\$@"', slurm)
  commands = [
      ("tpu_pod.sh default", *_train_args(["--config", _default(tpu, "CONFIG"),
                                            *shlex.split(_default(tpu, "EXTRA_ARGS"))])),
      ("slurm_gpu.sbatch default", _default(slurm, "CONFIG"), [])]
  header = "\n".join(l[1:] for l in slurm.splitlines() if l.startswith("#") and
                     not l.startswith(("#!", "#SBATCH")))
  for line in header.replace("\\\n", " ").splitlines():
    if "launch/slurm_gpu.sbatch" not in line:
      continue
    words = shlex.split(line)
    if "launch/slurm_gpu.sbatch" in words:
      rest = words[words.index("launch/slurm_gpu.sbatch") + 1:]
      if rest and not rest[0].startswith("["):
        commands.append(("slurm_gpu.sbatch example", *_train_args(["--config", rest[0],
                                                                   *rest[2:]])))
  return commands


CLUSTER_COMMANDS = (_readme_commands("README.md") + _readme_commands("launch", "README.md")
                    + _launcher_commands())


def test_every_cluster_command_is_found():
  names = {name for name, _, _ in CLUSTER_COMMANDS}
  for readme in ("README.md", "launch/README.md"):
    assert {f"{readme} tpu_pod.sh", f"{readme} tpu_pod.sh inline", f"{readme} sbatch",
            f"{readme} psrjax train"} <= names, names
  assert {"tpu_pod.sh default", "slurm_gpu.sbatch default", "slurm_gpu.sbatch example"} <= names


def _distinct_commands():
  """{(spec, overrides): the names of the commands that run it}."""
  out = {}
  for name, spec, overrides in CLUSTER_COMMANDS:
    out.setdefault((spec, tuple(overrides)), []).append(name)
  return out


@pytest.mark.parametrize("spec,overrides", list(_distinct_commands()),
                         ids=[f"{s} {list(o)}" for s, o in _distinct_commands()])
def test_cluster_command_builds_its_context_on_eight_devices(spec, overrides):
  path, _, arg = spec.partition(":")
  config = small(config_utils.load_config(os.path.join(REPO, path) + (f":{arg}" if arg else ""),
                                          overrides))
  ctx = context_lib.build_context(config, None)
  check_context(ctx, config, 8)


# ------------------------------------------------------------------ what cannot be split
@pytest.mark.parametrize("overrides,match", [
    ({"mesh.data": "8"}, r"train.batch_size=4 must be a positive multiple of the data-parallel "
                         r"size 8 \(mesh.data"),
    ({"mesh.data": "4", "train.batch_size": "6"}, r"train.batch_size=6 must be a positive "
                                                  r"multiple of the data-parallel size 4"),
    ({"train.grad_accum": "3"}, r"train.batch_size=4 must be a multiple of mesh.data x "
                                r"train.grad_accum = 1 x 3 = 3"),
])
def test_unsplittable_batch_is_a_one_line_error(tmp_path, capsys, overrides, match):
  args = [f"--config.{k}={v}" for k, v in overrides.items()]
  workdir = tmp_path / "run"
  code = cli.main(["train", "--config", os.path.join(REPO, "configs", "mfci.py"),
                   "--workdir", str(workdir), *args])
  assert code == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert err[-1].startswith("psrjax train: error: ") and re.search(match, err[-1]), err[-1]
  assert not workdir.exists()


def test_auto_data_axis_logs_how_many_devices_hold_distinct_examples(caplog):
  config = small(config_utils.load_config(os.path.join(REPO, "configs", "mfci.py")))
  with caplog.at_level("INFO"):
    context_lib.build_context(config, None)
  lines = [r.getMessage() for r in caplog.records if "distinct examples" in r.getMessage()]
  assert lines == [partitioning.describe(partitioning.make_mesh(batch_size=4), 4)]
  assert lines[0].startswith("global batch 4: 4 of 8 devices hold distinct examples (1 each; "
                             "mesh data=4 x replica=2 x model=1)")


@pytest.mark.parametrize("rows,shards", [
    # {process: data rows its devices hold} -> that process's (shard index, shard count)
    ({0: {0}, 1: {1}}, {0: (0, 2), 1: (1, 2)}),                  # batch 2, 2 x 4 devices
    ({0: {0}, 1: {0}}, {0: (0, 1), 1: (0, 1)}),                  # batch 1: one shared shard
    ({0: {0, 1}, 1: {2, 3}}, {0: (0, 2), 1: (1, 2)}),
    ({0: {0}, 1: {0}, 2: {1}, 3: {1}}, {0: (0, 2), 1: (0, 2), 2: (1, 2), 3: (1, 2)}),
    ({0: {0, 1}, 1: {1, 2}}, None),                              # overlapping rows
    ({0: {0, 2}, 1: {1, 3}}, None),                              # not contiguous
    ({0: {0}, 1: {1, 2}}, None),                                 # unequal shards
])
def test_data_shards_of_process_layouts(rows, shards):
  groups = partitioning._row_groups({p: frozenset(r) for p, r in rows.items()})  # pylint: disable=protected-access
  if shards is None:
    assert groups is None
    return
  got = {p: (groups.index(frozenset(r)), len(groups)) for p, r in rows.items()}
  assert got == shards
