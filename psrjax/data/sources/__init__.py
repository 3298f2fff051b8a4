"""Video sources: the interface samplers read (`base`: `VideoSource`, `require`, `Resized`) and
its implementations: the synthetic world's clips (`synthetic_clips`, read pre-rendered by
`prerendered`, with `estimated_geometry` as their estimated-geometry mode), the synthetic
per-person video (`scripted_person`), prepared real videos (`prepared`) and prepared multi-view
recordings (`multiview`)."""
