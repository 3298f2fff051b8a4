"""`psrjax.paths` on local paths: made absolute, written all at once, moved, walked."""
import os

from psrjax import paths


def test_local_paths_are_absolute_and_urls_kept(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert paths.resolve("runs/x") == str(tmp_path / "runs" / "x")
  assert paths.resolve("gs://bucket/runs/x/") == "gs://bucket/runs/x"
  assert paths.join("gs://bucket/run", "best", "best.json") == "gs://bucket/run/best/best.json"
  assert paths.is_url("gs://b/x") and not paths.is_url(str(tmp_path))


def test_write_creates_parents_and_leaves_no_temporary_file(tmp_path):
  path = tmp_path / "a" / "b" / "c.json"
  paths.write_text(path, "{}")
  paths.write_text(path, '{"x": 1}')
  assert path.read_text() == '{"x": 1}'
  assert os.listdir(path.parent) == ["c.json"]


def test_walk_copy_move_remove(tmp_path):
  for name in ("x/1.txt", "x/y/2.txt"):
    paths.write_text(tmp_path / "src" / name, name)
  assert sorted(os.path.relpath(p, tmp_path / "src") for p in paths.walk_files(tmp_path / "src")) \
      == ["x/1.txt", "x/y/2.txt"]
  paths.copy_tree(tmp_path / "src", tmp_path / "copy")
  assert (tmp_path / "copy" / "x" / "y" / "2.txt").read_text() == "x/y/2.txt"
  paths.move(tmp_path / "copy" / "x", tmp_path / "moved" / "deeper" / "x")
  assert (tmp_path / "moved" / "deeper" / "x" / "1.txt").is_file()
  assert not (tmp_path / "copy" / "x").exists()
  paths.remove(tmp_path / "moved")
  paths.remove(tmp_path / "nothing")
  assert sorted(os.listdir(tmp_path)) == ["copy", "src"]
  assert paths.listdir(tmp_path / "nothing") == [] and paths.listdir(tmp_path) == ["copy", "src"]
