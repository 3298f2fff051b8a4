"""A still image of a person as a source frame: `psrjax synthesize --source IMAGE`.

The image is centre-cropped to a square and resized to the config's resolution (`read_rgb`). A
system that also needs the person's keypoints and mask in that frame (Liquid Warping GAN, whose
body conditions come from surface maps predicted from them: `predicted_surface.image_maps`)
reads them with `read_person`: from files the user gives, in the original image's pixels, as
`psrjax prepare` reads a video's (`--source-keypoints`: an OpenPose JSON folder, a COCO .json or
a .npy/.npz of one frame, `keypoint_io.load_keypoints`; `--source-mask`: an image, > 0 = person,
or a .npy [H, W]), or else estimated by MediaPipe (the `pose` extra: keypoints, and its
segmentation > 0.5 as the mask), run on the square crop at the image's own resolution.
"""
from __future__ import annotations

import dataclasses
import os

import imageio.v3 as iio
import numpy as np

from psrjax.data.sources import base as sources


@dataclasses.dataclass(frozen=True)
class Crop:
  """The centred square of a height x width image: rows top..top+side, columns left..left+side."""
  top: int
  left: int
  side: int

  @classmethod
  def centred(cls, height: int, width: int) -> "Crop":
    side = min(height, width)
    return cls((height - side) // 2, (width - side) // 2, side)

  def image(self, image: np.ndarray) -> np.ndarray:
    return image[self.top:self.top + self.side, self.left:self.left + self.side]

  def keypoints(self, keypoints: np.ndarray, resolution: int) -> np.ndarray:
    """Keypoints [..., 18, 3] in the original image's pixels -> in the resized crop's (pixel
    centres at integers); points outside the crop become (0, 0, 0)."""
    from psrjax.data.preparation import keypoint_io  # pylint: disable=g-import-not-at-top
    kp = np.array(keypoints, np.float32)
    missing = kp[..., 2] <= 0
    kp[..., 0] -= self.left
    kp[..., 1] -= self.top
    kp = sources.resize_keypoints(kp, resolution / self.side)
    kp[missing] = 0.0
    return keypoint_io.drop_outside(kp, resolution, resolution)


@dataclasses.dataclass(frozen=True)
class Person:
  """A still image read as a source frame: rgb [H, W, 3] in [-1, 1], keypoints [18, 3] (COCO-18,
  pixels of this frame) and mask [H, W, 1] in {0, 1}, at one resolution."""
  rgb: np.ndarray
  keypoints: np.ndarray
  mask: np.ndarray


def _read(path: str, flag: str, what: str) -> np.ndarray:
  try:
    return np.asarray(iio.imread(path))
  except (OSError, ValueError) as e:
    raise ValueError(f"{flag} {path!r} is not a readable image file ({e}); give a PNG or JPEG "
                     f"of {what}") from None


def _rgb8(image: np.ndarray) -> np.ndarray:
  """An image as RGB uint8 [H, W, 3] (grey repeated, alpha dropped, 16-bit scaled)."""
  if image.dtype == np.uint16:
    image = (image >> 8).astype(np.uint8)
  elif image.dtype != np.uint8:
    image = np.clip(np.asarray(image, np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
  if image.ndim == 2:
    image = np.repeat(image[..., None], 3, axis=-1)
  return np.ascontiguousarray(image[..., :3])


def read_rgb(path: str, resolution: int) -> np.ndarray:
  """An image file as a [-1, 1] frame [resolution, resolution, 3]: its centred square, resized."""
  image = _rgb8(_read(path, "--source", "the person"))
  square = Crop.centred(*image.shape[:2]).image(image)
  return sources.resize_frames(sources.to_unit(square)[None], "rgb", resolution)[0]


def _mask_file(path: str, height: int, width: int) -> np.ndarray:
  """A person mask file (image or .npy/.npz [H, W]) as a bool [H, W] of the image's size."""
  if os.path.splitext(path)[1].lower() in (".npy", ".npz"):
    try:
      data = np.load(path)
      mask = data[data.files[0]] if isinstance(data, np.lib.npyio.NpzFile) else data
    except (OSError, EOFError, ValueError, IndexError) as e:
      raise ValueError(f"--source-mask {path!r} is not a readable numpy file ({e})") from None
  else:
    mask = _read(path, "--source-mask", "the person's mask")
  mask = np.asarray(mask)
  if mask.ndim == 3:
    mask = mask.max(axis=-1)
  if mask.shape != (height, width):
    raise ValueError(f"--source-mask {path!r} is {mask.shape[0]} x {mask.shape[1]} but the image "
                     f"is {height} x {width}; give the mask of this image")
  return mask > 0


def _estimate(image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
  """MediaPipe's (keypoints [18, 3], segmentation [H, W] or None) of one RGB uint8 image."""
  from psrjax.data.preparation import pose_estimator  # pylint: disable=g-import-not-at-top
  try:
    pose_estimator.check_installed()
  except ImportError:
    raise ValueError("--source IMAGE needs the person's keypoints and mask: give "
                     "--source-keypoints and --source-mask, or install the estimator with "
                     "pip install 'psrjax[pose]'") from None
  with pose_estimator.MediaPipePose(static_image_mode=True) as pose:
    return pose(image)


def read_person(path: str, resolution: int, *, keypoints: str = "", mask: str = "") -> Person:
  """The image file `path` as a source frame at `resolution` with the person's keypoints and
  mask (module docstring: from the files `keypoints` and `mask`, or estimated)."""
  image = _rgb8(_read(path, "--source", "the person"))
  h, w = image.shape[:2]
  crop = Crop.centred(h, w)
  estimated = (None, None)
  if not (keypoints and mask):
    estimated = _estimate(image)
  if keypoints:
    from psrjax.data.preparation import keypoint_io  # pylint: disable=g-import-not-at-top
    kp = keypoint_io.load_keypoints(keypoints, num_frames=1, height=h, width=w)[0]
  else:
    kp = estimated[0]
  if not (kp[:, 2] > 0).any():
    raise ValueError(f"--source {path!r}: no person's keypoints (none estimated or given); give "
                     "--source-keypoints or an image where the person is visible")
  if mask:
    person = _mask_file(mask, h, w)
  elif estimated[1] is not None:
    person = estimated[1] > 0.5
  else:
    raise ValueError(f"--source {path!r}: no person mask was estimated; give --source-mask")
  person = crop.image(person.astype(np.float32))[None, ..., None]
  rgb = sources.resize_frames(sources.to_unit(crop.image(image))[None], "rgb", resolution)[0]
  return Person(rgb=rgb,
                keypoints=crop.keypoints(kp, resolution),
                mask=sources.resize_frames(person, "mask", resolution)[0])
