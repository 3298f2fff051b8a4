"""TFDS builder `iper`: the iPER (Impersonator) videos as psrjax per-frame records."""
