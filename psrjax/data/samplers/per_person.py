"""Per-person examples over any video source: one person's video(s), held-out runs, driving.

The per-person systems (pix2pix, pix2pixHD, Everybody Dance Now, the retrieval baseline; next
CoCosNet video and D²G-Net) learn ONE person from a long video and are evaluated on held-out
frames of that person, and by driving: another person's poses, normalised onto the learned
person, drive it. The person's video comes from a video source (`psrjax.data.sources.base`):

  data.dataset = ""      the synthetic person (`scripted_person.ScriptedPerson`): one scripted
                         video whose training segment is the "train" video and whose held-out
                         segment (with actions training never shows) the "test" video;
  data.dataset = DIR     a folder `psrjax prepare` wrote: its "train" videos are learned, its
                         "test" videos held out. A folder with ONE video holds out the last 15 %
                         of its frames (`psrjax prepare`: the "<name>:tail" test video), so the
                         held-out runs are the end of the recording, after everything learned.

Frames are read at `data.resolution`, whatever the dataset's own (`sources.Resized`).

One example holds T = `frames_per_example` consecutive frames (EDN: previous + current) of one
video, in the batch contract:

  rgb [T, H, W, 3] float32 in [-1, 1]; keypoints [T, 18, 3] (x, y pixels; visibility);
  mask [T, H, W, 1] float32 {0, 1}; flow_fwd / flow_bwd [T, H, W, 2]; frame_index [T] int32
  (frame numbers over the source's videos in order: `VideoInfo.offset` + frame).

Flows that would leave a video (flow_fwd of its last frame, flow_bwd of its first) are zero, so
nothing of a held-out video's motion reaches training. Training examples are every T-frame
window of every training video; evaluation examples the held-out videos cut into runs of
`eval_run_frames` consecutive frames (a remainder shorter than a run is dropped), in order.
Runs are grouped "seen" / "novel" where the source can tell (the synthetic person: most frames
show an action the training segment never shows); a real recording's runs are all "seen".

Systems that read more (D²G-Net) ask for it per call: `extra` source modalities of the T frames
(e.g. "part", "uv", "face": [T, H, W(, C)] as the source gives them) and `context` frames
before the window, clamped at the video's start (the first frame repeated): their keypoints
"context_keypoints" [C, 18, 3] and, for each of `context_keys` (a subset of `extra`),
"context_<key>". A pose label of frame t that also reads frames t-1 and t-2 gets them so.

Driving (`driving`): "cross" is the synthetic driving person (`data.driving_identity` performing
`data.driving_script`); a path is another prepared dataset (all its videos, in order). Its
keypoints pass through a normalisation `normalize(keypoints [N, 18, 3]) -> keypoints [N, 18, 3]`
(default: identity), applied once to the WHOLE driving track so that a global normalisation
(Everybody Dance Now's ankle-based scale and translation, fitted over the videos) sees all of it.
"""
from __future__ import annotations

import functools
import os
from typing import Callable, Iterator

import grain
import ml_collections
import numpy as np

from psrjax.data import synthetic
from psrjax.data.sources import base as sources, predicted_surface, scripted_person
from psrjax.data.sources.scripted_person import DRIVING_SCRIPT, TEST_SCRIPT, TRAIN_SCRIPT

Normalize = Callable[[np.ndarray], np.ndarray]
SPLITS = ("train", "test")
# Names of the per-run groups `run_groups` assigns (the evaluator's `eval_groups`).
RUN_GROUPS = scripted_person.ScriptedPerson.group_names
# What every example holds besides frame_index: what a source must have.
MODALITIES = ("rgb", "keypoints", "mask", "flow_fwd", "flow_bwd")
_FRAME_KEYS = ("rgb", "mask", "flow_fwd", "flow_bwd")


