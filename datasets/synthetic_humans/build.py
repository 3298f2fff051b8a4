"""Prepare `synthetic_humans` without the `tfds` command line tool (which needs apache_beam).

    python datasets/synthetic_humans/build.py --data_dir ~/tensorflow_datasets --config small
    python datasets/synthetic_humans/build.py --config custom --resolution 96 --num_frames 8 \
        --num_views 3 --rooms 17 --num_train 5000

Equivalent to `tfds build datasets/synthetic_humans --data_dir ... --config ...`; afterwards
`tfds.data_source("synthetic_humans/<config>", data_dir=...)` reads the array_record files.
`--config custom` builds any settings (a system config's `data.resolution` / `num_frames` /
`num_views` / `rooms` / `travel` / `train_clips`) as the config named after them (`custom_name`).
"""
import argparse
import os
import sys

# Import as the package `synthetic_humans`, as `tfds build` does (tfds reads package resources).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from synthetic_humans import synthetic_humans_dataset_builder as shb  # noqa: E402  pylint: disable=g-import-not-at-top

_FIELDS = ("resolution", "num_frames", "num_views", "rooms", "travel", "num_train",
           "num_validation", "num_test")


def custom_name(resolution, num_frames, num_views, rooms, num_train, num_validation,
                num_test, travel=0.0) -> str:
  """The config name of custom settings, e.g. "r96_t8_v3_rooms17_n5000_200_200" (with travel,
  e.g. "..._rooms0_travel0.5_n...")."""
  moving = f"_travel{travel:g}" if travel else ""
  return (f"r{resolution}_t{num_frames}_v{num_views}_rooms{rooms}{moving}_n{num_train}"
          f"_{num_validation}_{num_test}")


def custom_config(**settings) -> shb.SyntheticHumansConfig:
  """A builder config of custom settings (`_FIELDS`), named by `custom_name`."""
  return shb.SyntheticHumansConfig(name=custom_name(**settings),
                                   description="custom settings (build.py --config custom)",
                                   **settings)


def build(config, data_dir: str) -> str:
  """Builds `config` (a name or a SyntheticHumansConfig) under `data_dir`; returns its path."""
  builder = shb.Builder(config=config, data_dir=data_dir)
  builder.download_and_prepare()
  return str(builder.data_path)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data_dir", default=os.path.expanduser("~/tensorflow_datasets"))
  names = [c.name for c in shb.Builder.BUILDER_CONFIGS] + ["custom"]
  parser.add_argument("--config", default="small", help=f"one of {', '.join(names)}")
  default = shb.SyntheticHumansConfig(name="default")
  for field in _FIELDS:
    parser.add_argument(f"--{field}", type=float if field == "travel" else int,
                        default=getattr(default, field),
                        help="with --config custom")
  args = parser.parse_args(argv)
  if args.config not in names:
    print(f"build.py: error: unknown config {args.config!r}; allowed: {', '.join(names)}",
          file=sys.stderr)
    return 2
  config = args.config
  if config == "custom":
    config = custom_config(**{f: getattr(args, f) for f in _FIELDS})
  print(build(config, args.data_dir))
  return 0


if __name__ == "__main__":
  sys.exit(main())
