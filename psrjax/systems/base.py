"""The system protocol: what the generic trainer (`psrjax.train`) drives.

A *system* binds one paper's networks, losses, update schedule, data pipeline and evaluation.
The trainer knows nothing else about it: it batches the system's examples, builds the sharded
train state from `System.init`, runs the `Stage`s of `System.stages()` in order, evaluates with
`System.evaluate` (the `system` entry of `config.evals`) and writes `System.sample_video` strips.
Systems are resolved by name (`psrjax.systems.registry.get_system`): `config.system =
"psrnet"` imports `psrjax.systems.psrnet` and calls its `make_system(config)`. Between this
protocol and a paper's system sit the task bases and components of `psrjax.systems.tasks` (the
per-person video task, the animation task, GAN stages, the face GAN): a system builds on those
and on model modules, never on another system.

Writing a system (read `psrnet.py` or `mfci.py` beside this file as worked examples):

1. Parameter groups. `init` returns `{group: params}` for every network, trained now, later or
   never (e.g. "g1", "d1", "g2", ...); `optimizers` gives one optax transformation per group
   that some phase trains. Frozen pretrained networks (VGG, I3D) are `constants()`, not groups.
2. Derived inputs. `prepare(batch)` adds what every function reads and no network computes
   (pose maps, visibility, warps), on the devices. The trainer applies it before `init`, every
   train step, `generate` and `evaluate`: a system never calls it itself and never checks a
   batch for its own keys.
3. The schedule. `stages()` returns `Stage`s, each a run of steps with its `Phase`s. Per stage,
   declare the generator `forward(params, batch, rng) -> outputs` (a dict of the floating
   arrays the losses read) and per phase a `loss(params, batch, outputs, rng) -> (scalar,
   {term: scalar})`. The trainer runs the forward ONCE per step (`jax.vjp`); every phase but the
   stage's `forward_phase` (default: the last, the generator's) receives the outputs under
   `stop_gradient`, and the generator phase's gradient flows back through them, after the
   earlier phases' updates -- the semantics of a PyTorch GAN that detaches the fake for D.
   The forward reads only the `forward_phase`'s groups, the groups the stage does not train and
   the constants (no other phase's groups: they change during the step). Bind what differs
   between stages (which layers, which discriminator) into the functions when building the
   stages (`functools.partial`); never branch on a stage or phase name.
4. Inference. `generate(params, batch)` returns the final model's outputs, read by
   evaluations and synthesis; a stage whose samples should show the model as far as it is
   trained (e.g. PSR-Net's layers up to the stage's, EDN's frames before the face GAN) declares
   that inference as its `Stage.generate` (bound like its losses; samples during the stage use
   it, every other caller the system's `generate`). `evaluate` returns per-example metrics
   `[B]`.
5. Data. `dataset(split, ...)` yields per-example numpy dicts following the batch contract,
   made by a sampler of `psrjax.data` (per-person, same-video, view pairs) over a video source
   (`psrjax.data.sources.base`); `example_spec` declares their shapes so bad data fails with a
   one-line error, and `modalities` the source modalities it reads, checked against the
   source when the system is built (`sources.require`).
6. Synthesis. `synthesis_example(seed=..., **options)` is one example to render; the options
   it takes beyond `seed` are declared in `synthesis_options` (`Option`s), which `psrjax
   synthesize` offers as flags (`psrjax synthesize --workdir RUN --help` lists them). The
   default is example `seed` of the evaluation split, with no options. A long video (a whole
   driving recording) is rendered window by window: `synthesis_windows(seed=..., **options)`
   yields consecutive windows (default: the one `synthesis_example`), and
   `generate_window(params, batch, state)` generates one, carrying the system's temporal state
   (e.g. the previous generated frames) from window to window, starting from
   `window_state(batch)`.

Optional attributes the trainer uses when present:
  eval_groups: tuple[str, ...] -- names of the int32 `"group"` values that `evaluate` may
    return per example; the evaluator then also reports `"<metric>/<group name>"` means.
  float32_inputs: tuple[str, ...] -- batch keys kept in float32 when the trainer computes in
    bfloat16 (`train.compute_dtype`), e.g. flows or depths that need the precision.
  eval_prediction: str | None -- the `generate` output that evaluations comparing generated
    with real data score (FID / KID / FVD / VFID, R-SSIM; `psrjax.evals`), e.g. "layer3".
  eval_target: str | None -- the batch key of the real data it is compared with, e.g.
    "tgt_rgb". A `config.evals` entry's `prediction` / `target` fields override both.
  eval_keypoints: str -- the batch key of the poses of `eval_target`'s frames (R-SSIM's
    challenging poses; default "keypoints"), e.g. "tgt_keypoints".
"""
from __future__ import annotations