def default_data_config() -> ml_collections.ConfigDict:
  """The `data` block of a per-person system's config (every field commented)."""
  return ml_collections.ConfigDict(dict(
      dataset="",                 # "" the synthetic person; or a `psrjax prepare` folder
      surface_from="",            # a D²G-Net label2d UV pre-training workdir: the part / UV
                                  # maps predicted by its G_uv (the prepared videos', or the
                                  # synthetic person's in place of its exact ones;
                                  # psrjax.data.sources.predicted_surface)
      surface_cache="~/.cache/psrjax/surface",   # where predicted maps are kept ("": memory)
      identity=7,                 # the learned person (synthetic identity index >= 0)
      seed=0,                     # room and the actions' speeds / phases / amplitudes
      resolution=64,              # H = W in pixels (a dataset's frames are resized to it)
      camera_yaw=0.0,             # degrees around the person: 0 front, +90 the person's left
      fps=synthetic.CLIP_FPS,     # frames per second of the scripts' motion
      train_script=TRAIN_SCRIPT,  # ((action, frames), ...) of the training segment
      test_script=TEST_SCRIPT,    # the held-out segment that follows it in the same video
      frames_per_example=2,       # T consecutive frames per example (EDN: previous + current)
      eval_run_frames=8,          # consecutive held-out frames per evaluation example (>= 2)
      driving_identity=23,        # the person whose poses drive the learned one ("cross")
      driving_seed=1,             # the driving video's room and action parameters
      driving_script=DRIVING_SCRIPT,  # ((action, frames), ...) of the driving video
      cache_dir="",               # "" renders every example's frames; a directory keeps them
      cache_chunk_frames=64,      # frames rendered and stored together in the cache
  ))


# ----------------------------------------------------------------------------- the person
def source(data):
  """The person's video source at `data.resolution` (module docstring)."""
  path = data.get("dataset", "")
  if not path:
    person = scripted_person.ScriptedPerson(data)
    if not data.get("surface_from", ""):
      return person
    return predicted_surface.with_predicted(person, int(data.resolution), data.surface_from,
                                            data.get("surface_cache"))
  return _prepared(os.path.abspath(os.path.expanduser(path)), int(data.resolution),
                   data.get("surface_from", ""), data.get("surface_cache"))


@functools.lru_cache(maxsize=8)
def _prepared(path: str, resolution: int, surface_from: str = "", surface_cache=None):
  return predicted_surface.open_prepared(path, resolution, surface_from=surface_from,
                                         surface_cache=surface_cache)


def _longest(videos) -> int:
  return max((v.num_frames for v in videos), default=0)


def check_data(data, needs=MODALITIES, *, what: str = "a per-person system") -> None:
  """One-line errors for a `data` block that cannot yield examples: a source without a needed
  modality, no training or no held-out video, runs longer than every video."""
  src = source(data)
  sources.require(src, needs, what=what)
  if not data.get("dataset", ""):
    scripted_person.check_scripts(data)
  train, test = src.videos("train"), src.videos("test")
  where = sources.describe(src)
  if not train:
    raise ValueError(f"{where} has no training video; prepare one with `psrjax prepare`")
  if not test:
    raise ValueError(f"{where} has no held-out (test) video; prepare it again with "
                     "--test-videos NAME (a folder with one video holds out its tail by itself)")
  if not 1 <= data.frames_per_example <= _longest(train):
    raise ValueError(f"data.frames_per_example must lie in 1..{_longest(train)} (the training "
                     f"frames); got {data.frames_per_example}")
  if not 2 <= data.eval_run_frames <= _longest(test):
    raise ValueError(f"data.eval_run_frames must lie in 2..{_longest(test)} (the held-out frames; "
                     f"E_temp needs 2); got {data.eval_run_frames}")


def train_keypoints(data) -> np.ndarray:
  """[N_train, 18, 3] keypoints of the training videos, in order (e.g. to fit a pose
  normalisation, or to index for retrieval)."""
  src = source(data)
  return np.concatenate([src.keypoints(v) for v in src.videos("train")])


def novel_frames(data) -> np.ndarray:
  """bool [frames of all the source's videos]: the frames the source groups as "novel" (the
  synthetic person: actions training never shows; none in a real recording)."""
  src = source(data)
  flags = []
  for video in src.all_videos():
    if video.groups is None or "novel" not in src.group_names:
      flags.append(np.zeros(video.num_frames, bool))
    else:
      flags.append(np.asarray(video.groups) == src.group_names.index("novel"))
  return np.concatenate(flags)


def run_groups(data, frame_index) -> np.ndarray:
  """int32 [...] for runs frame_index [..., T]: 1 ("novel") when most of the run's frames show an
  action the training segment never shows, else 0 ("seen"); index into RUN_GROUPS."""
  novel = novel_frames(data)[np.asarray(frame_index)]
  return (novel.mean(axis=-1) > 0.5).astype(np.int32)


