r"""Measurements of a trained FOMM workdir (configs/fomm.py; INTERnet's, configs/internet.py,
read alike: its confidence stands for the occlusion map) that say where its animation fails.

  python benchmarks/fomm_diagnosis.py --workdir DIR [--steps 500,2000] [--parts PARTS]

Parts (comma separated; default all), each printed as one JSON line per checkpoint step:
- "eval": the evaluation's per-example metrics (`System.evaluate` without Act-Recog), and L1 /
  SSIM / LPIPS per driving-frame index, on the config's held-out clips and eval batches
  (runlocal: 32 clips, batches of 8).
- "identity": the source driven by itself (kp_driving = kp_source): the output, and the source
  warped by the dense motion alone ("deformed"), against the source; the dense motion's mean
  distance from the identity (pixels) and its mean occlusion map.
- "train_recon": the reconstruction of training pairs (source, driving frame of one clip) against
  the driving frame, beside the copied source frame.
- "distance": how far the driving frames are from the source: the copied source frame against
  each evaluation driving frame (per index) and against the driving frame of training pairs.
- "keypoints": the least-squares linear map from the K keypoints (and a constant) to the 18 true
  joints' pixel positions, fitted on training frames, its mean joint error on held-out frames
  (pixels, visible joints), beside the mean pose's.
- "batchnorm": the evaluation with batch norm's statistics taken from other batches: per example
  (batch of 1), and the population statistics of training batches (the official running
  statistics' limit), beside the eval batch (runlocal: 8).
- "regions": where the evaluation's SSIM and PSNR are lost: on the true person of each driving
  frame (M-SSIM / M-PSNR, the GTNet convention) and on the room outside it (B-SSIM / B-PSNR),
  for the output and for the copied source frame, on the evaluation's clips and batches.
- "flow": whether the dense motion moves the right pixels (synthetic world only): on the person
  in each evaluation driving frame, wherever the source frame shows the same body-surface face,
  the end-point error (pixels) of the source position the dense motion samples (its deformation,
  from the relative keypoints `generate` uses) against the world's exact one
  (`face_correspondence`), beside the identity's (no motion: what copying the source does), over
  all those pixels and over those the body moved by more than 1 pixel; the dense motion's
  mask weight of the background (identity) motion, over the frame and on the person; and the
  occlusion map's mean on the person and off it.
"""
from __future__ import annotations

import argparse
import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from psrjax import config_utils
from psrjax.data.samplers import same_video
from psrjax.metrics import perceptual, runs, structural
from psrjax.nn import population_norm
from psrjax.systems.tasks import animation, keypoint_motion
from psrjax.train import checkpoint as checkpoint_lib
from psrjax.train import context as context_lib

PARTS = ("eval", "identity", "train_recon", "distance", "keypoints", "batchnorm", "regions",
         "flow")
TRAIN_PAIRS = 256   # training pairs (source, driving frame) measured, in the trainer's batches


def stack(examples):
  return {k: np.stack([e[k] for e in examples]) for k in examples[0]}


def batches(ds, count: int, size: int):
  """The first `count` examples of a grain MapDataset in numpy batches of `size`."""
  items = [ds[i] for i in range(min(count, len(ds)))]
  return [stack(items[i:i + size]) for i in range(0, len(items), size)]


def frame_metrics(pred, target, lpips_variables):
  """Per frame [...]: L1 on [0, 1], SSIM and LPIPS of [-1, 1] images [..., H, W, 3]."""
  return {"l1": 0.5 * jnp.mean(jnp.abs(pred - target), axis=(-3, -2, -1)),
          "ssim": structural.ssim(pred, target),
          "lpips": perceptual.lpips(pred, target, net=animation.LPIPS_NET,
                                    variables=lpips_variables)}


def mean_of(results, axis=None):
  """{name: mean} (or a list per index along `axis`) of concatenated per-example arrays."""
  out = {}
  for k in results[0]:
    v = np.concatenate([np.asarray(r[k]) for r in results])
    m = v.mean(axis=axis)
    out[k] = [round(float(x), 5) for x in m] if axis is not None else round(float(m), 5)
  return out



def _training_pair(system, batch):
  """(prepared batch, source frame, driving frame) of a training batch, in the networks' units."""
  batch = system.prepare(batch)
  return batch, animation.unit(batch["src_rgb"][:, 0]), keypoint_motion.driving_frame(batch)

