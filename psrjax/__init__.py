"""psrjax: human video synthesis in JAX/Flax.

Five published systems (PSR-Net, a CoCosNet-based video pose transfer, D2G-Net, INTERnet and
multi-frame content integration) on one shared core: a procedural multi-view synthetic world,
pretrained feature networks, losses, metrics and one sharded trainer.
"""

__version__ = "0.1.0"
