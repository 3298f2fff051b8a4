"""Samplers: a video source's videos -> a system's examples (`per_person`, `same_video`,
`view_pairs`, `first_frame`, `surface_windows`)."""