class Diagnosis:
  """A workdir's system, data and checkpoints."""

  def __init__(self, workdir: str):
    config = config_utils.load_workdir_config(workdir)
    config.eval.act_recog = False
    self.ctx = context_lib.build_context(config, workdir, evals=())
    self.system = self.ctx.system
    self.checkpoints = checkpoint_lib.Checkpoints(
        os.path.join(workdir, checkpoint_lib.CHECKPOINT_DIR), read_only=True)
    e, t = config.eval, config.train
    self.eval_batches = batches(self.system.dataset("test", seed=0, shard_index=0,
                                                    shard_count=1), e.num_examples, e.batch_size)
    self.train_batches = batches(self.system.dataset("train", seed=0, shard_index=0,
                                                     shard_count=1), TRAIN_PAIRS, t.batch_size)

  def params(self, step: int):
    state = self.checkpoints.restore(step, self.ctx.restore_target())
    params = dict(self.ctx.eval_params(state))
    params.pop("i3d", None)
    return params

  # ------------------------------------------------------------------ parts
  def eval(self, params):
    system = self.system

    @jax.jit
    def run(p, b):
      b = system.prepare(b)
      pred = system.generate(p, b)["frames"]
      values = system.evaluate(p, b)
      return values, frame_metrics(pred, b["tgt_rgb"], p["lpips"])
    out = [run(params, b) for b in self.eval_batches]
    return {"evaluate": mean_of([o[0] for o in out]),
            "per_frame": mean_of([o[1] for o in out], axis=0)}

  def identity(self, params):
    system = self.system

    @jax.jit
    def run(p, b):
      source = animation.unit(b["src_rgb"][:, 0])
      kp = system.keypoints(p, source)
      out = system.animate(p, source, kp, kp)
      s = b["src_rgb"][:, 0]
      values = {f"output_{k}": v for k, v in frame_metrics(
          2.0 * out["prediction"] - 1.0, s, p["lpips"]).items()}
      values.update({f"deformed_{k}": v for k, v in frame_metrics(
          2.0 * out["deformed"] - 1.0, s, p["lpips"]).items()})
      h = out["deformation"].shape[1]
      grid = identity_grid(h, out["deformation"].shape[2])
      values["flow_px"] = jnp.mean(jnp.linalg.norm(out["deformation"] - grid, axis=-1),
                                   axis=(1, 2)) * (s.shape[1] - 1) / 2.0
      values["occlusion"] = jnp.mean(occlusion_of(out), axis=(1, 2, 3))
      return values
    return mean_of([run(params, b) for b in self.eval_batches])

  def train_recon(self, params):
    system = self.system

    @jax.jit
    def run(p, b):
      b, source, driving = _training_pair(system, b)
      pred = system.animate(p, source, system.keypoints(p, source),
                            system.keypoints(p, driving))["prediction"]
      target = b["tgt_rgb"][:, -1]
      values = {f"model_{k}": v for k, v in frame_metrics(2.0 * pred - 1.0, target,
                                                          p["lpips"]).items()}
      values.update({f"copy_{k}": v for k, v in frame_metrics(b["src_rgb"][:, 0], target,
                                                              p["lpips"]).items()})
      return values
    return mean_of([run(params, b) for b in self.train_batches])

  def distance(self, params):
    lp = params["lpips"]
    copy = jax.jit(lambda s, t: frame_metrics(jnp.broadcast_to(s, t.shape), t, lp))
    per_index = [copy(b["src_rgb"][:, :1], b["tgt_rgb"]) for b in self.eval_batches]
    pairs = [copy(b["src_rgb"][:, 0], b["tgt_rgb"][:, -1]) for b in self.train_batches]
    return {"eval_mean": mean_of(per_index), "eval_per_index": mean_of(per_index, axis=0),
            "train_pairs": mean_of(pairs)}

  def keypoints(self, params):
    system = self.system
    detect = jax.jit(lambda p, x: system.keypoints(p, animation.unit(x))["value"])

    def frames(batches_, names):
      kp, joints = [], []
      for b in batches_:
        for name in names:
          rgb, truth = b[f"{name}_rgb"], b[f"{name}_keypoints"]
          for i in range(rgb.shape[1]):
            kp.append(np.asarray(detect(params, rgb[:, i])))
            joints.append(truth[:, i])
      return np.concatenate(kp), np.concatenate(joints)
    kp_train, joints_train = frames(self.train_batches, ("src", "tgt"))
    kp_test, joints_test = frames(self.eval_batches, ("src", "tgt"))
    return keypoint_regression(kp_train, joints_train, kp_test, joints_test)

  def batchnorm(self, params):
    system = self.system
    evaluate = lambda p, b: system.evaluate(p, system.prepare(b))
    ev = jax.jit(evaluate)
    single = [ev(params, {k: v[i:i + 1] for k, v in b.items()})
              for b in self.eval_batches for i in range(b["src_rgb"].shape[0])]
    stats = system.batch_norm_moments(params, TRAIN_PAIRS)
    fixed_ev = jax.jit(population_norm.with_moments(stats, evaluate))
    fixed = [fixed_ev(params, b) for b in self.eval_batches]
    keys = ("l1", "ssim", "lpips")
    pick = lambda rs: {k: v for k, v in mean_of(rs).items() if k in keys}
    return {"batch_of_1": pick(single), "population": pick(fixed)}

  def regions(self, params):
    system = self.system

    @jax.jit
    def run(p, b):
      b = system.prepare(b)
      target = b["tgt_rgb"]
      copy = jnp.broadcast_to(b["src_rgb"][:, :1], target.shape)
      outputs = {"model": system.generate(p, b)["frames"], "copy": copy}
      return {f"{name}_{k}": v for name, pred in outputs.items()
              for k, v in runs.run_metrics(pred, target, b["tgt_mask"], masked_psnr=True,
                                           background=True).items()}
    out = mean_of([run(params, b) for b in self.eval_batches])
    out["person_share"] = round(float(np.mean([b["tgt_mask"].mean()
                                                for b in self.eval_batches])), 4)
    return out

  def flow(self, params):
    config = self.ctx.config
    data = config.data
    if data.get("dataset", ""):
      raise ValueError("the flow part needs the synthetic world's face maps; this workdir trains "
                       f"on {data.dataset}")
    deformations, identity_weight, occlusion, person = self._deformations(params)
    src = same_video._source(data, "test", config.eval.num_examples)
    length = deformations[0].shape[0]   # the evaluation's driving frames
    start, sources = same_video.eval_frames(data.num_frames, 1, length)
    frames = [int(sources[0])] + list(range(start, start + length))
    errors = {k: [] for k in ("model", "identity", "model_moved", "identity_moved")}
    for i, deformation in enumerate(deformations):
      faces = src.frames(src.take(i)[0], frames, ("face",))["face"]
      for t, grid in enumerate(deformation):
        exact, valid = face_correspondence(faces[0], faces[t + 1])
        h, w = valid.shape
        pixels = np.stack(np.meshgrid(np.arange(w), np.arange(h)), axis=-1).astype(np.float64)
        sampled = (np.asarray(grid, np.float64) + 1.0) / 2.0 * np.array([w - 1, h - 1])
        model = np.linalg.norm(sampled - exact, axis=-1)
        still = np.linalg.norm(pixels - exact, axis=-1)
        moved = valid & (still > 1.0)
        errors["model"].append(model[valid]), errors["identity"].append(still[valid])
        errors["model_moved"].append(model[moved]), errors["identity_moved"].append(still[moved])
    out = {f"epe_{k}_px": round(float(np.concatenate(v).mean()), 3) if sum(map(len, v)) else None
           for k, v in errors.items()}
    weight, on = np.stack(identity_weight), np.stack(person) > 0
    out["identity_motion_weight"] = round(float(weight.mean()), 4)
    out["identity_motion_weight_person"] = round(float(weight[on].mean()), 4)
    occlusion = np.stack(occlusion)
    out["occlusion_person"] = round(float(occlusion[on].mean()), 4)
    out["occlusion_background"] = round(float(occlusion[~on].mean()), 4)
    out["pixels"] = int(sum(map(len, errors["model"])))
    out["moved_pixels"] = int(sum(map(len, errors["model_moved"])))
    return out

  def _deformations(self, params):
    """([deformation [L, H, W, 2] ((x, y) in [-1, 1])], [its mask's weight of the background
    (identity) motion [L, H, W]], [the occlusion map (INTERnet: the confidence) [L, H, W]], [the
    true person masks [L, H, W]]) of every evaluation example, driven as `generate` drives it
    (relative keypoints)."""
    system = self.system

    @jax.jit
    def run(p, b):
      source, initial = animation.unit(b["src_rgb"][:, 0]), animation.unit(b["init_rgb"])
      kp_source, kp_initial = system.keypoints(p, source), system.keypoints(p, initial)

      def frame(driving):
        kp = animation.relative_keypoints(kp_source, system.keypoints(p, animation.unit(driving)),
                                          kp_initial)
        out = system.animate(p, source, kp_source, kp)
        size = source.shape[:3]   # a dense motion at a lower resolution, resized as the
        return (jax.image.resize(out["deformation"], size + (2,), "bilinear"),   # generator
                jax.image.resize(out["mask"][..., 0], size, "bilinear"),         # resizes it
                jax.image.resize(occlusion_of(out)[..., 0], size, "bilinear"))
      return jax.tree.map(lambda x: jnp.moveaxis(x, 0, 1),
                          jax.lax.map(frame, jnp.moveaxis(b["tgt_rgb"], 1, 0)))
    out = [jax.tree.map(np.asarray, run(params, b)) for b in self.eval_batches]
    return ([d for o in out for d in o[0]], [m for o in out for m in o[1]],
            [m for o in out for m in o[2]],
            [m for b in self.eval_batches for m in b["tgt_mask"][..., 0]])