def background(data) -> np.ndarray:
  """float32 [H, W, 3] in [-1, 1]: the static background behind the person (the synthetic room,
  or the first training video's estimated plate)."""
  src = source(data)
  if not data.get("dataset", ""):
    return scripted_person.background(data)
  return src.frames(src.videos("train")[0], [0], ("background",))["background"][0]


def training_appearance(data, indices) -> dict[str, np.ndarray]:
  """"rgb" [N, H, W, 3] in [-1, 1] and "mask" [N, H, W, 1] of training frames `indices` (positions
  in `train_keypoints`' order), e.g. retrieved ones."""
  indices = np.asarray(indices, np.int64).reshape(-1)
  if not data.get("dataset", ""):
    return scripted_person.appearance(data, indices)   # the training segment starts at 0
  src = source(data)
  videos = src.videos("train")
  starts = np.cumsum([0] + [v.num_frames for v in videos])
  got = []
  for i in indices:
    k = int(np.searchsorted(starts, i, side="right") - 1)
    got.append(src.frames(videos[k], [int(i - starts[k])], ("rgb", "mask")))
  if not got:
    r = data.resolution
    return {"rgb": np.zeros((0, r, r, 3), np.float32), "mask": np.zeros((0, r, r, 1), np.float32)}
  return {k: np.concatenate([g[k] for g in got]) for k in ("rgb", "mask")}


# ----------------------------------------------------------------------------- examples
def _check_reads(extra, context: int, context_keys) -> tuple[tuple[str, ...], int, tuple[str, ...]]:
  extra, context_keys = tuple(extra), tuple(context_keys)
  if context < 0 or set(context_keys) - set(extra):
    raise ValueError(f"context frames must be >= 0 and context keys {context_keys} a subset of "
                     f"the extra keys {extra}")
  return extra, int(context), context_keys


def _context(start: int, context: int) -> np.ndarray:
  """Frame numbers of the `context` frames before `start`, clamped at the video's start."""
  return np.maximum(np.arange(start - context, start), 0)


def example(src, video, start: int, length: int, keypoints: np.ndarray, *, extra=(),
            context: int = 0, context_keys=()) -> dict[str, np.ndarray]:
  """Frames [start, start + length) of `video` (keypoints: the video's [N, 18, 3]) as one
  example (module docstring), with the `extra` modalities and `context` frames asked for."""
  extra, context, context_keys = _check_reads(extra, context, context_keys)
  if not (length >= 1 and 0 <= start and start + length <= video.num_frames):
    raise ValueError(f"frames [{start}, {start + length}) must be non-empty and lie within "
                     f"{video.name}'s {video.num_frames} frames")
  lo = int(_context(start, context).min()) if context else start
  f = src.frames(video, np.arange(lo, start + length), _FRAME_KEYS + extra)
  window = {k: v[start - lo:] for k, v in f.items()}
  flow_fwd = np.array(window["flow_fwd"], np.float32)
  flow_bwd = np.array(window["flow_bwd"], np.float32)
  if start + length == video.num_frames:
    flow_fwd[-1] = 0.0
  if start == 0:
    flow_bwd[0] = 0.0
  first = video.offset + start
  out = {"rgb": window["rgb"], "keypoints": np.array(keypoints[start:start + length], np.float32),
         "mask": window["mask"], "flow_fwd": flow_fwd, "flow_bwd": flow_bwd,
         "frame_index": np.arange(first, first + length, dtype=np.int32)}
  out.update({k: window[k] for k in extra})
  if context:
    before = _context(start, context)
    out["context_keypoints"] = np.array(keypoints[before], np.float32)
    out.update({f"context_{k}": f[k][before - lo] for k in context_keys})
  return out


# Shapes (after H, W) and dtypes of the extra modalities a per-person example can carry.
_EXTRA_SPECS = {"face": ((), np.int32), "part": ((), np.int32), "uv": ((2,), np.float32)}


