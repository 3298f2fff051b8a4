"""The synthetic multi-view human world: psrjax's embedded default dataset.

A procedural person (articulated skeleton covered by textured capsules whose surfaces are cut
into NUM_FACES stable faces, each in one of 24 DensePose-style parts) performs one of ACTIONS in
a textured room seen by V calibrated cameras. Every modality is exact (analytic ray casting).

`render_clip(seed, *, num_views=3, num_frames=16, resolution=128, action=None, rooms=0, travel=0)` returns numpy
arrays, views first:
  rgb uint8 [V,T,H,W,3]; depth float32 [V,T,H,W] (camera z, metres, 0 on background);
  mask uint8 [V,T,H,W] {0,1}; face int32 (-1 background); part int32 (0 background, 1..24);
  uv float32 [V,T,H,W,2] in [0,1]; keypoints float32 [V,T,18,3] (x, y pixels; visibility);
  flow_fwd / flow_bwd float32 [V,T,H,W,2] (x, y pixels; t->t+1 / t->t-1; 0 where undefined);
  background uint8 [V,H,W,3] and background_depth float32 [V,H,W] (the empty room's colour and
  camera z; `where(mask, depth, background_depth)` is a Kinect-like full-scene depth); K [V,3,3], R [V,3,3], t [V,3] float32 (x_cam = R x + t,
  pixel = K x_cam / z, pixel centres at integers); action, identity (np.int32 scalars).

`render_background(seed, ...)` renders the empty room of the same clip alone (cheap: no person).
Beyond the default dataset: `render(shape, textures, motion, cameras)` renders explicit body
parameters in explicit calibrated cameras; `render_sequence` streams one identity performing a
scripted series of actions (`ScriptedSequence`: any frame range of it, on demand); `jax_body` is
the differentiable JAX forward kinematics of the same body (for fitting it to real 3D keypoints).
Splits hold out identities (`SyntheticSource`).
Coordinates: world z up, floor at z = 0, metres; a person at rest faces +y.
"""
from psrjax.data.synthetic.actions import ACTIONS
from psrjax.data.synthetic.appearance import Identity, make_identity
from psrjax.data.synthetic.body import DEFAULT_SHAPE, PART_NAMES, SHAPE_NAMES, SYMMETRIC_PART
from psrjax.data.synthetic.cameras import Cameras, camera_ring
from psrjax.data.synthetic.clip import (CLIP_FPS, NUM_IDENTITIES, clip_keypoints, render_background,
                                        render_clip)
from psrjax.data.synthetic.faces import FACE_CENTROIDS, FACE_PART, NUM_FACES, nearest_faces
from psrjax.geometry.skeleton import COCO_NAMES, LIMBS
from psrjax.data.synthetic.motion import Motion, place_action
from psrjax.data.synthetic.renderer import render
from psrjax.data.synthetic.sequence import ScriptedSequence, render_sequence, script_motion
from psrjax.data.synthetic.source import (DEFAULT_NUM_CLIPS, SPLITS, SyntheticSource, check_split,
                                          seed_split, split_seed)

__all__ = [
    "ACTIONS", "CLIP_FPS", "COCO_NAMES", "DEFAULT_NUM_CLIPS", "Cameras", "DEFAULT_SHAPE", "FACE_CENTROIDS", "FACE_PART",
    "Identity", "LIMBS", "Motion", "NUM_FACES", "NUM_IDENTITIES", "PART_NAMES", "SHAPE_NAMES",
    "SPLITS", "SYMMETRIC_PART", "ScriptedSequence", "SyntheticSource", "camera_ring", "check_split",
    "clip_keypoints", "render_background",
    "make_identity", "nearest_faces", "place_action", "render", "render_clip", "render_sequence",
    "script_motion", "seed_split", "split_seed",
]
