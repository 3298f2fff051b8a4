"""The bases of the TFDS builders in datasets/: real videos (`video_builder`) and multi-view
recordings (`multiview_builder`)."""