import abc
import dataclasses
from typing import Any, Callable, Iterator, Mapping

import jax
import ml_collections
import numpy as np
import optax

from psrjax.nn import population_norm

PyTree = Any
# The key of a synthesis window (`System.synthesis_windows`) that says how many frames to keep.
KEEP_FRAMES = "keep_frames"
Outputs = Any  # what a stage's forward returns: a pytree of floating arrays (batch first)
# forward(params, batch, rng) -> outputs
ForwardFn = Callable[[dict[str, PyTree], Mapping[str, jax.Array], jax.Array], Outputs]
# loss(params, batch, outputs, rng) -> (scalar loss to minimise, {term name: scalar})
LossFn = Callable[[dict[str, PyTree], Mapping[str, jax.Array], Outputs, jax.Array],
                  tuple[jax.Array, dict[str, jax.Array]]]
# generate(params, batch) -> {name: array (batch first)}
GenerateFn = Callable[[dict[str, PyTree], Mapping[str, jax.Array]], dict[str, jax.Array]]


@dataclasses.dataclass(frozen=True)
class Phase:
  """One update inside a train step: `loss` minimised over the groups in `trains`."""
  name: str  # e.g. "d" or "g"; prefixes its metrics ("d/adv").
  trains: tuple[str, ...]  # top-level parameter groups updated by this phase, e.g. ("d1",).
  # loss(params, batch, outputs, rng): `params` holds every group (cast to the compute dtype)
  # and the constants; `outputs` is the stage's forward (None when the stage declares none).
  loss: LossFn

  def __post_init__(self):
    if not self.name or "/" in self.name:
      raise ValueError(f"phase name must be non-empty without '/', got {self.name!r}")
    if isinstance(self.trains, str) or not self.trains:
      raise ValueError(f"phase {self.name!r}: trains must be a non-empty tuple of group names, "
                       f"got {self.trains!r}")
    if not callable(self.loss):
      raise ValueError(f"phase {self.name!r}: loss must be a function (params, batch, outputs, "
                       f"rng) -> (loss, terms), got {self.loss!r}")


@dataclasses.dataclass(frozen=True)
class Stage:
  """A contiguous run of train steps with one phase list and (optionally) one forward."""
  name: str  # e.g. "layer1"; names the stage in logs and in `psrjax bench --stage`.
  steps: int  # number of train steps in this stage (>= 0).
  phases: tuple[Phase, ...]  # applied in this order in every step of the stage.
  # forward(params, batch, rng) -> outputs every phase reads, computed once per step; None:
  # each phase's loss computes what it needs from `params` itself (outputs=None).
  forward: ForwardFn | None = None
  # The phase whose gradient flows back through the outputs (the generator's); None: the last.
  forward_phase: str | None = None
  # generate(params, batch) -> outputs shown in samples while this stage trains (the model as far
  # as it is trained); None: the system's `generate` (the final model).
  generate: GenerateFn | None = None

  def __post_init__(self):
    if self.steps < 0:
      raise ValueError(f"stage {self.name!r}: steps must be >= 0, got {self.steps}")
    if not self.phases:
      raise ValueError(f"stage {self.name!r}: needs at least one phase")
    names = [p.name for p in self.phases]
    if len(set(names)) != len(names):
      raise ValueError(f"stage {self.name!r}: phase names must be unique, got {names}")
    if self.forward is None and self.forward_phase is not None:
      raise ValueError(f"stage {self.name!r}: forward_phase={self.forward_phase!r} needs a "
                       "forward")
    if self.forward_phase is not None and self.forward_phase not in names:
      raise ValueError(f"stage {self.name!r}: forward_phase {self.forward_phase!r} is not one "
                       f"of its phases {names}")
    if self.forward is not None:
      generator = self.generator_phase()
      clash = sorted({g for p in self.phases if p is not generator for g in p.trains}
                     & set(generator.trains))
      if clash:
        raise ValueError(f"stage {self.name!r}: groups {clash} are trained by the forward's "
                         f"phase {generator.name!r} and by another phase; the forward's outputs "
                         "would go stale within the step")

  def generator_phase(self) -> Phase | None:
    """The phase whose gradient flows through the forward (None without a forward)."""
    if self.forward is None:
      return None
    name = self.forward_phase or self.phases[-1].name
    return next(p for p in self.phases if p.name == name)

  def trained_groups(self) -> tuple[str, ...]:
    """Every group some phase of the stage trains, in phase order."""
    return tuple(dict.fromkeys(g for p in self.phases for g in p.trains))


