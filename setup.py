"""Builds psrjax's native extension `psrjax.nn.cpu._onednn_conv`: oneDNN convolutions for XLA:CPU
(`psrjax/nn/cpu/onednn_conv.cc`, with `narrow_conv.cc` for convolutions with few output channels).

The build needs a C++17 compiler and the `build-system` requirements of pyproject.toml (jaxlib
for XLA's FFI headers, onednn-devel-cpu-gomp for oneDNN's). Where they are missing (not Linux
x86-64) the extension is skipped and psrjax falls back to XLA's own convolutions
(conv impl "fold_time" on CPU). `PSRJAX_BUILD_EXTENSION=0` skips it too (a pure-Python wheel,
e.g. for accelerator hosts: benchmarks/build_wheelhouse.sh).
"""
from __future__ import annotations

import importlib.util
import os
from importlib import metadata
from pathlib import Path

from setuptools import Extension, setup


def _installed_file(dist: str, suffix: str) -> Path | None:
  try:
    files = metadata.distribution(dist).files or []
  except metadata.PackageNotFoundError:
    return None
  paths = (Path(f.locate()).resolve() for f in files)
  return next((p for p in paths if p.as_posix().endswith(suffix)), None)


def _extensions() -> list[Extension]:
  if os.environ.get("PSRJAX_BUILD_EXTENSION", "1") == "0":
    print("psrjax: PSRJAX_BUILD_EXTENSION=0; skipping the oneDNN extension")
    return []
  jaxlib = importlib.util.find_spec("jaxlib")
  header = _installed_file("onednn-devel-cpu-gomp", "include/oneapi/dnnl/dnnl.hpp")
  library = _installed_file("onednn-cpu-gomp", "lib/libdnnl.so.3")
  if jaxlib is None or header is None or library is None:
    print("psrjax: jaxlib or oneDNN not in the build environment; skipping the oneDNN extension")
    return []
  ffi_include = Path(list(jaxlib.submodule_search_locations)[0]) / "include"
  return [Extension(
      "psrjax.nn.cpu._onednn_conv",
      sources=["psrjax/nn/cpu/onednn_conv.cc", "psrjax/nn/cpu/narrow_conv.cc"],
      depends=["psrjax/nn/cpu/narrow_conv.h"],
      include_dirs=[str(ffi_include), str(header.parents[2])],
      library_dirs=[str(library.parent)],
      libraries=["dnnl"],
      extra_compile_args=["-std=c++17", "-O3", "-w", "-fopenmp"],
      extra_link_args=["-fopenmp"],
      language="c++",
      optional=True,
  )]


setup(ext_modules=_extensions())