def example_spec(data, split: str = "train", *, extra=(), context: int = 0,
                 context_keys=()) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
  """Per-example shapes and dtypes: T = frames_per_example ("train") or eval_run_frames."""
  if split not in SPLITS:
    raise ValueError(f"unknown per-person split {split!r}; allowed: {', '.join(SPLITS)}")
  extra, context, context_keys = _check_reads(extra, context, context_keys)
  t = data.frames_per_example if split == "train" else data.eval_run_frames
  h = data.resolution
  spec = {"rgb": ((t, h, h, 3), np.float32), "keypoints": ((t, 18, 3), np.float32),
          "mask": ((t, h, h, 1), np.float32), "flow_fwd": ((t, h, h, 2), np.float32),
          "flow_bwd": ((t, h, h, 2), np.float32), "frame_index": ((t,), np.int32)}
  for key in extra:
    tail, dtype = _EXTRA_SPECS[key]
    spec[key] = ((t, h, h) + tail, dtype)
  if context:
    spec["context_keypoints"] = ((context, 18, 3), np.float32)
    for key in context_keys:
      tail, dtype = _EXTRA_SPECS[key]
      spec[f"context_{key}"] = ((context, h, h) + tail, dtype)
  return spec


def windows(videos, length: int, step: int = 1) -> list[tuple]:
  """(video, start) of every `length`-frame window of `videos` (starts `step` apart), in order."""
  return [(v, s) for v in videos for s in range(0, v.num_frames - length + 1, step)]


def _examples(src, items, length: int, **reads) -> Callable[[int], dict]:
  """index -> the example of items[index]; keypoints read once per video, up front."""
  tracks = {v.name: src.keypoints(v) for v in dict.fromkeys(v for v, _ in items)}
  return lambda i: example(src, items[i][0], items[i][1], length, tracks[items[i][0].name],
                           **reads)


def eval_runs(data) -> list[tuple]:
  """(video, start) of the evaluation runs: the held-out videos cut into `eval_run_frames`."""
  length = data.eval_run_frames
  return windows(source(data).videos("test"), length, length)


def eval_starts(data) -> np.ndarray:
  """First frames (in the source's frame numbering) of the evaluation runs."""
  return np.asarray([v.offset + s for v, s in eval_runs(data)], np.int64)


def train_dataset(data, *, seed: int, shard_index: int, shard_count: int,
                  **reads) -> grain.MapDataset:
  """This shard's T-frame windows of the training videos (every start frame), shuffled with
  `seed` (the trainer's own per-epoch shuffle on top keeps it a permutation); shards take every
  shard_count-th window. `reads`: `example`'s extra, context and context_keys."""
  check_data(data)
  src, t = source(data), data.frames_per_example
  items = windows(src.videos("train"), t)
  make = _examples(src, items, t, **reads)
  return grain.MapDataset.range(len(items))[shard_index::shard_count].shuffle(seed=seed).map(
      lambda i: make(int(i)))


def eval_dataset(data, *, shard_index: int, shard_count: int,
                 num_runs: int | None = None, **reads) -> grain.MapDataset:
  """This shard's runs of the held-out videos (the first `num_runs`, None: all), in order.
  `reads`: `example`'s extra, context and context_keys."""
  check_data(data)
  src, items = source(data), eval_runs(data)[:num_runs]
  make = _examples(src, items, data.eval_run_frames, **reads)
  return grain.MapDataset.range(len(items))[shard_index::shard_count].map(lambda i: make(int(i)))


# ----------------------------------------------------------------------------- exemplars
# Exemplar-based systems (CoCosNet video) read one more frame of the learned person per example:
# "exemplar_rgb" [H, W, 3] and its "exemplar_keypoints" [18, 3].
EXEMPLAR_KEYS = ("exemplar_rgb", "exemplar_keypoints")


def exemplar(data, index: int, keypoints: np.ndarray | None = None) -> dict[str, np.ndarray]:
  """Training frame `index` (a position in `train_keypoints`' order) as an exemplar
  (`keypoints`: `train_keypoints(data)`, when the caller holds them)."""
  kp = train_keypoints(data) if keypoints is None else keypoints
  if not 0 <= index < len(kp):
    raise ValueError(f"exemplar frame {index} is not a training frame (0..{len(kp) - 1})")
  return {"exemplar_rgb": training_appearance(data, [index])["rgb"][0],
          "exemplar_keypoints": np.array(kp[index], np.float32)}


