"""The quick-start notebook runs top to bottom (launch/colab_quickstart.ipynb): executed with its
settings cell overridden to this checkout, a temporary workdir and PSR-Net's tiny config, it
trains, shows a sample strip and the evaluation results, and benchmarks the step, and its kernel
never imports JAX (on a TPU runtime that would hold the chips the `!psrjax` commands need).

Without the install cell the kernel and the `!psrjax` commands use this interpreter's
environment. With it, the kernel runs in a throwaway virtualenv that sees this environment's
packages (a path file) but not its psrjax, and the install cell pip-installs this checkout
there (`--no-deps --no-build-isolation -e`, seconds): the `psrjax` command the notebook then runs
is the one it installed."""
import json
import os
import subprocess
import sys
import sysconfig

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
NOTEBOOK = os.path.join(REPO, "launch", "colab_quickstart.ipynb")
# The notebook trains PSR-Net's tiny config: the test process of PSR-Net's checks compiles it.
pytestmark = pytest.mark.xdist_group("psrnet")
KERNEL_REPORT = 'import sys\nprint("kernel imported jax:", "jax" in sys.modules)'


def _settings(workdir, install: bool) -> str:
  return "\n".join([f"PSRJAX_DIR = {REPO!r}", 'REPO_URL = ""', f"WORKDIR = {str(workdir)!r}",
                    'CONFIG = "configs/psrnet.py:tiny"', "STEPS = 4", f"INSTALL = {install}",
                    'PIP_ARGS = "--no-deps --no-build-isolation"', "TENSORBOARD = False"])


def _throwaway_kernel(tmp_path, monkeypatch) -> str:
  """A virtualenv whose kernel sees this environment's packages but not its psrjax (the
  editable install's finder is a .pth file there, which a path entry does not run); returns
  the kernel's name, with PATH leading to the virtualenv's commands only."""
  venv = tmp_path / "venv"
  subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
  purelib = sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"]
  with open(os.path.join(purelib, "_test_environment.pth"), "w", encoding="utf-8") as f:
    f.write(sysconfig.get_paths()["purelib"] + "\n")
  python = str(venv / "bin" / "python")
  spec = tmp_path / "jupyter" / "kernels" / "throwaway"
  spec.mkdir(parents=True)
  (spec / "kernel.json").write_text(json.dumps({
      "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
      "display_name": "throwaway", "language": "python"}))
  monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
  here = os.path.dirname(sys.executable)
  path = [p for p in os.environ["PATH"].split(os.pathsep) if p and os.path.abspath(p) != here]
  monkeypatch.setenv("PATH", os.pathsep.join([str(venv / "bin"), *path]))
  monkeypatch.delenv("PYTHONPATH", raising=False)
  assert subprocess.run([python, "-c", "import psrjax"], capture_output=True,
                        cwd=tmp_path).returncode != 0, (
      "the throwaway environment must not see a psrjax before the notebook installs it")
  return "throwaway"


@pytest.mark.parametrize("install", [
    # Without the install cell (psrjax already installed): the same cells, minutes of a test
    # worker; the install run below covers them.
    pytest.param(False, id="no-install", marks=pytest.mark.slow),
    pytest.param(True, id="install")])
def test_quickstart_notebook_trains_shows_a_sample_and_evaluation(tmp_path, monkeypatch,
                                                                  system_runs, install):
  system_runs("psrnet").straight   # its programs, in the compilation cache the notebook reads
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  params = [i for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", ())]
  assert len(params) == 1, "the notebook needs one settings cell tagged 'parameters'"
  notebook.cells.insert(params[0] + 1,
                        nbformat.v4.new_code_cell(_settings(tmp_path / "run", install)))
  notebook.cells.append(nbformat.v4.new_code_cell(KERNEL_REPORT))
  if install:
    kernel = _throwaway_kernel(tmp_path, monkeypatch)
  else:
    # The kernel and the `!psrjax` commands run with this interpreter's environment.
    kernel = "python3"
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
  client = nbclient.NotebookClient(notebook, timeout=600, kernel_name=kernel,
                                   resources={"metadata": {"path": str(tmp_path)}})
  client.execute()
  shown = _outputs(notebook, "display(Image")
  assert any("image/gif" in o.get("data", {}) for o in shown), "no sample strip shown"
  printed = dict(line.split() for line in _text(shown).splitlines()[1:])
  assert float(printed["num_examples"]) > 0 and "ssim/layer2" in printed, printed
  assert "MFU" in _text(_outputs(notebook, "psrjax bench")), "no benchmark report"
  assert os.path.isfile(tmp_path / "run" / "samples" / "4.gif")
  install_output = _text(_outputs(notebook, "runtime_accelerator()"))
  assert "runtime accelerator: cpu" in install_output, install_output
  assert "JAX " in install_output and "CpuDevice" in install_output, install_output
  assert _text(_outputs(notebook, KERNEL_REPORT)).strip() == "kernel imported jax: False"
  if install:
    assert os.path.isfile(tmp_path / "venv" / "bin" / "psrjax"), "the install cell installed no psrjax"


def _outputs(notebook, source: str) -> list:
  """The outputs of the code cell whose source holds `source`."""
  (cell,) = [c for c in notebook.cells if c.cell_type == "code" and source in c.source]
  return cell.get("outputs", [])


def _text(outputs) -> str:
  return "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
