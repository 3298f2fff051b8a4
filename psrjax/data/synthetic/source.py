"""Train / validation / test splits of the synthetic world and its grain data source.

Splits hold out people: identity `i` (= seed % NUM_IDENTITIES) belongs to the test split when
`i % 10 == 9`, to validation when `i % 10 == 8` and to train otherwise. Because NUM_IDENTITIES is
a multiple of 10, the split of a seed is `seed % 10` too, and a split's i-th clip is the i-th seed
with that residue: the splits' seed sets (and identities) are disjoint.
"""
import numpy as np

from psrjax.data.synthetic.clip import NUM_IDENTITIES, check_positive_int, check_travel, render_clip

SPLITS = ("train", "validation", "test")
_RESIDUES = {"train": tuple(range(8)), "validation": (8,), "test": (9,)}
# Sizes of the splits when num_clips is None (the seed space is unbounded; these are the
# conventional epoch sizes).
DEFAULT_NUM_CLIPS = {"train": 80_000, "validation": 1_000, "test": 1_000}


def check_split(split: str) -> str:
  if split not in SPLITS:
    raise ValueError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")
  return split


def split_seed(split: str, index: int) -> int:
  """Seed of the index-th clip of a split."""
  residues = _RESIDUES[check_split(split)]
  index = check_positive_int("index", index, 0)
  return (index // len(residues)) * 10 + residues[index % len(residues)]


def seed_split(seed: int) -> str:
  """The split a seed belongs to."""
  r = int(seed) % 10
  return next(s for s in SPLITS if r in _RESIDUES[s])


def split_identities(split: str) -> np.ndarray:
  """Identity indices of a split."""
  ids = np.arange(NUM_IDENTITIES)
  return ids[np.isin(ids % 10, _RESIDUES[check_split(split)])]


class SyntheticSource:
  """grain RandomAccessDataSource: the i-th clip of a split, rendered on demand."""

  def __init__(self, split: str, *, num_views: int = 3, num_frames: int = 16, resolution: int = 128,
               num_clips: int | None = None, rooms: int = 0, travel: float = 0.0):
    self.split = check_split(split)
    self.num_views = check_positive_int("num_views", num_views)
    self.num_frames = check_positive_int("num_frames", num_frames)
    self.resolution = check_positive_int("resolution", resolution)
    self.rooms = check_positive_int("rooms", rooms, 0)  # render_clip's fixed setups (0 = none)
    self.travel = check_travel(travel)                   # ... and people's drift (m/s)
    self.num_clips = (DEFAULT_NUM_CLIPS[split] if num_clips is None
                      else check_positive_int("num_clips", num_clips))

  def __len__(self) -> int:
    return self.num_clips

  def __getitem__(self, index) -> dict:
    index = int(index)
    if not -self.num_clips <= index < self.num_clips:
      raise IndexError(f"index {index} out of range for {self.num_clips} clips")
    index %= self.num_clips
    return render_clip(split_seed(self.split, index), num_views=self.num_views,
                       num_frames=self.num_frames, resolution=self.resolution, rooms=self.rooms,
                       travel=self.travel)

  def __repr__(self) -> str:
    return (f"SyntheticSource(split={self.split!r}, num_views={self.num_views}, "
            f"num_frames={self.num_frames}, resolution={self.resolution}, num_clips={self.num_clips}, "
            f"rooms={self.rooms}, travel={self.travel:g})")
