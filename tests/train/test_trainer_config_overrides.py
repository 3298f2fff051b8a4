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


def _with_evals():
  c = _config()
  c.evals = ml_collections.ConfigDict()
  c.evals.fvd = dict(type="fvd", every=10)
  return c


@pytest.mark.parametrize("text", [
    "dict(type='fid', every=0, num_examples=64, value_range=(-1.0, 1.0))",
    '{"type": "fid", "every": 0, "num_examples": 64, "value_range": (-1.0, 1.0)}',
    " { 'type' : 'fid', 'every': 0, 'num_examples': 64, 'value_range': (-1.0, 1.0) } ",
])
def test_override_adds_an_eval(text):
  config = _with_evals()
  config_utils.apply_override(config, "evals.fid", text)
  assert config.evals.fid.to_dict() == dict(type="fid", every=0, num_examples=64,
                                            value_range=(-1.0, 1.0))
  assert config.evals.fvd.to_dict() == dict(type="fvd", every=10)


def test_override_eval_fields():
  config = _with_evals()
  config_utils.apply_override(config, "evals.fvd.every", "100")
  config_utils.apply_override(config, "evals.fvd.split", "test")   # a new field: text
  config_utils.apply_override(config, "evals.fvd.resolution", "64")   # a new field: literal
  assert config.evals.fvd.to_dict() == dict(type="fvd", every=100, split="test", resolution=64)
  with pytest.raises(ValueError, match="config key 'evals.fvd.every' expects int"):
    config_utils.apply_override(config, "evals.fvd.every", "often")
  # The implicit `system` entry becomes explicit on its first field override.
  config_utils.apply_override(config, "evals.system.every", "5")
  assert config.evals.system.to_dict() == dict(type="system", every=5)
  # A config without an evals group (an old saved one) gets one.
  config = _config()
  config_utils.apply_override(config, "evals.system.num_examples", "4")
  assert config.evals.to_dict() == {"system": dict(type="system", num_examples=4)}


@pytest.mark.parametrize("key,text,match", [
    ("evals.fid", "fid", r"^config key 'evals.fid' adds an eval: expected dict\(type='<type>', "
                         r"every=..., ...\) or \{'type': '<type>', ...\} \(Python literals\), "
                         r"got 'fid'$"),
    ("evals.fid", "dict(type='fid', type='kid')", "adds an eval: expected"),
    ("evals.fid", "dict('fid')", "adds an eval: expected"),
    ("evals.fid", "dict(type=open('x'))", "adds an eval: expected"),
    ("evals.fid", "OrderedDict(type='fid')", "adds an eval: expected"),
    ("evals.fid", "{1: 'fid'}", "adds an eval: expected"),
    ("evals.fid", "dict(type='fid'", "adds an eval: expected"),
    ("evals.fvd", "dict(type='fvd')", "config key 'evals.fvd' is a group"),
    ("evals.kid.every", "3", r"^unknown config key 'evals.kid.every': config.evals has no entry "
                             r"'kid' \(declared: fvd\); add one with --config.evals.kid="),
])
def test_bad_eval_overrides(key, text, match):
  config = _with_evals()
  with pytest.raises(ValueError, match=match) as info:
    config_utils.apply_override(config, key, text)
  assert "\n" not in str(info.value)
  assert "fid" not in config.evals and "kid" not in config.evals
