"""Baselines the papers compare against that are not trained systems (nearest-pose retrieval)."""
