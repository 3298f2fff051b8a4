"""`render_clip`: one multi-view clip of a procedural person, every modality exact, from a seed.

A seed fixes everything: the identity (`seed % NUM_IDENTITIES`, so many clips share a person),
the action (unless given) with its speed, phase, amplitude, heading and position, the room and
the jittered cameras. With `travel` > 0 the person also drifts across the room at a constant
velocity (a random direction, a speed drawn in [travel / 2, travel] metres per second, centred on
the clip's middle frame, so the cameras stay aimed at the mean position): the actions alone move
a body by a few pixels while a frame's room stays still, too little motion for systems that must
discover it (FOMM's keypoints, docs/systems/fomm.md). Independent random streams are used for each of these so that e.g. the
number of views does not change the motion of a given seed.

Rooms: by default every clip has its own random room and camera rig (aimed at the person). With
`rooms=N` the world has N fixed setups, like NTU RGB+D's 17: a setup is a room (geometry,
textures, light) and a camera rig aimed at the room's centre, shared by every split; each clip
draws its setup from its seed (independently of identity and action, so held-out people and
actions appear in the training rooms) and re-jitters the rig slightly (`cameras.SETUP_JITTER`).
"""
import numpy as np

from psrjax.data.synthetic import actions, appearance, cameras as cams, motion, room, renderer

NUM_IDENTITIES = 1000
CLIP_FPS = 15.0


def _stream(seed: int, domain: int) -> np.random.Generator:
  return np.random.default_rng([int(domain), int(seed)])


def check_positive_int(name: str, value, minimum: int = 1) -> int:
  """`value` as an int >= minimum, else a one-line ValueError naming the allowed values."""
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
    raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
  return int(value)


def check_travel(travel) -> float:
  """`travel` as a float >= 0 (metres per second), else a one-line ValueError."""
  if isinstance(travel, bool) or not isinstance(travel, (int, float, np.integer, np.floating)) \
      or not np.isfinite(travel) or travel < 0:
    raise ValueError(f"travel is the people's drift across the room in metres per second: a "
                     f"number >= 0, got {travel!r}")
  return float(travel)


def sample_motion(seed: int, identity, num_frames: int, action=None, fps: float = CLIP_FPS,
                  travel: float = 0.0):
  """(action index, Motion) of a clip: random action parameters, heading and position, and with
  `travel` > 0 a drift at constant velocity (module docstring)."""
  rng = _stream(seed, 0xAC7)
  drawn = int(rng.integers(actions.NUM_ACTIONS))
  index = drawn if action is None else actions.action_index(action)
  speed, phase, amp = rng.uniform(0.75, 1.3), rng.uniform(0, 2 * np.pi), rng.uniform(0.75, 1.1)
  heading = rng.uniform(-50, 50) if rng.random() < 0.7 else rng.uniform(-180, 180)
  position = rng.uniform(-0.25, 0.25, 2)
  times = np.arange(num_frames) / fps
  placed = motion.place_action(identity.shape, index, times, speed=speed, phase=phase,
                               amplitude=amp, heading_deg=heading, position=position)
  return index, _drift(placed, seed, times, check_travel(travel))


def _drift(mot, seed: int, times: np.ndarray, travel: float):
  """`mot` moved at a random constant velocity of at most `travel` m/s through the floor plane,
  centred on the middle frame (drawn from its own stream: the other draws do not change)."""
  if travel == 0:
    return mot
  rng = _stream(seed, 0x7A7)
  angle, speed = rng.uniform(0, 2 * np.pi), travel * rng.uniform(0.5, 1.0)
  root = mot.root_pos.copy()
  root[:, :2] += speed * (times - times.mean())[:, None] * np.array([np.cos(angle), np.sin(angle)])
  return motion.Motion(mot.local_rot, root)


def clip_setup(seed: int, rooms: int) -> int:
  """The fixed setup (0..rooms-1) clip `seed` is recorded in (`rooms` >= 1)."""
  return int(_stream(seed, 0x5E7).integers(rooms))


def _scene(seed: int, rooms: int, num_views: int, resolution: int, center):
  """(Room, Cameras) of clip `seed`: its own (rooms=0) or its fixed setup's (rooms=N)."""
  if rooms == 0:
    return (room.sample_room(_stream(seed, 0x500)),
            cams.sample_cameras(_stream(seed, 0xCA3), num_views, resolution, center))
  setup = clip_setup(seed, rooms)
  scene = room.sample_room(np.random.default_rng([0x500, 0x5E7, setup]))
  rig = cams.setup_cameras(np.random.default_rng([0xCA3, 0x5E7, setup]), _stream(seed, 0xCA3),
                           num_views, resolution)
  return scene, rig


