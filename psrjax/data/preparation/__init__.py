"""`psrjax prepare` and the TFDS builders' processing: real videos (`prepare`, `preprocess`,
`keypoint_io`, `pose_estimator`, `estimate`) and calibrated multi-view recordings
(`multiview_prepare`, `multiview_inputs`, `multiview_process`, `body_fit`, `ntu_rgbd`) -> the
records `psrjax.data.sources` reads."""
