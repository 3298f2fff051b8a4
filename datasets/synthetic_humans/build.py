"""Prepare `synthetic_humans` without the `tfds` command line tool (which needs apache_beam).

    python datasets/synthetic_humans/build.py --data_dir ~/tensorflow_datasets --config small

Equivalent to `tfds build datasets/synthetic_humans --data_dir ... --config ...`; afterwards
`tfds.data_source("synthetic_humans/<config>", data_dir=...)` reads the array_record files.
"""
import argparse
import os
import sys

# Import as the package `synthetic_humans`, as `tfds build` does (tfds reads package resources).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from synthetic_humans import synthetic_humans_dataset_builder  # noqa: E402  pylint: disable=g-import-not-at-top


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data_dir", default=os.path.expanduser("~/tensorflow_datasets"))
  names = [c.name for c in synthetic_humans_dataset_builder.Builder.BUILDER_CONFIGS]
  parser.add_argument("--config", default="small", help=f"one of {', '.join(names)}")
  args = parser.parse_args(argv)
  if args.config not in names:
    print(f"build.py: error: unknown config {args.config!r}; allowed: {', '.join(names)}", file=sys.stderr)
    return 2
  builder = synthetic_humans_dataset_builder.Builder(config=args.config, data_dir=args.data_dir)
  builder.download_and_prepare()
  print(builder.data_path)
  return 0


if __name__ == "__main__":
  sys.exit(main())