def exemplar_position(videos, video, start: int, length: int, gap: int,
                      rng: np.random.Generator) -> int:
  """A training frame (position over `videos` in order) for the window [start, start + length)
  of `video`: uniformly one of the same video's frames at least `gap` frames from the window,
  or, when the video has none, any other training frame outside the window."""
  offsets = np.cumsum([0] + [v.num_frames for v in videos])
  k = next(i for i, v in enumerate(videos) if v.name == video.name)
  frames = np.arange(video.num_frames)
  far = frames[(frames < start - gap) | (frames >= start + length + gap)]
  if len(far):
    return int(offsets[k] + rng.choice(far))
  everywhere = np.arange(offsets[-1])
  outside = everywhere[(everywhere < offsets[k] + start)
                       | (everywhere >= offsets[k] + start + length)]
  if not len(outside):
    raise ValueError("an exemplar needs a training frame outside the example's window; the "
                     "training videos hold only the window itself")
  return int(rng.choice(outside))


def exemplar_train_dataset(data, *, seed: int, shard_index: int, shard_count: int,
                           draws: int = 4) -> grain.MapDataset:
  """`train_dataset`'s windows, each `draws` times with its own exemplar (`exemplar_position`
  with `data.exemplar_gap`, drawn from (seed, index)), so an epoch pairs every window with
  `draws` different frames of the person; shuffled with `seed`, sharded like `train_dataset`."""
  check_data(data)
  src, t = source(data), data.frames_per_example
  videos = src.videos("train")
  items = windows(videos, t)
  make, keypoints = _examples(src, items, t), train_keypoints(data)

  def build(i: int) -> dict:
    video, start = items[i % len(items)]
    rng = np.random.default_rng([seed, i])
    position = exemplar_position(videos, video, start, t, data.exemplar_gap, rng)
    return {**make(i % len(items)), **exemplar(data, position, keypoints)}

  ds = grain.MapDataset.range(len(items) * draws)[shard_index::shard_count]
  return ds.shuffle(seed=seed).map(lambda i: build(int(i)))


# ----------------------------------------------------------------------------- driving
def driving_source(data, driving: str = "cross"):
  """The driving video(s): "cross" the synthetic driving person, else a prepared dataset's path
  (at the person's resolution: a one-line error when the two datasets differ)."""
  if driving == "cross":
    return scripted_person.DrivingPerson(data)
  if not os.path.exists(os.path.expanduser(driving)):
    raise ValueError(f"--driving {driving!r} is neither 'test', 'cross' nor a prepared dataset; "
                     "prepare the driving video with `psrjax prepare --videos DIR --out DATASET`")
  drive = sources.PreparedSource(driving)
  if data.get("dataset", ""):
    person = sources.PreparedSource(data.dataset).resolution
    if drive.resolution != person:
      raise ValueError(f"driving dataset {driving} has {drive.resolution} px frames but the "
                       f"person's dataset {data.dataset} has {person}; prepare the driving video "
                       f"with --resolution {person}")
  if data.get("surface_from", ""):   # its maps predicted as the person's are
    return predicted_surface.open_prepared(driving, data.resolution,
                                           surface_from=data.surface_from,
                                           surface_cache=data.get("surface_cache"))
  return sources.at_resolution(drive, data.resolution)


def driving_tracks(src, normalize: Normalize | None = None) -> dict[str, np.ndarray]:
  """{video name: float32 [N, 18, 3]} of every driving video, through `normalize` applied once
  to all of them together."""
  videos = src.all_videos()
  raw = [np.array(src.keypoints(v), np.float32) for v in videos]
  if normalize is None:
    return {v.name: kp for v, kp in zip(videos, raw)}
  joined = np.concatenate(raw)
  out = np.asarray(normalize(joined), np.float32)
  if out.shape != joined.shape:
    raise ValueError(f"normalize must map keypoints {joined.shape} to the same shape; got "
                     f"{out.shape}")
  return dict(zip((v.name for v in videos), np.split(out, np.cumsum([len(k) for k in raw])[:-1])))


def driving_keypoints(data, normalize: Normalize | None = None, *,
                      driving: str = "cross") -> np.ndarray:
  """float32 [N, 18, 3]: the driving videos' keypoints, one after the other, through
  `normalize` (None: unchanged), applied once to the whole track."""
  return np.concatenate(list(driving_tracks(driving_source(data, driving), normalize).values()))


