"""psrjax.data.video: round trips through H.264, VP9, GIF and image folders; bad inputs raise
VideoError naming the file; the person-centred crop keeps keypoints on the pixels they mark."""

import numpy as np
import pytest
from PIL import Image

from psrjax.data import video
from psrjax.geometry.skeleton import NUM_KEYPOINTS
from psrjax.geometry.pose_labels import check_keypoints


def _pattern(t=10, h=48, w=64):
  """Smooth moving colour gradients: uint8 [T, H, W, 3]."""
  y, x = np.mgrid[0:h, 0:w].astype(np.float32)
  frames = [np.stack([96 + 80 * np.sin((x + 2 * i) / 11), 96 + 80 * np.cos((y - i) / 9),
                      128 + 60 * np.sin((x + y + 3 * i) / 17)], -1) for i in range(t)]
  return np.clip(np.stack(frames), 0, 255).astype(np.uint8)


def _psnr(a, b):
  mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
  return 10 * np.log10(255.0 ** 2 / max(mse, 1e-10))


@pytest.mark.parametrize("name, crf", [("clip.mp4", None), ("clip.mp4", 28), ("clip.webm", None)])
def test_encode_decode_round_trip(tmp_path, name, crf):
  frames = _pattern()
  path = tmp_path / name
  video.write_video(path, frames, fps=25, crf=crf)
  info = video.probe(path)
  assert (info.num_frames, info.fps, info.height, info.width) == (10, 25.0, 48, 64)
  back, fps = video.read_video(path)
  assert fps == 25.0 and back.shape == frames.shape and back.dtype == np.uint8
  assert _psnr(back, frames) > 30
  streamed = list(video.iter_frames(path))
  assert len(streamed) == 10 and np.array_equal(np.stack(streamed), back)


def test_encode_mp4_odd_size_is_padded_and_lossy(tmp_path):
  frames = _pattern(t=4, h=31, w=45)
  video.encode_mp4(tmp_path / "a.mp4", frames, 30, crf=35)
  info = video.probe(tmp_path / "a.mp4")
  assert (info.height, info.width, info.num_frames) == (32, 46, 4)
  back, _ = video.read_video(tmp_path / "a.mp4")
  assert 20 < _psnr(back[:, :31, :45], frames) < 60
  with pytest.raises(video.VideoError, match="b.webm"):
    video.encode_mp4(tmp_path / "b.webm", frames, 30)


def test_max_frames_and_fps_resampling(tmp_path):
  frames = _pattern(t=12)
  video.write_video(tmp_path / "a.mp4", frames, fps=24, crf=0)
  first, _ = video.read_video(tmp_path / "a.mp4", max_frames=3)
  assert first.shape[0] == 3
  half, fps = video.read_video(tmp_path / "a.mp4", fps=12)
  full, _ = video.read_video(tmp_path / "a.mp4")
  assert fps == 12 and half.shape[0] == 6 and np.array_equal(half, full[::2])
  double = list(video.iter_frames(tmp_path / "a.mp4", fps=48))
  assert len(double) == 24 and np.array_equal(double[2], full[1])


def test_gif_round_trip(tmp_path):
  frames = np.zeros((3, 16, 16, 3), np.uint8)
  for i in range(3):
    frames[i, :, :, i] = 255
  video.write_video(tmp_path / "a.gif", frames, fps=10)
  back, _ = video.read_video(tmp_path / "a.gif")
  assert back.shape == frames.shape and np.array_equal(back, frames)


def test_image_folder_gray_rgba_and_fps(tmp_path):
  frames = _pattern(t=3)
  Image.fromarray(frames[0]).save(tmp_path / "f000.png")
  Image.fromarray(frames[1][..., 0]).save(tmp_path / "f001.png")        # grayscale
  rgba = np.concatenate([frames[2], np.full((48, 64, 1), 255, np.uint8)], -1)
  Image.fromarray(rgba).save(tmp_path / "f002.png")
  (tmp_path / "notes.txt").write_text("x")
  info = video.probe(tmp_path, folder_fps=12)
  assert (info.num_frames, info.fps, info.height, info.width) == (3, 12.0, 48, 64)
  back, fps = video.read_video(tmp_path)
  assert fps == 30.0 and back.shape == (3, 48, 64, 3)
  assert np.array_equal(back[0], frames[0]) and np.array_equal(back[2], frames[2])
  assert np.array_equal(back[1], np.repeat(frames[1][..., :1], 3, -1))


