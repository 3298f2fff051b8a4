"""Video files and image folders in and out, and the person-centred square crop.

Decoding and encoding go through imageio-ffmpeg, which psrjax already depends on: its bundled
ffmpeg (`imageio_ffmpeg.get_ffmpeg_exe()`) decodes H.264, H.265, VP9, MJPEG... in .mp4, .avi,
.mov, .mkv and .webm, and encodes H.264 (libx264) and VP9 (libvpx-vp9). PyAV also bundles FFmpeg
but would be one more dependency; decord fails on VP9; OpenCV's wheel cannot write H.264. Frames
stream through a pipe from ffmpeg, so a video is never held in memory unless `read_video` is asked
for all of it. Image folders (sorted .png/.jpg/.jpeg/.bmp/.webp files) are read with Pillow.

Conventions:
  frames   uint8 [T, H, W, 3] RGB. Grayscale and RGBA inputs are converted to RGB (alpha dropped).
  fps      a video's own frame rate; image folders have none and are given `folder_fps` (30).
  pixels   pixel centres lie at integer coordinates: pixel (row i, column j) covers
           x in [j - 0.5, j + 0.5), y in [i - 0.5, i + 0.5) (`pose_labels.check_keypoints`).
  box      (x0, y0, size) integers: the square crop of pixels x0..x0+size-1, y0..y0+size-1.
           Resizing it to R x R maps x to x' = (x + 0.5 - x0) * R / size - 0.5 (same for y).

The crop policy (`person_box`) is the one of the person-video papers for a static camera: one
fixed square per video around everything the person covers in any frame, then resized.
"""
from __future__ import annotations

import dataclasses
import math
import os
from fractions import Fraction
from typing import Iterable, Iterator

import imageio_ffmpeg
import numpy as np
from PIL import Image

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
FOLDER_FPS = 30.0
# The person box grows by `margin` x its keypoint height at the sides and the bottom (feet below
# the ankles) and by HEAD_GROWTH x that at the top: keypoints stop at the eyes and ears, the
# head's top is well above them (hair, hats).
HEAD_GROWTH = 1.5


class VideoError(ValueError):
  """A video, image folder or crop that cannot be used; the message names the file and the fix."""


@dataclasses.dataclass(frozen=True)
class VideoInfo:
  path: str
  num_frames: int
  fps: float
  height: int
  width: int


def _image_files(path: str) -> list[str]:
  names = sorted(n for n in os.listdir(path) if n.lower().endswith(IMAGE_EXTENSIONS))
  if not names:
    raise VideoError(f"{path} has no images ({'/'.join(IMAGE_EXTENSIONS)}); "
                     "point at a video or a folder of frames")
  return [os.path.join(path, n) for n in names]


def _check_exists(path) -> str:
  path = os.fspath(path)
  if not os.path.exists(path):
    raise VideoError(f"{path} does not exist; give the path of a video file or an image folder")
  return path


def _load_image(file: str) -> np.ndarray:
  try:
    with Image.open(file) as im:
      return np.asarray(im.convert("RGB"))
  except (OSError, ValueError) as e:
    raise VideoError(f"{file} is not a readable image ({e}); re-export or remove it") from None


def _image_size(file: str) -> tuple[int, int]:
  try:
    with Image.open(file) as im:
      return im.size
  except (OSError, ValueError) as e:
    raise VideoError(f"{file} is not a readable image ({e}); re-export or remove it") from None


def _folder_files(path: str) -> tuple[list[str], int, int]:
  """The folder's image files, checked to be one size: (files, height, width)."""
  files = _image_files(path)
  w, h = _image_size(files[0])
  for f in files[1:]:
    fw, fh = _image_size(f)
    if (fw, fh) != (w, h):
      raise VideoError(f"{path}: mixed resolution: {os.path.basename(files[0])} is {w}x{h} but "
                       f"{os.path.basename(f)} is {fw}x{fh}; resize them to one size")
  return files, h, w


