"""The package's layout: no import circle between psrjax's modules or its sub-packages, and
`psrjax/systems/` holds systems only (`known_systems()` is exactly its modules but the protocol,
`base`, and the `registry`), and no system imports or subclasses another: what systems share
lives in `psrjax.systems.tasks` (task bases and components)."""
import ast
import os

import psrjax
from psrjax.systems import registry

ROOT = os.path.dirname(os.path.abspath(psrjax.__file__))


def _modules() -> dict[str, str]:
  out = {}
  for folder, _, files in os.walk(ROOT):
    for name in files:
      if name.endswith(".py"):
        path = os.path.join(folder, name)
        module = "psrjax." + os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
        out[module.removesuffix(".__init__")] = path
  return out


def _imports(path: str, modules) -> set[str]:
  """psrjax modules `path` imports anywhere (module level or inside functions)."""
  found = set()
  for node in ast.walk(ast.parse(open(path).read())):
    if isinstance(node, ast.Import):
      found |= {a.name for a in node.names}
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      found |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                for a in node.names}
  return {m for m in found if m in modules}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
  """Strongly connected components with more than one node (Tarjan)."""
  index, low, stack, on, out = {}, {}, [], set(), []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v), on.add(v)
    for w in graph.get(v, ()):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while not component or component[-1] != v:
        component.append(stack.pop())
        on.discard(component[-1])
      if len(component) > 1:
        out.append(sorted(component))

  for v in sorted(graph):
    if v not in index:
      visit(v)
  return out


def test_no_import_circle_between_modules_or_sub_packages():
  modules = _modules()
  graph = {m: _imports(p, modules) - {m} for m, p in modules.items()}
  assert _cycles(graph) == []
  package = lambda m: ".".join(m.split(".")[:2])
  packages = {}
  for m, deps in graph.items():
    for d in deps:
      if package(m) != package(d) and "psrjax" not in (package(m), package(d)):
        packages.setdefault(package(m), set()).add(package(d))
  assert _cycles(packages) == []


def test_systems_holds_systems_only():
  names = {os.path.splitext(f)[0] for f in os.listdir(os.path.join(ROOT, "systems"))
           if f.endswith(".py") and f not in ("__init__.py", "base.py", "registry.py")}
  assert set(registry.known_systems()) == names
  assert {"edn", "mfci", "pix2pixhd", "psrnet"} <= names


def test_no_system_imports_or_subclasses_another():
  modules = _modules()
  systems = {f"psrjax.systems.{n}" for n in registry.known_systems()}
  for name in sorted(systems):
    path = modules[name]
    assert not _imports(path, modules) & (systems - {name}), name
    tree = ast.parse(open(path).read())
    imported = {a.asname or a.name for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.module == "psrjax.systems"
                for a in node.names}
    assert imported <= {"base"}, (name, imported)
    for node in ast.walk(tree):
      if isinstance(node, ast.ClassDef):
        bases = {ast.unparse(b).split(".")[0] for b in node.bases}
        assert not bases & (imported - {"base"}), (name, node.name)
