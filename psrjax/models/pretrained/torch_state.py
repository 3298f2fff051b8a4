"""Reads PyTorch state dicts (`torch.save` zip files) into numpy arrays, without importing torch.

The zip holds `<archive>/data.pkl`, whose tensors refer to raw little-endian storages stored as
`<archive>/data/<key>`. Only the classes a state dict needs are admitted by the unpickler.
"""
from __future__ import annotations

import collections
import pathlib
import pickle
import zipfile

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np

_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class _StorageType:
  def __init__(self, name: str):
    self.dtype = np.dtype(_STORAGE_DTYPES[name])


def _rebuild_tensor(storage, offset, size, stride, *unused):
  itemsize = storage.dtype.itemsize
  if not size:
    return storage[offset:offset + 1].reshape(()).copy()
  view = np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size),
                                         strides=tuple(s * itemsize for s in stride), writeable=False)
  return np.array(view)


def _rebuild_parameter(data, *unused):
  return data


class _StateDictUnpickler(pickle.Unpickler):
  def __init__(self, file, archive: zipfile.ZipFile, prefix: str, path: pathlib.Path):
    super().__init__(file)
    self._archive, self._prefix, self._path = archive, prefix, path

  def find_class(self, module, name):
    if module == "collections" and name == "OrderedDict":
      return collections.OrderedDict
    if module == "torch._utils" and name == "_rebuild_tensor_v2":
      return _rebuild_tensor
    if module == "torch._utils" and name == "_rebuild_parameter":
      return _rebuild_parameter
    if module == "torch" and name in _STORAGE_DTYPES:
      return _StorageType(name)
    raise ValueError(f"{self._path}: unsupported object {module}.{name} in a state dict (only tensors are read)")

  def persistent_load(self, pid):
    kind, storage_type, key, _location, numel = pid
    if kind != "storage":
      raise ValueError(f"{self._path}: unsupported persistent object {kind!r}")
    raw = self._archive.read(f"{self._prefix}/data/{key}")
    return np.frombuffer(raw, dtype=storage_type.dtype, count=numel)


def read_state_dict(path: str | pathlib.Path) -> dict[str, np.ndarray]:
  """{key: numpy array} from a file written by `torch.save(model.state_dict(), path)`."""
  path = pathlib.Path(path)
  if not zipfile.is_zipfile(path):
    raise ValueError(f"{path}: not a torch.save zip file (legacy pre-1.6 files are not supported; "
                     "re-save it with a current torch.save)")
  with zipfile.ZipFile(path) as archive:
    pkl = [n for n in archive.namelist() if n.endswith("/data.pkl")]
    if len(pkl) != 1:
      raise ValueError(f"{path}: expected one data.pkl in the archive, found {len(pkl)}")
    prefix = pkl[0][:-len("/data.pkl")]
    order = f"{prefix}/byteorder"
    if order in archive.namelist() and archive.read(order).strip() != b"little":
      raise ValueError(f"{path}: big-endian tensors are not supported")
    with archive.open(pkl[0]) as f:
      state = _StateDictUnpickler(f, archive, prefix, path).load()
  if "state_dict" in state and isinstance(state["state_dict"], dict):
    state = state["state_dict"]
  return {str(k): np.asarray(v) for k, v in state.items() if isinstance(v, np.ndarray)}


def params_from_layers(arrays: dict[str, np.ndarray], layers, what: str) -> dict:
  """Nested flax params from a PyTorch state dict's learnable `arrays` (float32 numpy) by `layers`
  [(prefix, flax path, kind)], kind "conv" (OIHW -> HWIO), "conv_transpose" (IOHW -> HWIO) or
  "norm" (weight, bias -> scale, bias; skipped where the state dict has no weight: a norm
  without affine parameters); a bias is read where the state dict has one. Every entry of
  `arrays` must be used. Errors name the missing or extra entries and `what` to check (the
  options the checkpoint was built with)."""
  params, used = {}, set()
  for prefix, path, kind in layers:
    weight = arrays.get(f"{prefix}.weight")
    if weight is None and kind == "norm":
      continue
    if weight is None:
      raise ValueError(f"the state dict has no {prefix}.weight; check {what} against the "
                       "checkpoint's options")
    if kind == "norm":
      leaf = {"scale": weight, "bias": arrays[f"{prefix}.bias"]}
    else:
      leaf = {"kernel": weight.transpose((2, 3, 0, 1) if kind == "conv_transpose"
                                         else (2, 3, 1, 0))}
      if f"{prefix}.bias" in arrays:
        leaf["bias"] = arrays[f"{prefix}.bias"]
    used |= {f"{prefix}.weight", f"{prefix}.bias"}
    node = params
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = jax.tree.map(jnp.asarray, leaf)
  unused = sorted(set(arrays) - used)
  if unused:
    raise ValueError(f"the state dict has entries the network lacks ({', '.join(unused[:4])}, "
                     f"...); check {what} against the checkpoint's options")
  return params