def _ffmpeg_frames(path: str):
  """imageio-ffmpeg's reader: (meta, generator of raw RGB frames); every decoded frame is passed
  through (no frame-rate conversion, so the count is the stream's)."""
  gen = imageio_ffmpeg.read_frames(path, pix_fmt="rgb24",
                                   output_params=["-fps_mode", "passthrough"])
  try:
    meta = next(gen)
  except (OSError, RuntimeError, StopIteration) as e:
    gen.close()
    text = str(e)
    if "Input #0" in text and "Video:" not in text:
      raise VideoError(f"{path} has no video stream (zero video frames); give a file with "
                       "video frames") from None
    raise VideoError(f"{path} is not a readable video ({_first_error_line(e)}); "
                     "re-encode it, e.g. ffmpeg -i in -c:v libx264 out.mp4") from None
  if "size" not in meta or not meta.get("fps"):
    gen.close()
    raise VideoError(f"{path} has no video stream; give a file with video frames")
  return meta, gen


def _first_error_line(e: Exception) -> str:
  lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and "===" not in ln]
  informative = [ln for ln in lines[1:] if not ln.startswith(("ffmpeg version", "built with"))]
  return (informative[-1] if informative else lines[0] if lines else type(e).__name__)[:200]


def _count_frames(path: str) -> int:
  try:
    count, _ = imageio_ffmpeg.count_frames_and_secs(path)
  except RuntimeError as e:
    raise VideoError(f"{path} could not be decoded to the end ({_first_error_line(e)}); "
                     "re-encode it, e.g. ffmpeg -i in -c:v libx264 out.mp4") from None
  return int(count)


def probe(path, *, folder_fps: float = FOLDER_FPS) -> VideoInfo:
  """Frame count (exact: counted by decoding), fps and size of a video file or image folder."""
  path = _check_exists(path)
  if os.path.isdir(path):
    files, h, w = _folder_files(path)
    return VideoInfo(path, len(files), float(folder_fps), h, w)
  meta, gen = _ffmpeg_frames(path)
  gen.close()
  num_frames = _count_frames(path)
  if num_frames == 0:
    raise VideoError(f"{path} has zero video frames; give a video with frames")
  w, h = meta["size"]
  return VideoInfo(path, num_frames, float(meta["fps"]), int(h), int(w))


def _check_fps(path: str, fps: float | None) -> str:
  if fps is not None and not fps > 0:
    raise VideoError(f"{path}: fps must be positive, got {fps}; pass e.g. fps=30 or None")
  return path


def _resample(frames: Iterable[np.ndarray], src_fps: float, fps: float | None):
  """Frames at `fps`: output frame k is the source frame on screen at time k / fps (frame i
  shows from i / src_fps until the next), so T frames give ceil(T fps / src_fps)."""
  if fps is None or fps == src_fps:
    yield from frames
    return
  ratio = src_fps / fps
  emitted = 0
  for i, frame in enumerate(frames):
    upto = math.ceil((i + 1) / ratio - 1e-9)  # outputs k with floor(k * ratio) <= i
    for _ in range(upto - emitted):
      yield frame
    emitted = max(emitted, upto)


def _decode(path: str) -> tuple[Iterator[np.ndarray], float | None]:
  """(frames, the video's fps; None for an image folder)."""
  if os.path.isdir(path):
    files, _, _ = _folder_files(path)
    return (_load_image(f) for f in files), None
  meta, gen = _ffmpeg_frames(path)
  w, h = meta["size"]

  def frames():
    count = 0
    try:
      for raw in gen:
        count += 1
        yield np.frombuffer(raw, np.uint8).reshape(h, w, 3).copy()  # writeable
    except RuntimeError as e:
      raise VideoError(f"{path}: decoding failed at frame {count} ({_first_error_line(e)}); "
                       "re-encode it, e.g. ffmpeg -i in -c:v libx264 out.mp4") from None
    finally:
      gen.close()
    if count == 0:
      raise VideoError(f"{path} has zero video frames; give a video with frames")
  return frames(), float(meta["fps"])


def iter_frames(path, *, fps: float | None = None,
                folder_fps: float = FOLDER_FPS) -> Iterator[np.ndarray]:
  """Streams uint8 [H, W, 3] RGB frames; `fps` resamples to that rate (the frame on screen at
  each output time; None keeps every frame)."""
  path = _check_fps(_check_exists(path), fps)
  frames, src_fps = _decode(path)
  return _resample(frames, folder_fps if src_fps is None else src_fps, fps)


