"""The config fields the generic trainer reads, with defaults; system configs extend it.

Usage in a config file::

    from psrjax.train import defaults
    def get_config(arg=None):
      config = defaults.trainer_config()
      config.system = "psrnet"
      config.psrnet = ...  # the system's own fields
      return config
"""
from __future__ import annotations

import ml_collections


def trainer_config() -> ml_collections.ConfigDict:
  """A ConfigDict with every trainer field (see the comments for allowed values)."""
  config = ml_collections.ConfigDict()
  _run_fields(config)
  config.train = _train_fields()
  _layout_fields(config)
  _eval_fields(config)
  return config


def _run_fields(config: ml_collections.ConfigDict) -> None:
  """The run's system, seed and where it starts from."""
  config.system = ""  # module in psrjax/systems/, a dotted module path, or a .py file.
  config.seed = 0  # int: parameters, dropout/noise keys and data order.
  config.resume = ""  # "" or a workdir / checkpoints dir / step dir to continue from.
  config.init_from = ""  # "" or a checkpoint path whose parameter groups replace fresh ones.
  config.init_groups = ()  # groups init_from loads, e.g. ("g",); () = every group it shares.
  config.init_from_ema = False  # True: groups whose EMA init_from's checkpoint keeps load it.
  # "restore" | "reshard": resuming in another data layout (another number of processes or
  # data shards), "restore" stops with one line; "reshard" starts each new shard's data stream at
  # the checkpoint's step. Parameters and optimizer state restore onto any mesh either way.
  config.resume_data = "restore"


def _train_fields() -> ml_collections.ConfigDict:
  """config.train: the schedule, logging, data reading, precision and optimizer update."""
  train = ml_collections.ConfigDict()
  train.batch_size = 8  # global, on any device count (mesh.data=-1 adapts to it).
  train.steps = 1000  # total train steps; System.stages() splits them.
  train.log_every = 50  # steps between metric logs (metrics fetched only then).
  train.checkpoint_every = 500  # steps between checkpoints (also saved at the end).
  train.max_to_keep = 3  # checkpoints kept on disk.
  train.sample_every = 500  # steps between sample videos, 0 = only at the end.
  train.eval_every = 0  # steps between runs of the system's own metrics (the `system`
  #                              entry of config.evals, below), 0 = only at the end.
  # () = off, or (metric, mode): keep the best-validation snapshot. metric = "<eval entry>/
  # <metric>" of config.evals (e.g. "system/l1", "system/m_ssim/fused", "fvd/fvd"), mode = "min"
  # | "max". Each time that entry runs in training (the final run included), a strictly better
  # value (NaN never is) saves the step's train state to <workdir>/best/<step>/ and
  # <workdir>/best/best.json = {"step", "metric", "mode", "value"} (crash-safe; a resumed run
  # keeps it unless beaten). `psrjax eval --best` / `psrjax synthesize --best` use it. On the
  # command line: --config.train.keep_best="('system/l1', 'min')".
  train.keep_best = ()
  # grain worker processes: an int (0 = read in the main process) or "auto" = max(0,
  # min(CPUs of this process - 1, 16 x local devices)) (psrjax.train.data.resolve_workers).
  train.data_workers = ml_collections.FieldReference(0, field_type=object)
  train.prefetch = 2  # batches read ahead by threads, 0 = synchronous.
  # "any" | "cpu" | "gpu" | "tpu": the platform the run requires; anything but "any" makes a
  # silent fallback (e.g. to the CPU when the CUDA plugin fails to load) a one-line error
  # before anything is read or written (psrjax.train.platform). The launchers set it.
  train.platform = "any"
  # "float32" | "bfloat16" | "auto" (bfloat16 on GPU/TPU, float32 on the CPU); parameters,
  # normalisation statistics and losses stay float32 (psrjax.train.precision).
  train.compute_dtype = "float32"
  train.profile_steps = ()  # () = off, or (start, count): a jax.profiler trace of the
  #   `count` steps that follow step `start` in <workdir>/profile (TensorBoard's profile tab).
  train.grad_accum = 1  # microbatches per step (batch_size % (mesh.data * N) == 0).
  # True | False | "auto": each group's optimizer update on its parameters raveled into one
  # vector (psrjax.train.fused; replicated parameters only). "auto": on the CPU, for groups of
  # up to 4 M parameters, where XLA would compile and run each array's update on its own; off on
  # GPU/TPU, whose XLA fuses small updates itself, and for large groups, where the raveled
  # copies' memory traffic costs more than it saves. Off by default; "auto" in the `tiny`
  # variants (psrjax.train.fused).
  train.fused_update = ml_collections.FieldReference(False, field_type=object)
  train.ema = ml_collections.ConfigDict()
  train.ema.decay = 0.0  # 0.0 = off, else e.g. 0.999: ema = decay * ema + (1-decay) * params.
  train.ema.groups = ()  # parameter groups averaged (e.g. ("g",)); eval/samples use them.
  return train


def _layout_fields(config: ml_collections.ConfigDict) -> None:
  """config.sharding and config.mesh: how parameters and the batch lie on the devices."""
  config.sharding = ml_collections.ConfigDict()
  config.sharding.params = "replicated"  # "replicated" | "fsdp" (params + optimizer over `data`).
  config.sharding.min_size = 2**14  # leaves with fewer elements stay replicated (fsdp / model).

  config.mesh = ml_collections.ConfigDict()
  config.mesh.data = -1  # data-parallel size; -1 = the largest divisor of the devices over
  #                       `model` that divides train.batch_size / grad_accum (the other devices
  #                       replicate the batch on a `replica` axis); explicit: must divide it.
  config.mesh.model = 1  # model-axis size: large kernels' output channels are split along it
  #                       (the batch is replicated along it).


def _eval_fields(config: ml_collections.ConfigDict) -> None:
  """config.eval (the defaults every evaluation inherits) and config.evals."""
  # The defaults every config.evals entry inherits (systems also size their eval sets from it).
  config.eval = ml_collections.ConfigDict()
  config.eval.split = "validation"  # split name passed to System.dataset.
  config.eval.batch_size = 8  # global eval batch, rounded up to a multiple of mesh.data
  #                             (padded and masked; every example counts once).
  config.eval.num_examples = 0  # first N examples of the split, 0 = all.

  # Evaluations by name (see psrjax/evals/__init__.py), e.g.
  # config.evals.fvd = dict(type="fvd", every=5000, num_examples=256): results in
  # <workdir>/eval/<name>/<step>.json and eval/<name>/* scalars. Without an entry named
  # "system", one is added: dict(type="system", every=train.eval_every, split=eval.split,
  # num_examples=eval.num_examples, batch_size=eval.batch_size), the means of
  # System.evaluate (TrainResult.eval_results). On the command line:
  # --config.evals.fid="dict(type='fid', every=0, num_examples=64)" adds an entry,
  # --config.evals.system.every=100 changes a field.
  config.evals = ml_collections.ConfigDict()
