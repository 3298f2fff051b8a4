"""TFDS builder `fashion_videos`: the DwNet fashion videos as psrjax per-frame records."""
