"""Config files with `get_config(arg)` and `--config.key=value` overrides."""
import ml_collections
import pytest

from psrjax import config_utils


def _config():
  c = ml_collections.ConfigDict()
  c.train = dict(steps=10, lr=0.1, name="a", flag=False, sizes=(1, 2))
  c.resume = ""
  return c


@pytest.mark.parametrize("key,text,want", [
    ("train.steps", "200", 200),
    ("train.lr", "3", 3.0),
    ("train.lr", "1e-4", 1e-4),
    ("train.name", "b,c", "b,c"),
    ("train.flag", "true", True),
    ("train.flag", "0", False),
    ("train.sizes", "(3, 4, 5)", (3, 4, 5)),
    ("resume", "/tmp/run", "/tmp/run"),
])
def test_override_uses_field_type(key, text, want):
  config = _config()
  config_utils.apply_override(config, key, text)
  node = config
  for part in key.split("."):
    node = node[part]
  assert node == want and type(node) is type(want)


def test_unknown_key_lists_known_keys_one_line():
  with pytest.raises(ValueError) as info:
    config_utils.apply_override(_config(), "train.stpes", "3")
  message = str(info.value)
  assert message == ("unknown config key 'train.stpes' (known: train.flag, train.lr, "
                     "train.name, train.sizes, train.steps)")


@pytest.mark.parametrize("key,text,match", [
    ("train.steps", "many", "expects int"),
    ("train.flag", "maybe", "is a bool"),
    ("train", "3", "is a group"),
    ("nope.steps", "3", "unknown config key 'nope.steps'"),
])
def test_bad_overrides(key, text, match):
  with pytest.raises(ValueError, match=match):
    config_utils.apply_override(_config(), key, text)


def test_split_overrides_both_forms():
  overrides, rest = config_utils.split_overrides(
      ["--workdir", "w", "--config.train.steps=5", "--config.train.lr", "0.5", "--config", "x"])
  assert overrides == [("train.steps", "5"), ("train.lr", "0.5")]
  assert rest == ["--workdir", "w", "--config", "x"]
  with pytest.raises(ValueError, match="has no value"):
    config_utils.split_overrides(["--config.train.steps"])


def test_load_config_file_with_arg_and_overrides(tmp_path):
  path = tmp_path / "cfg.py"
  path.write_text("import ml_collections\n"
                  "def get_config(arg=None):\n"
                  "  c = ml_collections.ConfigDict()\n"
                  "  c.arg = arg or ''\n"
                  "  c.train = dict(steps=1)\n"
                  "  return c\n")
  config = config_utils.load_config(f"{path}:runlocal,res=64", [("train.steps", "7")])
  assert config.arg == "runlocal,res=64" and config.train.steps == 7
  with pytest.raises(ValueError, match="does not exist"):
    config_utils.load_config(str(tmp_path / "missing.py"))


def test_saved_config_round_trip(tmp_path):
  config = _config()
  config_utils.save_config(config, str(tmp_path / "config.json"))
  loaded = config_utils.load_workdir_config(str(tmp_path))
  assert loaded.to_dict() == config.to_dict()