def occlusion_of(out):
  """The generator's occlusion map `[N, h, w, 1]` (FOMM's "occlusion_map", INTERnet's
  "confidence")."""
  return out["occlusion_map"] if "occlusion_map" in out else out["confidence"]


def identity_grid(h: int, w: int):
  """The identity deformation [h, w, 2]: (x, y) in [-1, 1], align_corners=True."""
  x = jnp.linspace(-1.0, 1.0, w)
  y = jnp.linspace(-1.0, 1.0, h)
  return jnp.stack(jnp.meshgrid(x, y), axis=-1)


def face_correspondence(src_face, tgt_face):
  """The synthetic world's exact motion between two frames of one camera, from their face maps
  (int [H, W], -1 off the body): for every target pixel on a body-surface face the source frame
  shows, the source pixel (x, y) of the same surface point, taken as the source face's centroid
  plus the pixel's offset from the target face's centroid (a face spans a few pixels at 64 px,
  so this is exact for a face that moves rigidly in the image and within about a pixel
  otherwise). Returns (positions float64 [H, W, 2], valid bool [H, W])."""
  h, w = tgt_face.shape
  ys, xs = np.mgrid[0:h, 0:w]
  size = int(max(src_face.max(), tgt_face.max())) + 1

  def centroids(face):
    on = face >= 0
    count = np.bincount(face[on], minlength=size)
    sums = [np.bincount(face[on], weights=c[on], minlength=size) for c in (xs, ys)]
    return np.stack(sums, axis=-1) / np.maximum(count, 1)[:, None], count
  c_src, n_src = centroids(src_face)
  c_tgt, _ = centroids(tgt_face)
  face = np.where(tgt_face >= 0, tgt_face, 0)
  valid = (tgt_face >= 0) & (n_src[face] > 0)
  positions = c_src[face] + np.stack([xs, ys], axis=-1) - c_tgt[face]
  return np.where(valid[..., None], positions, 0.0), valid


