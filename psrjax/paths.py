"""Workdir and dataset paths that may be local or on a cloud bucket (`gs://bucket/dir`).

Everything that reads or writes a workdir or a prepared dataset goes through `etils.epath`, the
path library orbax itself uses, so that `--workdir gs://bucket/run` works like a local folder:
local paths keep the plain `os` behaviour (made absolute), URLs are kept as given (never
`os.path.abspath`-ed) and reach the bucket through fsspec (`gcsfs`).

Object stores differ from file systems in ways the callers rely on knowing:
  * there are no directories: `makedirs` is a no-op there and a "directory" exists once an
    object lies under it;
  * objects cannot be appended to, and a rename is a copy and a delete (not atomic); a single
    object upload, however, is atomic (readers see the old or the new object, never a part).

epath picks TensorFlow's `tf.io.gfile` for URLs when TensorFlow is installed; psrjax sets
`EPATH_USE_TF=false` (unless the environment already says otherwise) so that bucket access
never imports TensorFlow and uses the same credentials as gcsfs.
"""
from __future__ import annotations

import io
import os
import shutil
from typing import Iterator

os.environ.setdefault("EPATH_USE_TF", "false")

from etils import epath  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position

URL_SCHEMES = ("gs://", "s3://", "az://")


def is_url(path) -> bool:
  """Whether `path` names an object in a bucket (`gs://...`) rather than a local file."""
  return str(path).startswith(URL_SCHEMES)


def resolve(path) -> str:
  """A local path made absolute (`~` expanded); a URL as given, without a trailing slash."""
  path = os.fspath(path)
  if is_url(path):
    return path.rstrip("/")
  return os.path.abspath(os.path.expanduser(path))


def join(path, *parts) -> str:
  """`os.path.join` that keeps URLs intact."""
  return os.path.join(os.fspath(path), *parts)


def as_path(path) -> epath.Path:
  return epath.Path(os.fspath(path))


def exists(path) -> bool:
  return as_path(path).exists()


def isdir(path) -> bool:
  """A local directory, or a bucket prefix holding at least one object."""
  return as_path(path).is_dir()


def isfile(path) -> bool:
  return as_path(path).is_file()


def makedirs(path) -> None:
  """Creates the directory and its missing parents (nothing to do in a bucket)."""
  if not is_url(path):
    os.makedirs(path, exist_ok=True)


def listdir(path) -> list[str]:
  """The names of the entries of a directory ([] when it does not exist)."""
  path = as_path(path)
  if not path.is_dir():
    return []
  return sorted(p.name for p in path.iterdir())


def walk_files(path) -> Iterator[str]:
  """The paths of all files under `path` (recursively; `rglob` is not available on buckets)."""
  for child in as_path(path).iterdir():
    if child.is_dir():
      yield from walk_files(child)
    else:
      yield str(child)


def remove(path) -> None:
  """Removes a file or a directory tree; nothing when it does not exist."""
  path = as_path(path)
  if path.is_dir():
    path.rmtree()
  elif path.exists() or (not is_url(path) and os.path.lexists(path)):
    path.unlink()


def read_text(path) -> str:
  return as_path(path).read_text(encoding="utf-8")


def read_bytes(path) -> bytes:
  return as_path(path).read_bytes()


def write_text(path, text: str) -> None:
  """Writes `path` so that readers never see it half-written: locally through a temporary file,
  `fsync` and `os.replace`; in a bucket as one object upload (atomic by itself)."""
  write_bytes(path, text.encode("utf-8"))


def write_bytes(path, data: bytes) -> None:
  """`write_text` for bytes (the same all-or-nothing guarantee)."""
  if is_url(path):
    as_path(path).write_bytes(data)
    return
  makedirs(os.path.dirname(os.fspath(path)) or ".")
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "wb") as f:
    f.write(data)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def copy_tree(src, dst) -> None:
  """Copies the files under `src` into `dst` (local or bucket, either way)."""
  prefix = str(as_path(src)).rstrip("/") + "/"
  for path in walk_files(src):
    target = as_path(join(os.fspath(dst), path[len(prefix):]))
    if not is_url(target):
      target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(as_path(path).read_bytes())


def move(src, dst) -> None:
  """Moves a file or directory tree to `dst` (whose parent is created): a rename locally, a copy
  and a delete in a bucket (not atomic there: a crash may leave both)."""
  if not (is_url(src) or is_url(dst)):
    os.makedirs(os.path.dirname(os.fspath(dst)), exist_ok=True)
    shutil.move(os.fspath(src), os.fspath(dst))
    return
  if isdir(src):
    copy_tree(src, dst)
  else:
    as_path(dst).write_bytes(read_bytes(src))
  remove(src)


def load_npy(path):
  """A .npy array: memory-mapped locally, read whole from a bucket."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  if is_url(path):
    return np.load(io.BytesIO(read_bytes(path)))
  return np.load(path, mmap_mode="r")
