"""A tiny conditional video GAN implementing the system protocol, for trainer tests.

Task: from `src` (the clip mirrored left-right) predict `rgb`. Generator and discriminator are
two per-frame convolutions each. Two stages: "warmup" (generator only, L1) and "gan"
(discriminator phase, then generator phase with L1 + adversarial loss).
Data: procedural moving sinusoid clips, a grain MapDataset over a RandomAccessDataSource.
`config.toy.poison=True` turns every example's `rgb` into NaN (for the NaN-guard test);
`config.toy.source_res` renders clips at another size than the config's `res` (bad input).
"""
from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from psrjax.systems import base
from psrjax.train import defaults

SPLIT_OFFSET = {"train": 0, "validation": 10_000, "test": 20_000}


class ToySource(grain.sources.RandomAccessDataSource):
  """Clip i of a split: a sinusoid pattern whose phase and speed depend on i."""

  def __init__(self, split: str, *, num_clips: int, frames: int, res: int, poison: bool):
    self.split, self.num_clips, self.frames, self.res = split, num_clips, frames, res
    self.poison = poison

  def __len__(self) -> int:
    return self.num_clips

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    seed = SPLIT_OFFSET[self.split] + int(index)
    t, y, x, c = np.meshgrid(np.arange(self.frames), np.arange(self.res), np.arange(self.res),
                             np.arange(3), indexing="ij")
    phase, speed = 0.37 * seed, 0.2 + 0.05 * (seed % 7)
    rgb = np.sin(phase + speed * t + 0.6 * x + 0.3 * y * (c + 1)).astype(np.float32)
    if self.poison:
      rgb = np.full_like(rgb, np.nan)
    return {"rgb": rgb, "src": rgb[:, :, ::-1].copy(), "index": np.int32(index)}


class FrameNet(nn.Module):
  """Two per-frame 3x3 convolutions over [B, T, H, W, C] videos."""
  features: int  # hidden channels.
  out: int  # output channels.
  stride: int = 1  # stride of the first convolution.

  @nn.compact
  def __call__(self, x, *, train=False):
    b, t = x.shape[:2]
    x = x.reshape((b * t,) + x.shape[2:])
    x = nn.leaky_relu(nn.Conv(self.features, (3, 3), strides=self.stride)(x), 0.2)
    x = nn.Conv(self.out, (3, 3))(x)
    return x.reshape((b, t) + x.shape[1:])


@dataclasses.dataclass
class ToySystem(base.System):
  config: ml_collections.ConfigDict
  eval_groups: tuple[str, ...] = ("even", "odd")
  input_noise: float = 0.05  # std of the noise added to the generator input (0 = none)

  def __post_init__(self):
    self.g = FrameNet(features=self.config.toy.features, out=3)
    self.d = FrameNet(features=self.config.toy.features, out=1, stride=2)

  def stages(self):
    steps = self.config.train.steps
    warmup = steps // 2
    g_warm = base.Phase("g", ("g",), functools.partial(self.g_loss, 0.0))
    g_gan = base.Phase("g", ("g",), functools.partial(self.g_loss, 0.1))
    return (base.Stage("warmup", warmup, (g_warm,), forward=self.forward),
            base.Stage("gan", steps - warmup, (base.Phase("d", ("d",), self.d_loss), g_gan),
                       forward=self.forward))

  def init(self, rng, batch):
    kg, kd = jax.random.split(rng)
    return {"g": self.g.init(kg, batch["src"])["params"],
            "d": self.d.init(kd, batch["rgb"])["params"]}

  def optimizers(self):
    return {"g": optax.adam(self.config.toy.lr), "d": optax.adam(self.config.toy.lr)}

  def _fake(self, params, src):
    return jnp.tanh(self.g.apply({"params": params["g"]}, src))

  def _logits(self, params, video):
    return self.d.apply({"params": params["d"]}, video).mean(axis=(1, 2, 3, 4))

  def forward(self, params, batch, rng):
    """The generator on the (noisy) source: {"fake": [B, T, H, W, 3]}."""
    src = batch["src"]
    if self.input_noise:
      src = src + self.input_noise * jax.random.normal(rng, src.shape)
    return {"fake": self._fake(params, src)}

  def d_loss(self, params, batch, outputs, rng):
    del rng
    real = jax.nn.softplus(-self._logits(params, batch["rgb"])).mean()
    fake_term = jax.nn.softplus(self._logits(params, outputs["fake"])).mean()
    return real + fake_term, {"real": real, "fake": fake_term}

  def g_loss(self, weight, params, batch, outputs, rng):
    """L1 + weight * adversarial."""
    del rng
    fake = outputs["fake"]
    l1 = jnp.abs(fake - batch["rgb"]).mean()
    adv = jax.nn.softplus(-self._logits(params, fake)).mean()
    return l1 + weight * adv, {"l1": l1, "adv": adv}

  def generate(self, params, batch):
    return {"fake": self._fake(params, batch["src"])}

  def evaluate(self, params, batch):
    fake = self._fake(params, batch["src"])
    return {"l1": jnp.abs(fake - batch["rgb"]).mean(axis=(1, 2, 3, 4)),
            "index": batch["index"].astype(jnp.float32),
            "group": batch["index"] % 2}

  def sample_video(self, batch, outputs):
    strip = np.concatenate([batch["src"], batch["rgb"], outputs["fake"]], axis=2)
    return np.clip((strip + 1) * 127.5, 0, 255).astype(np.uint8)

  def synthesis_example(self, *, seed: int = 0) -> dict[str, np.ndarray]:
    """Validation clip `seed` (what `psrjax synthesize --seed` renders)."""
    cfg = self.config.toy
    return ToySource("validation", num_clips=seed + 1, frames=cfg.frames,
                     res=cfg.source_res or cfg.res, poison=cfg.poison)[seed]

  def dataset(self, split, *, seed, shard_index, shard_count):
    cfg = self.config.toy
    num = cfg.train_clips if split == "train" else cfg.eval_clips
    res = cfg.source_res or cfg.res
    source = ToySource(split, num_clips=num, frames=cfg.frames, res=res, poison=cfg.poison)
    return grain.MapDataset.source(source).slice(slice(shard_index, None, shard_count))

  def example_spec(self, split):
    cfg = self.config.toy
    video = jax.ShapeDtypeStruct((cfg.frames, cfg.res, cfg.res, 3), jnp.float32)
    return {"rgb": video, "src": video, "index": jax.ShapeDtypeStruct((), jnp.int32)}


def make_system(config):
  return ToySystem(config)


def toy_config(**overrides) -> ml_collections.ConfigDict:
  """A complete trainer config for the toy system (tiny and fast)."""
  config = defaults.trainer_config()
  config.system = __file__
  config.train.update(batch_size=8, steps=4, log_every=1, checkpoint_every=2, max_to_keep=5,
                      sample_every=0, eval_every=0, data_workers=0, prefetch=0)
  config.eval.update(split="validation", batch_size=8, num_examples=0)
  config.toy = ml_collections.ConfigDict(dict(
      features=4, frames=2, res=8, lr=1e-2, train_clips=24, eval_clips=10, poison=False,
      source_res=0))  # source_res: render clips at this size instead of `res` (0 = res).
  for key, value in overrides.items():
    node = config
    *parents, leaf = key.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config