def read_video(path, *, max_frames: int | None = None, fps: float | None = None,
               folder_fps: float = FOLDER_FPS) -> tuple[np.ndarray, float]:
  """(uint8 [T, H, W, 3] frames, fps) of the first `max_frames` frames (None: all)."""
  path = _check_fps(_check_exists(path), fps)
  if max_frames is not None and max_frames < 1:
    raise VideoError(f"{path}: max_frames must be at least 1, got {max_frames}; or pass None")
  frames, src_fps = _decode(path)
  src_fps = folder_fps if src_fps is None else src_fps
  out = []
  for frame in _resample(frames, src_fps, fps):
    out.append(frame)
    if len(out) == max_frames:
      break
  frames.close()  # stops ffmpeg when max_frames ended the reading early
  return np.stack(out), float(src_fps if fps is None else fps)


def _even_pad(frame: np.ndarray) -> np.ndarray:
  pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
  if pad_h or pad_w:
    frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
  return frame


def _as_rgb(frame, path: str) -> np.ndarray:
  frame = np.asarray(frame)
  if frame.ndim == 2:
    frame = np.repeat(frame[..., None], 3, axis=-1)
  if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
    raise VideoError(f"{path}: frames must be uint8 [T, H, W, 3], got {frame.dtype} "
                     f"{frame.shape} per frame; convert them with np.uint8 / RGB first")
  return frame


def _encoder(path: str, ext: str, size: tuple[int, int], fps: float, crf: int | None):
  """imageio-ffmpeg writer generator for .mp4 (H.264, yuv420p) or .webm (VP9, yuv420p)."""
  if ext == ".mp4":
    params = ["-crf", str(18 if crf is None else crf), "-preset", "medium"]
    codec = "libx264"
  else:
    # VP9 constant quality: -b:v 0 with -crf; 0..63, 31 a common default.
    params = ["-crf", str(31 if crf is None else crf), "-b:v", "0", "-row-mt", "1", "-deadline",
              "good", "-cpu-used", "4"]
    codec = "libvpx-vp9"
  writer = imageio_ffmpeg.write_frames(
      path, size, fps=Fraction(fps).limit_denominator(1001), codec=codec, quality=None,
      macro_block_size=1, pix_fmt_out="yuv420p", output_params=params)
  writer.send(None)
  return writer


def write_video(path, frames, *, fps: float = 8, crf: int | None = None) -> None:
  """Writes uint8 [T, H, W, 3] frames (an array or any iterable of frames) by extension:
  .mp4 H.264 (yuv420p, lossy at `crf`, default 18), .webm VP9 (`crf` default 31) or .gif.
  Odd heights/widths are padded to even by repeating the last row/column."""
  path = os.fspath(path)
  ext = os.path.splitext(path)[1].lower()
  if ext not in (".mp4", ".webm", ".gif"):
    raise VideoError(f"{path}: cannot write {ext or 'no extension'}; use .mp4, .webm or .gif")
  if fps <= 0:
    raise VideoError(f"{path}: fps must be positive, got {fps}")
  if ext == ".gif":
    images = [Image.fromarray(_as_rgb(f, path)) for f in frames]
    if not images:
      raise VideoError(f"{path}: no frames to write; pass at least one frame")
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps),
                   loop=0)
    return
  writer = None
  try:
    for frame in frames:
      frame = _even_pad(_as_rgb(frame, path))
      if writer is None:
        shape = frame.shape
        writer = _encoder(path, ext, (shape[1], shape[0]), fps, crf)
      elif frame.shape != shape:
        raise VideoError(f"{path}: frame size changed from {shape[1]}x{shape[0]} to "
                         f"{frame.shape[1]}x{frame.shape[0]}; give frames of one size")
      writer.send(np.ascontiguousarray(frame))
  finally:
    if writer is not None:
      writer.close()
  if writer is None:
    raise VideoError(f"{path}: no frames to write; pass at least one frame")


def encode_mp4(path, frames, fps: float, *, crf: int = 23) -> None:
  """Lossy H.264 at constant quality `crf` (0 lossless .. 51 worst; 23 is x264's default),
  as real footage is encoded."""
  if not str(path).lower().endswith(".mp4"):
    raise VideoError(f"{path}: encode_mp4 writes .mp4 files; name the output *.mp4")
  write_video(path, frames, fps=fps, crf=crf)