def _driving_run(src, tracks, video, start: int, length: int, with_rgb: bool,
                 **reads) -> dict[str, np.ndarray]:
  """Driving frames [start, start + length) of `video` (`_driving_frames`)."""
  if not (length >= 1 and 0 <= start and start + length <= video.num_frames):
    raise ValueError(f"driving frames [{start}, {start + length}) must be non-empty and lie "
                     f"within the driving video's {video.num_frames} frames")
  return _driving_frames(src, tracks, video, np.arange(start, start + length), with_rgb, **reads)


# The body-surface maps a driving run carries (moved with its keypoints' normalisation), each
# with the value of pixels the move brings in from outside the frame (background).
MOVED_MAPS = {"face": -1, "part": 0, "uv": 0.0}


def _driving_frames(src, tracks, video, frames: np.ndarray, with_rgb: bool, *, extra=(),
                    context: int = 0, context_keys=()) -> dict[str, np.ndarray]:
  """A driving run of the frame numbers `frames` [T]; `extra` may hold MOVED_MAPS, the driving
  person's face / part / UV maps, moved with the normalisation of its keypoints
  (`follow_keypoints`), and `context` frames before the first."""
  extra, context, context_keys = _check_reads(extra, context, context_keys)
  if set(extra) - set(MOVED_MAPS):
    raise ValueError(f"driving runs carry {', '.join(MOVED_MAPS)} maps only beside the "
                     f"keypoints; asked for {extra}")
  track = tracks[video.name]
  example = {"keypoints": track[frames],
             "frame_index": (video.offset + frames).astype(np.int32)}
  if with_rgb:
    example["driving_rgb"] = src.frames(video, frames, ("rgb",))["rgb"]
  before = _context(int(frames[0]), context)
  if context:
    example["context_keypoints"] = track[before]
  if extra:
    both = np.concatenate([before, frames])
    raw = src.keypoints(video)[both]
    read = src.frames(video, both, extra)
    for key in extra:
      moved = follow_keypoints(read[key], raw, track[both], fill=MOVED_MAPS[key])
      example[key] = moved[context:]
      if key in context_keys:
        example[f"context_{key}"] = moved[:context]
  return example


def _driving_reads(src, reads: dict) -> dict:
  """`reads` (a system's extra / context / context_keys) cut to the MOVED_MAPS `src` holds."""
  keep = lambda keys: tuple(k for k in keys if k in MOVED_MAPS and k in src.modalities)
  return {**reads, "extra": keep(reads.get("extra", ())),
          "context_keys": keep(reads.get("context_keys", ()))}


def driving_windows(data, *, driving: str, video: int = 0, start: int = 0,
                    stop: int | None = None, length: int, normalize: Normalize | None = None,
                    **reads) -> Iterator[dict[str, np.ndarray]]:
  """Frames [start, stop) of driving video number `video` ("cross" or a prepared dataset's
  path; `stop` None: to its end) as consecutive windows of `length` frames, the driving runs
  of `driving_example` (keypoints through `normalize`, applied once). The last window is padded
  to `length` by repeating the video's frame `stop - 1`; every window carries "keep_frames", how
  many of its first frames are the video's. `reads`: face maps and context only."""
  check_data(data)
  src = driving_source(data, driving)
  videos = src.all_videos()
  if not 0 <= video < len(videos):
    raise ValueError(f"--seed {video} names no driving video: {driving} holds {len(videos)} "
                     f"(seeds 0..{len(videos) - 1})")
  chosen = videos[video]
  stop = chosen.num_frames if stop is None else min(int(stop), chosen.num_frames)
  if not 0 <= start < stop:
    raise ValueError(f"--frames {start}:{stop} selects no frame of the driving video's "
                     f"{chosen.num_frames} frames; give A:B with 0 <= A < B")
  if length < 1:
    raise ValueError(f"windows of {length} frames: the length must be >= 1")
  reads = _driving_reads(src, reads)
  tracks = driving_tracks(src, normalize)
  for first in range(start, stop, length):
    frames = np.minimum(np.arange(first, first + length), stop - 1)
    window = _driving_frames(src, tracks, chosen, frames, True, **reads)
    yield {**window, "keep_frames": np.int32(min(length, stop - first))}


