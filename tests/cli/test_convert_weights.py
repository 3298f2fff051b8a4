"""`psrjax convert-weights`: packaged I3D -> msgpack that loads identically; clear errors."""
import jax
import numpy as np

from psrjax import cli
from psrjax.models import pretrained


def test_convert_packaged_i3d_round_trips(tmp_path):
  out = tmp_path / "i3d.msgpack"
  assert cli.main(["convert-weights", "--kind", "i3d", "--to", str(out)]) == 0
  converted = pretrained.load_variables("i3d", out)
  packaged = pretrained.load_variables("i3d")
  jax.tree.map(np.testing.assert_array_equal, converted, packaged)


def test_missing_weights_are_one_line_errors(tmp_path, capsys):
  assert cli.main(["convert-weights", "--kind", "vgg19", "--to", str(tmp_path / "v.msgpack")]) == 2
  err = capsys.readouterr().err.strip()
  assert "vgg19" in err and "\n" not in err
  assert cli.main(["convert-weights", "--kind", "vgg19", "--from", str(tmp_path / "none.pth"),
                   "--to", str(tmp_path / "v.msgpack")]) == 2
  assert "does not exist" in capsys.readouterr().err