def _raises(path, match, fn=video.probe):
  with pytest.raises(video.VideoError, match=match) as e:
    out = fn(path)
    list(out) if fn is video.iter_frames else None
  msg = str(e.value)
  assert str(path) in msg and "\n" not in msg
  return msg


def test_bad_inputs_name_the_file(tmp_path):
  _raises(tmp_path / "missing.mp4", "does not exist")
  junk = tmp_path / "junk.mp4"
  junk.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes())
  for fn in (video.probe, video.read_video, video.iter_frames):
    _raises(junk, "not a readable video", fn)
  empty = tmp_path / "empty"
  empty.mkdir()
  _raises(empty, "no images")
  mixed = tmp_path / "mixed"
  mixed.mkdir()
  Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(mixed / "a.png")
  Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(mixed / "b.png")
  msg = _raises(mixed, "mixed resolution")
  assert "a.png is 64x48 but b.png is 32x32; resize them to one size" in msg


def test_video_without_frames(tmp_path):
  """An audio-only .mkv (made by the bundled ffmpeg) has zero video frames."""
  import subprocess
  import imageio_ffmpeg
  path = tmp_path / "audio.mkv"
  subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i",
                  "anullsrc=r=8000:cl=mono", "-t", "0.2", str(path)], check=True)
  for fn in (video.probe, video.read_video):
    _raises(path, "no video stream", fn)


def test_write_errors(tmp_path):
  with pytest.raises(video.VideoError, match="a.avi"):
    video.write_video(tmp_path / "a.avi", _pattern(t=1), fps=8)
  with pytest.raises(video.VideoError, match="no frames"):
    video.write_video(tmp_path / "a.mp4", [], fps=8)
  with pytest.raises(video.VideoError, match="uint8"):
    video.write_video(tmp_path / "b.mp4", np.zeros((2, 8, 8, 3), np.float32), fps=8)


def test_inference_write_video_is_the_moved_one():
  from psrjax.train import inference
  assert inference.write_video is video.write_video


def _keypoints(rng, t, h, w, lo=0.2, hi=0.8):
  kp = np.zeros((t, NUM_KEYPOINTS, 3), np.float32)
  kp[..., 0] = rng.uniform(lo * w, hi * w, (t, NUM_KEYPOINTS))
  kp[..., 1] = rng.uniform(lo * h, hi * h, (t, NUM_KEYPOINTS))
  kp[..., 2] = rng.uniform(0, 1, (t, NUM_KEYPOINTS)) > 0.3
  return kp


@pytest.mark.parametrize("h, w, lo, hi", [(120, 160, 0.3, 0.6), (160, 90, 0.4, 0.7),
                                          (100, 100, 0.0, 1.0), (64, 200, 0.45, 0.55)])
def test_person_box_is_square_inside_and_holds_the_keypoints(h, w, lo, hi):
  rng = np.random.default_rng(h + w)
  kp = _keypoints(rng, 5, h, w, lo, hi)
  kp[2, 3] = (w * 0.95, h * 0.1, 0.0)                    # invisible: ignored
  x0, y0, size = video.person_box(kp, h, w)
  assert 0 <= x0 and 0 <= y0 and x0 + size <= w and y0 + size <= h
  vis = kp[kp[..., 2] > 0]
  span = max(np.ptp(vis[:, 0]), np.ptp(vis[:, 1])) + 1
  if span * 1.4 < min(h, w):                             # the grown box fits in the frame
    assert size >= span
    assert np.all(vis[:, 0] >= x0 - 0.5) and np.all(vis[:, 0] <= x0 + size - 0.5)
    assert np.all(vis[:, 1] >= y0 - 0.5) and np.all(vis[:, 1] <= y0 + size - 0.5)
  else:
    assert size == min(h, w)