def follow_keypoints(maps: np.ndarray, raw: np.ndarray, moved: np.ndarray,
                     fill=-1) -> np.ndarray:
  """Maps [N, H, W, ...] (e.g. face ids, -1 background; part maps; UV maps) moved as the
  keypoints moved from `raw` to `moved` [N, 18, 3] by a pose normalisation: per frame the
  similarity (one scale, a translation) that best maps the visible raw keypoints onto the moved
  ones (least squares; exact for Everybody Dance Now's normalisation), applied by
  nearest-neighbour resampling; pixels from outside the frame get `fill`."""
  maps = np.asarray(maps)
  n, h, w = maps.shape[:3]
  ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
  out = np.full_like(maps, fill)
  for i in range(n):
    seen = (raw[i, :, 2] > 0) & (moved[i, :, 2] > 0)
    p, q = raw[i, seen, :2].astype(np.float64), moved[i, seen, :2].astype(np.float64)
    if len(p) < 2:
      out[i] = maps[i]
      continue
    pc, qc = p.mean(0), q.mean(0)
    spread = np.sum(np.square(p - pc))
    scale = np.sum((p - pc) * (q - qc)) / spread if spread > 1e-9 else 1.0
    # inverse map: output pixel q -> source pixel p = pc + (q - qc) / scale
    sx = np.rint(pc[0] + (xs - qc[0]) / scale).astype(np.int64)
    sy = np.rint(pc[1] + (ys - qc[1]) / scale).astype(np.int64)
    inside = (sx >= 0) & (sx < w) & (sy >= 0) & (sy < h)
    inside = inside.reshape(inside.shape + (1,) * (maps.ndim - 3))
    out[i] = np.where(inside, maps[i][np.clip(sy, 0, h - 1), np.clip(sx, 0, w - 1)], fill)
  return out


def driving_example(data, start: int, length: int, *, normalize: Normalize | None = None,
                    with_rgb: bool = True, driving: str = "cross",
                    **reads) -> dict[str, np.ndarray]:
  """Frames [start, start + length) of the (first) driving video: "keypoints" [T, 18, 3]
  (through `normalize`), "frame_index" [T] and, with_rgb, the driving person's own frames
  "driving_rgb" [T, H, W, 3] in [-1, 1] (to show beside the result). `reads`: `_driving_run`'s
  extra, context and context_keys."""
  src = driving_source(data, driving)
  tracks = driving_tracks(src, normalize)
  return _driving_run(src, tracks, src.all_videos()[0], int(start), int(length), with_rgb,
                      **reads)


def driving_dataset(data, *, shard_index: int, shard_count: int,
                    normalize: Normalize | None = None, with_rgb: bool = True,
                    driving: str = "cross", **reads) -> grain.MapDataset:
  """This shard's runs of `eval_run_frames` consecutive driving frames (`driving_example`), video
  after video; the normalisation runs once, here."""
  check_data(data)
  src = driving_source(data, driving)
  tracks = driving_tracks(src, normalize)
  length = data.eval_run_frames
  items = windows(src.all_videos(), length, length)
  ds = grain.MapDataset.range(len(items))[shard_index::shard_count]
  return ds.map(lambda i: _driving_run(src, tracks, *items[int(i)], length, with_rgb, **reads))


def synthesis_example(data, *, driving: str = "test", run: int = 0,
                      num_frames: int | None = None, normalize: Normalize | None = None,
                      **reads) -> dict[str, np.ndarray]:
  """`num_frames` (None: eval_run_frames) consecutive frames for `psrjax synthesize`, from the
  start of run `run` (runs of eval_run_frames, video after video): of the held-out videos
  (driving="test": keypoints and ground truth), or of the driving videos ("cross" or a prepared
  dataset's path: `driving_example`'s keys, keypoints through `normalize`). `reads`: the
  examples' extra, context and context_keys (driving runs: the MOVED_MAPS the driving source
  holds)."""
  check_data(data)
  length = data.eval_run_frames if num_frames is None else int(num_frames)
  if driving == "test":
    src, items = source(data), eval_runs(data)
  else:
    src = driving_source(data, driving)
    items = windows(src.all_videos(), data.eval_run_frames, data.eval_run_frames)
  if not 0 <= run < len(items):
    raise ValueError(f"--seed {run} names no run: the {driving} video(s) hold {len(items)} runs "
                     f"of {data.eval_run_frames} frames (seeds 0..{len(items) - 1})")
  video, start = items[run]
  if driving == "test":
    return example(src, video, start, length, src.keypoints(video), **reads)
  reads = _driving_reads(src, reads)
  return _driving_run(src, driving_tracks(src, normalize), video, start, length, True, **reads)
