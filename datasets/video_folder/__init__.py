"""TFDS builder `video_folder`: any folder of person videos (+ OpenPose JSON) as psrjax records."""