def keypoint_regression(kp_train, joints_train, kp_test, joints_test):
  """Mean joint error (pixels, visible joints) of the least-squares linear map keypoints ->
  joints and of the mean pose, on the test frames."""
  def design(kp):
    return np.concatenate([kp.reshape(len(kp), -1), np.ones((len(kp), 1))], axis=1)
  y_train = joints_train[..., :2].reshape(len(joints_train), -1)
  weights, *_ = np.linalg.lstsq(design(kp_train), y_train, rcond=None)
  visible = joints_test[..., 2] > 0

  def error(pred):
    d = np.linalg.norm(pred.reshape(joints_test[..., :2].shape) - joints_test[..., :2], axis=-1)
    return round(float(d[visible].mean()), 3)
  train_error = np.linalg.norm((design(kp_train) @ weights).reshape(joints_train[..., :2].shape)
                               - joints_train[..., :2], axis=-1)[joints_train[..., 2] > 0]
  return {"linear_px": error(design(kp_test) @ weights),
          "mean_pose_px": error(np.broadcast_to(y_train.mean(0), (len(kp_test), y_train.shape[1]))),
          "linear_train_px": round(float(train_error.mean()), 3),
          "train_frames": len(kp_train), "test_frames": len(kp_test)}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--steps", default="", help="checkpoint steps (default: every one)")
  parser.add_argument("--parts", default=",".join(PARTS))
  args = parser.parse_args()
  diag = Diagnosis(args.workdir)
  steps = [int(s) for s in args.steps.split(",") if s] or diag.checkpoints.steps()
  parts = [p for p in args.parts.split(",") if p]
  for step in steps:
    params = diag.params(step)
    for part in parts:
      result = getattr(diag, part)(params)
      print(json.dumps({"step": step, "part": part, **result}), flush=True)


if __name__ == "__main__":
  main()
