"""The quick-start notebook runs top to bottom (launch/colab_quickstart.ipynb): executed with its
settings cell overridden to this checkout, a temporary workdir and PSR-Net's tiny config, it
trains, shows a sample strip and the evaluation results, and benchmarks the step."""
import os
import sys

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
NOTEBOOK = os.path.join(REPO, "launch", "colab_quickstart.ipynb")
# The notebook trains PSR-Net's tiny config: the test process of PSR-Net's checks compiles it.
pytestmark = pytest.mark.xdist_group("psrnet")


def _settings(workdir) -> str:
  return "\n".join([f"PSRJAX_DIR = {REPO!r}", f"WORKDIR = {str(workdir)!r}",
                    'CONFIG = "configs/psrnet.py:tiny"', "STEPS = 4", "INSTALL = False",
                    "TENSORBOARD = False"])


def test_quickstart_notebook_trains_shows_a_sample_and_evaluation(tmp_path, monkeypatch,
                                                                  system_runs):
  system_runs("psrnet").straight   # its programs, in the compilation cache the notebook reads
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  params = [i for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", ())]
  assert len(params) == 1, "the notebook needs one settings cell tagged 'parameters'"
  notebook.cells.insert(params[0] + 1, nbformat.v4.new_code_cell(_settings(tmp_path / "run")))
  # The kernel and the `!psrjax` commands run with this interpreter's environment.
  monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
  client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                   resources={"metadata": {"path": str(tmp_path)}})
  client.execute()
  shown = _outputs(notebook, "display(Image")
  assert any("image/gif" in o.get("data", {}) for o in shown), "no sample strip shown"
  printed = dict(line.split() for line in _text(shown).splitlines()[1:])
  assert float(printed["num_examples"]) > 0 and "ssim/layer2" in printed, printed
  assert "MFU" in _text(_outputs(notebook, "psrjax bench")), "no benchmark report"
  assert os.path.isfile(tmp_path / "run" / "samples" / "4.gif")


def _outputs(notebook, source: str) -> list:
  """The outputs of the code cell whose source holds `source`."""
  (cell,) = [c for c in notebook.cells if c.cell_type == "code" and source in c.source]
  return cell.get("outputs", [])


def _text(outputs) -> str:
  return "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
