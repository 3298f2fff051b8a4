"""Build a real-video TFDS dataset (iper, fashion_videos, video_folder, ntu_rgbd) without the `tfds` tool.

    python datasets/build_videos.py iper --manual_dir ~/data/iPER --data_dir ~/tensorflow_datasets

Equivalent to `tfds build datasets/iper --manual_dir ... --data_dir ... --config ...` (the tfds
command line tool also needs apache_beam installed). Prints the dataset folder, which
`configs/mfci.py:data=<folder>` trains on and `psrjax.data.sources.prepared.PreparedVideos` reads
(ntu_rgbd's, a multi-view dataset: `configs/psrnet.py:data=<folder>`).
"""
import argparse
import importlib
import os
import sys

DATASETS = ("iper", "fashion_videos", "video_folder", "ntu_rgbd")
CONFIGS = ("r256", "r128", "r64")


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("dataset", choices=DATASETS)
  parser.add_argument("--manual_dir", required=True, help="the downloaded files (see the README)")
  parser.add_argument("--data_dir", default=os.path.expanduser("~/tensorflow_datasets"))
  parser.add_argument("--config", default="r256", choices=CONFIGS, help="crop size")
  args = parser.parse_args(argv)
  manual_dir = os.path.abspath(os.path.expanduser(args.manual_dir))
  if not os.path.isdir(manual_dir):
    print(f"build_videos.py: error: --manual_dir {manual_dir} is not a folder; give the folder "
          "that holds the downloaded files", file=sys.stderr)
    return 2
  from psrjax.data.sources import prepared  # pylint: disable=g-import-not-at-top
  try:
    prepared.check_tensorflow()
  except ImportError as e:
    print(f"build_videos.py: error: {e}", file=sys.stderr)
    return 2
  # Import as the package `<dataset>`, as `tfds build` does.
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  module = importlib.import_module(f"{args.dataset}.{args.dataset}_dataset_builder")
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  # Heavy; only here.
  builder = module.Builder(config=args.config, data_dir=os.path.expanduser(args.data_dir))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  print(builder.data_path)
  return 0


if __name__ == "__main__":
  sys.exit(main())