def test_person_box_growth_and_a_person_taller_than_the_frame():
  kp = np.zeros((1, NUM_KEYPOINTS, 3), np.float32)
  kp[0, :2] = [(100, 49.5, 1), (100, 149.5, 1)]         # 101 px tall keypoint span
  x0, y0, size = video.person_box(kp, 400, 400, margin=0.1)
  top, bottom = 49 - 1.5 * 10.1, 150 + 10.1
  assert size == int(np.ceil(bottom - top)) and abs(y0 - 0.5 - top) <= 1
  kp[0, :2] = [(150, 0, 1), (160, 99, 1)]
  x0, y0, size = video.person_box(kp, 100, 300)
  assert (y0, size) == (0, 100) and abs(x0 + 50 - 155.5) <= 1


def test_person_box_without_a_visible_keypoint():
  with pytest.raises(video.VideoError, match="no person found in clip.mp4: no visible keypoint"):
    video.person_box(np.zeros((4, NUM_KEYPOINTS, 3)), 64, 64, path="clip.mp4")


def _blobs(points, h, w, sigma=2.5):
  """One frame per point: a Gaussian dot centred on it (pixel centres at integers)."""
  y, x = np.mgrid[0:h, 0:w]
  d2 = (x[None] - points[:, 0, None, None]) ** 2 + (y[None] - points[:, 1, None, None]) ** 2
  img = 255 * np.exp(-d2 / (2 * sigma ** 2))
  return np.repeat(np.round(img).astype(np.uint8)[..., None], 3, -1)


def _centroids(frames):
  img = frames[..., 0].astype(np.float64)
  img = np.where(img > 0.2 * img.max(axis=(1, 2), keepdims=True), img, 0)
  y, x = np.mgrid[0:frames.shape[1], 0:frames.shape[2]]
  total = img.sum((1, 2))
  return np.stack([(img * x).sum((1, 2)) / total, (img * y).sum((1, 2)) / total], -1)


@pytest.mark.parametrize("resolution", [48, 160])        # shrinking (area) and enlarging
def test_crop_resize_keeps_dots_on_their_keypoints(resolution):
  h, w = 120, 160
  rng = np.random.default_rng(3)
  kp = np.zeros((1, NUM_KEYPOINTS, 3), np.float32)
  kp[0, :, 0] = rng.uniform(50, 110, NUM_KEYPOINTS)
  kp[0, :, 1] = rng.uniform(30, 90, NUM_KEYPOINTS)
  kp[0, :, 2] = 1
  box = video.person_box(kp, h, w)
  frames = _blobs(kp[0, :6, :2], h, w, sigma=0.025 * box[2] + 1.5)
  crops = video.crop_resize(frames, box, resolution)
  assert crops.shape == (6, resolution, resolution, 3) and crops.dtype == np.uint8
  mapped = video.crop_keypoints(kp, box, resolution)
  check_keypoints(mapped, resolution, resolution)
  assert np.abs(_centroids(crops) - mapped[0, :6, :2]).max() < 0.25   # well within 1 px


def test_crop_keypoints_and_masks():
  box = (10, 20, 40)
  kp = np.zeros((2, NUM_KEYPOINTS, 3), np.float32)
  kp[:, 0] = (9.5, 19.5, 1)                               # the crop's top-left corner
  kp[:, 1] = (49.5, 59.5, 0.7)                            # its bottom-right corner
  kp[:, 2] = (60.0, 30.0, 1)                              # outside
  out = video.crop_keypoints(kp, box, 80)
  np.testing.assert_allclose(out[0, 0], (-0.5, -0.5, 1))
  np.testing.assert_allclose(out[0, 1], (79.5, 79.5, 0.7))
  assert out[0, 2, 2] == 0 and out[1, 2, 2] == 0
  masks = np.zeros((2, 100, 100), np.uint8)
  masks[:, 30:50, 20:40] = 1                              # crop pixels y 10..29, x 10..29
  m = video.crop_masks(masks, box, 20)
  assert m.shape == (2, 20, 20) and m.dtype == np.uint8
  expected = np.zeros((20, 20), np.uint8)
  expected[5:15, 5:15] = 1
  assert np.array_equal(m[0], expected) and np.array_equal(m[1], expected)
  with pytest.raises(video.VideoError, match="inside the 100x100 frame"):
    video.crop_masks(masks, (70, 0, 40), 20)