def render_clip(seed: int, *, num_views: int = 3, num_frames: int = 16, resolution: int = 128,
                action=None, rooms: int = 0, travel: float = 0.0) -> dict:
  """Render clip `seed`: views-first numpy arrays of every modality (see the package docstring).

  action: None (drawn from the seed), a name in ACTIONS or its index.
  rooms: 0 (every clip its own room and rig) or N >= 1 fixed setups (module docstring).
  travel: the people's drift in metres per second (module docstring; 0: none).
  """
  seed = check_positive_int("seed", seed, 0)
  rooms = check_positive_int("rooms", rooms, 0)
  travel = check_travel(travel)
  num_views = check_positive_int("num_views", num_views)
  num_frames = check_positive_int("num_frames", num_frames)
  resolution = check_positive_int("resolution", resolution)
  if action is not None:
    actions.action_index(action)
  identity = appearance.make_identity(seed % NUM_IDENTITIES)
  index, mot = sample_motion(seed, identity, num_frames, action, travel=travel)
  center = mot.root_pos[:, :2].mean(axis=0)
  scene, rig = _scene(seed, rooms, num_views, resolution, center)
  centres, dirs = renderer.pixel_rays(rig.K, rig.R, rig.t, resolution, resolution)
  background = _room_image(scene, centres, dirs, num_views, resolution)
  out = renderer.render(identity.shape, identity.textures, mot, rig, background=background,
                        light=scene.light)
  out["background_depth"] = room.room_depth(scene, centres, dirs).reshape(
      num_views, resolution, resolution)
  out["action"] = np.int32(index)
  out["identity"] = np.int32(identity.index)
  return out


def _room_image(scene, centres, dirs, num_views: int, resolution: int) -> np.ndarray:
  return room.render_room(scene, centres, dirs).reshape(num_views, resolution, resolution, 3)


def render_background(seed: int, *, num_views: int = 3, num_frames: int = 16,
                      resolution: int = 128, rooms: int = 0, travel: float = 0.0) -> np.ndarray:
  """uint8 [V, H, W, 3]: the empty room clip `seed` is filmed in, seen by its cameras (the
  "background" of `render_clip` for the same arguments; nothing is rendered but the room, and
  with `rooms` >= 1, where the rig does not depend on the person, num_frames is unused)."""
  seed = check_positive_int("seed", seed, 0)
  rooms = check_positive_int("rooms", rooms, 0)
  num_views = check_positive_int("num_views", num_views)
  resolution = check_positive_int("resolution", resolution)
  center = None
  if rooms == 0:   # the rig is aimed at the person
    identity = appearance.make_identity(seed % NUM_IDENTITIES)
    motion_ = sample_motion(seed, identity, check_positive_int("num_frames", num_frames),
                            travel=travel)[1]
    center = motion_.root_pos[:, :2].mean(axis=0)
  scene, rig = _scene(seed, rooms, num_views, resolution, center)
  centres, dirs = renderer.pixel_rays(rig.K, rig.R, rig.t, resolution, resolution)
  return _room_image(scene, centres, dirs, num_views, resolution)


def clip_keypoints(seed: int, *, num_views: int = 3, num_frames: int = 16, resolution: int = 128,
                   action=None, rooms: int = 0, travel: float = 0.0) -> np.ndarray:
  """float32 [V, T, 18, 3]: the keypoints `render_clip` gives for the same arguments, from the
  posed body and the cameras alone (no image is rendered)."""
  seed = check_positive_int("seed", seed, 0)
  identity = appearance.make_identity(seed % NUM_IDENTITIES)
  _, mot = sample_motion(seed, identity, check_positive_int("num_frames", num_frames), action,
                         travel=travel)
  center = mot.root_pos[:, :2].mean(axis=0)
  _, rig = _scene(seed, check_positive_int("rooms", rooms, 0),
                  check_positive_int("num_views", num_views),
                  check_positive_int("resolution", resolution), center)
  posed = motion.pose_body(np.asarray(identity.shape, np.float64), mot)
  return renderer.camera_keypoints(posed, rig)

