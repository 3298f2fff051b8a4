"""TFDS builder `ntu_rgbd`: NTU RGB+D's three-camera takes as psrjax multi-view records."""