def person_box(keypoints, height: int, width: int, *, margin: float = 0.15,
               path: str = "keypoints") -> tuple[int, int, int]:
  """One square (x0, y0, size) for the whole video: the bounding box of the visible keypoints
  ([T, 18, 3]) over all frames, grown by `margin` x its height at the sides and bottom and
  HEAD_GROWTH x that at the top, squared around its centre (side = the longer side, at most
  min(H, W)) and shifted inside the frame."""
  kp = np.asarray(keypoints, np.float64).reshape(-1, 3)
  pts = kp[kp[:, 2] > 0, :2]
  if len(pts) == 0:
    raise VideoError(f"no person found in {path}: no visible keypoint in any frame")
  # Pixel extents (edges), not centres: a single pixel is 1 wide.
  left, top = pts.min(0) - 0.5
  right, bottom = pts.max(0) + 0.5
  grow = margin * (bottom - top)
  left, right, bottom = left - grow, right + grow, bottom + grow
  top -= HEAD_GROWTH * grow
  size = min(int(math.ceil(max(right - left, bottom - top) - 1e-6)), height, width)
  size = max(size, 1)
  cx, cy = (left + right) / 2, (top + bottom) / 2
  x0 = int(np.clip(round(cx - size / 2 + 0.5), 0, width - size))
  y0 = int(np.clip(round(cy - size / 2 + 0.5), 0, height - size))
  return x0, y0, size


def _check_box(box, height: int, width: int) -> tuple[int, int, int]:
  x0, y0, size = (int(v) for v in box)
  if size < 1 or x0 < 0 or y0 < 0 or x0 + size > width or y0 + size > height:
    raise VideoError(f"crop box {tuple(box)} does not lie inside the {width}x{height} frame; "
                     "use person_box to choose one")
  return x0, y0, size


def _resize(image: np.ndarray, resolution: int, filt=None) -> np.ndarray:
  """Pillow resize of one [S, S(, C)] image to R x R: area (box filter) when shrinking,
  bicubic when enlarging; Pillow maps pixel centres as in the module docstring."""
  size = image.shape[0]
  if filt is None:
    filt = Image.Resampling.BOX if size >= resolution else Image.Resampling.BICUBIC
  return np.asarray(Image.fromarray(image).resize((resolution, resolution), filt))


def crop_resize(frames, box, resolution: int) -> np.ndarray:
  """uint8 [..., R, R, 3]: the square `box` of frames [..., H, W, 3], resized to R x R."""
  frames = np.asarray(frames, np.uint8)
  x0, y0, size = _check_box(box, frames.shape[-3], frames.shape[-2])
  crops = frames[..., y0:y0 + size, x0:x0 + size, :]
  flat = crops.reshape((-1,) + crops.shape[-3:])
  out = np.stack([_resize(np.ascontiguousarray(c), resolution) for c in flat])
  return out.reshape(frames.shape[:-3] + (resolution, resolution, 3))


def crop_masks(masks, box, resolution: int) -> np.ndarray:
  """uint8 {0,1} [..., R, R]: masks [..., H, W] cropped to `box` and resized: the covered
  fraction of each output pixel (area average), thresholded at 1/2."""
  masks = np.asarray(masks)
  x0, y0, size = _check_box(box, masks.shape[-2], masks.shape[-1])
  crops = (masks[..., y0:y0 + size, x0:x0 + size] > 0).astype(np.float32)
  flat = crops.reshape((-1, size, size))
  filt = Image.Resampling.BOX if size >= resolution else Image.Resampling.BILINEAR
  out = np.stack([_resize(c, resolution, filt) for c in flat]) >= 0.5
  return out.astype(np.uint8).reshape(masks.shape[:-2] + (resolution, resolution))


def crop_keypoints(keypoints, box, resolution: int) -> np.ndarray:
  """float32 [..., 18, 3]: pixel coordinates in the R x R crop (x' = (x + 0.5 - x0) R / size
  - 0.5); points falling outside the crop get visibility 0 (coordinates kept)."""
  kp = np.array(keypoints, np.float32)
  x0, y0, size = (int(v) for v in box)
  scale = resolution / size
  kp[..., 0] = (kp[..., 0] + 0.5 - x0) * scale - 0.5
  kp[..., 1] = (kp[..., 1] + 0.5 - y0) * scale - 0.5
  lim = resolution - 0.5
  outside = (kp[..., 0] < -0.5) | (kp[..., 0] > lim) | (kp[..., 1] < -0.5) | (kp[..., 1] > lim)
  kp[..., 2] = np.where(outside, 0.0, kp[..., 2])
  return kp
