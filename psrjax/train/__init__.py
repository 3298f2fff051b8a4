"""The generic trainer: drives any `psrjax.systems.base.System` (batches: `psrjax.data.contract`).

Modules (import what you need; this package imports nothing eagerly):
  loop          `train(config, workdir) -> TrainResult`, `NonFiniteLossError`
  offline_eval  `evaluate_checkpoint(config, workdir)` (what `psrjax eval` runs)
  best          `train.keep_best`: the best-validation snapshot in `<workdir>/best/`
  benchmark     `benchmark(config) -> BenchResult` (what `psrjax bench` runs)
  distributed   multi-process start-up from flags, SLURM or Cloud TPU
  evaluator     `EvalSplit` (padded, masked eval batches) and `build`: the `config.evals`
                entries (`psrjax.evals`; the system's own metrics are the `system` entry)
  context       `build_context`: validation of config, system, mesh and data before any write
  partitioning  the (data, model) Mesh, replicated / FSDP / model-axis shardings, global batches
  options       validated scale options: sharding, compute dtype, gradient accumulation, EMA
  precision     float32 parameters, bfloat16 compute: casts at the system boundary
  state         the state pytree {"params", "opt", "step"[, "ema"]} built from `jax.eval_shape`
  step          one jitted step per Stage (phases in order, microbatches, EMA, per-group norms)
  checkpoint    orbax checkpoints of state + grain iterator, corrupt-checkpoint fallback
  data          grain pipelines (shuffled/repeated train stream, padded eval batches)
  writers       metrics.jsonl, TensorBoard event files (no TensorFlow needed), sample GIFs
  progress      terminal progress display
  preemption    SIGTERM -> save and stop
  samples       sample videos from `System.generate` + `System.sample_video`
  defaults      `trainer_config()`: every config field the trainer reads
"""