@dataclasses.dataclass(frozen=True)
class Option:
  """One keyword of `System.synthesis_example`, offered as `psrjax synthesize --<name>` (with
  dashes for underscores)."""
  name: str  # the keyword, e.g. "source_view"
  type: Callable[[str], Any]  # parses the command-line text, e.g. int
  default: Any  # the value when the flag is not given
  help: str  # one line for --help
  choices: tuple[Any, ...] | None = None  # the allowed values (None: any)

  @property
  def flag(self) -> str:
    return "--" + self.name.replace("_", "-")


class System(abc.ABC):
  """Base class of a paper's system; subclasses implement every abstract method below.

  Shapes follow the batch contract (`psrjax.data.contract`): batch first, videos `[B, T, H, W, C]`. Every
  function receives batches already passed through `prepare`.
  """

  config: ml_collections.ConfigDict
  eval_groups: tuple[str, ...] = ()
  eval_prediction: str | None = None
  eval_target: str | None = None
  eval_keypoints: str = "keypoints"
  # The keywords `synthesis_example` takes besides `seed` (`psrjax synthesize` flags).
  synthesis_options: tuple[Option, ...] = ()
  # The source modalities its examples read ("rgb", "keypoints", "mask", "flow_bwd", ...).
  modalities: tuple[str, ...] = ()

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config

  @abc.abstractmethod
  def stages(self) -> tuple[Stage, ...]:
    """The training schedule; the stages' steps sum to `config.train.steps`."""

  @abc.abstractmethod
  def init(self, rng: jax.Array, batch: Mapping[str, jax.Array]) -> dict[str, PyTree]:
    """Parameters of every group ({group name: params}), trained now or later or never."""

  @abc.abstractmethod
  def optimizers(self) -> dict[str, optax.GradientTransformation]:
    """One optimizer per parameter group that any phase trains."""

  @abc.abstractmethod
  def generate(self, params: dict[str, PyTree],
               batch: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    """The final model's inference outputs (batch first)."""

  @abc.abstractmethod
  def evaluate(self, params: dict[str, PyTree],
               batch: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    """Per-example metric values, each `[B]`; an int32 `"group"` entry selects `eval_groups`."""

  @abc.abstractmethod
  def sample_video(self, batch: Mapping[str, np.ndarray],
                   outputs: Mapping[str, np.ndarray]) -> np.ndarray:
    """uint8 `[T, H', W', 3]` side-by-side strip for ONE example, with a caption row naming
    each column (`side_by_side(columns, names)`).

    The trainer passes host numpy dicts of that one example, without a batch axis.
    """

  @abc.abstractmethod
  def dataset(self, split: str, *, seed: int, shard_index: int, shard_count: int):
    """A `grain.MapDataset` of per-example dicts of numpy arrays (no batch axis).

    Examples already follow the batch contract plus the system's own keys. The trainer
    shuffles (per epoch, with `seed`), repeats and batches the train split itself.
    """

  def prepare(self, batch: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    """The batch with the system's derived inputs added (e.g. visibility maps), on the devices.

    Applied by the trainer (once per train step, and before `init`, `generate`, `evaluate`);
    new keys keep the batch axis first. The default adds nothing.
    """
    return dict(batch)

  def constants(self) -> dict[str, PyTree]:
    """Frozen variables the system reads from `params` by group name (e.g. pretrained networks).

    They are placed on the devices once (replicated), passed to every jitted function as an
    argument (never baked in as constants), never trained, never in an optimizer state and
    never checkpointed. Names must differ from the `init` groups.
    """
    return {}

  def batch_norm_moments(self, params) -> dict:
    """Population statistics of the batch norms `generate` runs
    (`psrjax.nn.population_norm`), for inference on batches too small to normalise with their
    own; {} (the default) where `generate` has none or normalises with its batch's."""
    del params
    return {}

  def synthesis_example(self, *, seed: int, **options) -> dict[str, np.ndarray]:
    """The example `psrjax synthesize` renders (no batch axis): one keyword per
    `synthesis_options` entry besides `seed`. Default: example `seed` (modulo the split's size)
    of the evaluation split (`config.eval.split`)."""
    if options:
      raise ValueError(f"{type(self).__name__} takes no synthesis options; got "
                       f"{', '.join(sorted(options))}")
    ds = self.dataset(self.config.eval.split, seed=0, shard_index=0, shard_count=1)
    return dict(ds[int(seed) % len(ds)])

  def synthesis_windows(self, *, seed: int, **options) -> Iterator[dict[str, np.ndarray]]:
    """The examples `psrjax synthesize` renders one after another, consecutive windows of one
    video (no batch axis) whose strips follow each other in time. A window may carry
    `KEEP_FRAMES` (an int): how many of its first frames to keep (a video's last window, padded
    to the window length so that one compiled program serves every window). Default: the one
    `synthesis_example`."""
    yield self.synthesis_example(seed=seed, **options)

  def window_state(self, batch: Mapping[str, jax.Array]) -> PyTree:
    """The temporal state before a video's first window (e.g. zero previous frames) for a
    batch of windows. Default: none."""
    del batch
    return ()

  def generate_window(self, params: dict[str, PyTree], batch: Mapping[str, jax.Array],
                      state: PyTree) -> tuple[dict[str, jax.Array], PyTree]:
    """(`generate`'s outputs for one window of a longer video, the state after it): the window
    continues the video from `state` (`window_state` for the first). Default: windows are
    independent, `generate` on each."""
    return self.generate(params, batch), state

  def example_spec(self, split: str) -> dict[str, jax.ShapeDtypeStruct] | None:
    """Per-example shapes/dtypes the config implies, or None when the system declares none.

    When given, the trainer checks the first batch against it (one-line error on mismatch).
    """
    del split
    return None


def init(system: System, rng: jax.Array, batch: Mapping[str, jax.Array]) -> dict[str, PyTree]:
  """`system.init` on the prepared batch: how every caller outside the system runs it."""
  return system.init(rng, system.prepare(batch))


def generate(system: System, params: dict[str, PyTree], batch: Mapping[str, jax.Array], *,
             stage: Stage | None = None) -> dict[str, jax.Array]:
  """`system.generate` on the prepared batch: how every caller outside the system runs it;
  with `stage`, that stage's own inference (`Stage.generate`) where it declares one."""
  fn = stage.generate if stage is not None and stage.generate is not None else system.generate
  params, moments = split_moments(params)
  return population_norm.with_moments(moments, fn)(params, system.prepare(batch))


def evaluate(system: System, params: dict[str, PyTree],
             batch: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
  """`system.evaluate` on the prepared batch: how every caller outside the system runs it."""
  params, moments = split_moments(params)
  return population_norm.with_moments(moments, system.evaluate)(params, system.prepare(batch))


# The parameter group that carries `System.batch_norm_moments` into `generate`, `evaluate` and
# `generate_window`: with it, every batch norm they run normalises with those statistics
# instead of its batch's (`population_norm.with_moments`). It travels as an argument of the
# jitted evaluations, never baked into them.
MOMENTS_GROUP = "batch_norm_moments"


class NoBatchNorm(ValueError):
  """A system without batch norms was asked for their population statistics."""


def with_population_moments(system: System, params: dict[str, PyTree]) -> dict[str, PyTree]:
  """`params` plus the MOMENTS_GROUP of the system's population statistics; NoBatchNorm
  when the system's inference has no batch norm to give them to."""
  moments = system.batch_norm_moments(params)
  if not moments:
    raise NoBatchNorm(f"{type(system).__name__} has no batch norm whose statistics the "
                     "population could replace; evaluate without --batch-norm population")
  return {**params, MOMENTS_GROUP: moments}


def split_moments(params: dict[str, PyTree]) -> tuple[dict[str, PyTree], dict]:
  """(params without MOMENTS_GROUP, the statistics it carried or {})."""
  if MOMENTS_GROUP not in params:
    return params, {}
  params = dict(params)
  return params, params.pop(MOMENTS_GROUP)


def generate_window(system: System, params: dict[str, PyTree], batch: Mapping[str, jax.Array],
                    state: PyTree) -> tuple[dict[str, jax.Array], PyTree]:
  """`system.generate_window` on the prepared batch: how every caller outside the system runs
  it."""
  params, moments = split_moments(params)
  return population_norm.with_moments(moments, system.generate_window)(
      params, system.prepare(batch), state)


def window_state(system: System, batch: Mapping[str, jax.Array]) -> PyTree:
  """`system.window_state` on the prepared batch."""
  return system.window_state(system.prepare(batch))
