"""The checks every system passes, by registration: each system `registry.known_systems`
lists, with its `configs/<name>.py:tiny`, gets all of them and needs no code here.

- every stage initialises and trains (>= 2 steps each): its groups move, the others do not;
- the final evaluation and sample of a straight run; `psrjax synthesize` writes a captioned
  video, and `psrjax synthesize --workdir RUN --help` lists the system's options;
- exact resume: restarted from a checkpoint inside the last stage, the same losses, parameters
  and data position as the straight run;
- 1 device equals 8 devices (losses and gradient norms, every step; the first step only for
  the systems in `FIRST_STEP_ONLY`; slow for those and for `LOCKSTEP_SLOW`);
- the generator forward run once per step equals it run inside every phase, and costs fewer
  FLOPs;
- bfloat16: the steps lower for TPU and CUDA with every convolution and matrix product in
  bfloat16 and no CPU-only call, and on the CPU path every convolution (psrjax's CPU calls
  included) and matrix product is bfloat16;
- a bad config field and an unknown system are one-line errors (exit code 2).

The runs are made once per test session (`conformance.Runs`, the `system_runs` fixture of
tests/conftest.py).
"""
import json
import os
import shutil

import imageio.v3 as iio
import jax
import numpy as np
import pytest

import conformance
import train_harness
from psrjax import cli
from psrjax.systems.tasks import strips
from psrjax.train import loop
from psrjax.train import lowering

# Each system's checks run in one test process (`--dist loadgroup`), which computes its runs once.
def _params(slow=frozenset()):
  """One parameter per system, its runs on one xdist worker; those in `slow` marked slow."""
  return [pytest.param(n, marks=[pytest.mark.xdist_group(n)] + [pytest.mark.slow] * (n in slow),
                       id=n) for n in conformance.SYSTEMS]


SYSTEMS = _params()
GRAD_NORMS = "l2_grads/"


def _compared(record: dict) -> dict[str, float]:
  """Loss terms and gradient norms of one step's metrics (update and parameter norms move with
  the rounding noise Adam amplifies on zero-gradient leaves, e.g. biases before a norm)."""
  return {k: v for k, v in record.items()
          if k != "step" and (not k.startswith("l2_") or k.startswith(GRAD_NORMS))}


# Systems whose steps agree only to a looser tolerance, by this factor. INTERnet: its keypoint
# detector's gradient norm differs by 3.6e-5 between 1 and 8 devices at the first step, before
# any update (the per-device batches compile to code that rounds differently, and the
# keypoints' softmax at temperature 0.1 and their Jacobians' inverses amplify it), and by up to
# 8.6e-4 at the third; its equivariance loss then by up to 3.3e-5 (measured on an AVX-512 EPYC).
# CoCosNet video: on a 2-core Intel Xeon with AVX-512 FP16 its warp_self loss differs by 2.3e-5
# (relative) at the 4th step and its domain loss by 1.8e-5, beyond 1e-5 plus its floor (the
# correspondence softmax amplifies the convolutions' rounding); it passed on AMD EPYC and AVX2.
# D²G-Net: on an AVX-512 (BF16) AMD EPYC the UV generator's gradient norm differs by 2.1e-4
# (relative) between 1 and 8 devices at the second step, after the first Adam update (on Intel
# Xeons it passed at 1e-4).
LOOSER = {"internet": 30, "cocovid": 3, "d2gnet": 3, "vid2vid": 30}
# Systems whose 1- and 8-device runs are compared at the first step only. vid2vid: its composite
# frame and warp loss sample images at p + flow(p), and the gradient of a bilinear sample with
# respect to its position jumps where the position crosses a pixel; G's initial flows are ~0,
# right on those jumps, so the devices' rounding already moves G's gradient norm by 5.8e-4
# (relative) at the first step (the warp loss by 6.7e-5, within 30x), and the runs part after the
# first update (2.6e-2 at the second step, 0.2 at the third; a 2-core Intel Xeon).
FIRST_STEP_ONLY = {"vid2vid"}


def _assert_same_steps(got, want, *, what: str, looser: float = 1):
  """Every step's losses agree to 1e-5 and gradient norms to 1e-4 (a sum of squares over every
  parameter; Adam's normalised steps carry earlier rounding differences into it), both times
  `looser`."""
  assert [r["step"] for r in got] == [r["step"] for r in want], what
  for record_a, record_b in zip(got, want):
    a, b = _compared(record_a), _compared(record_b)
    assert a.keys() == b.keys(), (what, a.keys() ^ b.keys())
    for key in a:
      rtol = (1e-4 if key.startswith(GRAD_NORMS) else 1e-5) * looser
      train_harness.assert_close(a[key], b[key], rtol=rtol,
                                 err_msg=f"{what}: {key} at step {record_b['step']}")


def test_every_known_system_is_checked():
  assert {"psrnet", "mfci", "pix2pixhd", "edn"} <= set(conformance.SYSTEMS)
  for name in conformance.SYSTEMS:
    assert os.path.isfile(conformance.config_spec(name).rpartition(":")[0]), name


@pytest.mark.parametrize("name", SYSTEMS)
def test_every_stage_trains_its_groups_and_only_them(name, system_runs):
  runs = system_runs(name)
  stages = runs.system.stages()
  assert all(s.steps >= 2 for s in stages), [(s.name, s.steps) for s in stages]
  result = runs.straight
  assert result.step == sum(s.steps for s in stages) and not result.preempted
  by_step = {r["step"]: r for r in result.history}
  assert sorted(by_step) == list(range(1, result.step + 1))
  groups = {k.split("/", 1)[1] for k in by_step[1] if k.startswith("l2_params/")}
  start = 0
  for stage in stages:
    trained = set(stage.trained_groups())
    before = by_step.get(start)
    for step in range(start + 1, start + stage.steps + 1):
      record = by_step[step]
      for g in trained:
        assert record[f"l2_updates/{g}"] > 0, (stage.name, step, g)
      if before is not None:
        for g in groups - trained:   # frozen this stage: bit for bit
          assert record[f"l2_params/{g}"] == before[f"l2_params/{g}"], (stage.name, step, g)
    start += stage.steps


@pytest.mark.parametrize("name", SYSTEMS)
def test_straight_run_evaluates_and_samples(name, system_runs):
  result = system_runs(name).straight
  values = result.eval_results
  assert values and values["num_examples"] > 0
  assert all(np.isfinite(v) for v in values.values()), values
  for path in (f"samples/{result.step}.gif", f"eval/system/{result.step}.json"):
    assert os.path.isfile(os.path.join(result.workdir, path)), path


@pytest.mark.parametrize("name", SYSTEMS)
def test_synthesize_writes_a_captioned_video(name, system_runs, tmp_path, capsys):
  result, system = system_runs(name).straight, system_runs(name).system
  out = tmp_path / "out.gif"
  assert cli.main(["synthesize", "--workdir", result.workdir, "--seed", "1",
                   "--out", str(out)]) == 0, capsys.readouterr().err
  frames = iio.imread(out)
  t, height = frames.shape[:2]
  rows = [h for h in range(1, height) if h + strips.caption_height(h) == height]
  assert t >= 1 and rows, frames.shape                 # frames under a caption row
  caption = frames[:, :height - rows[0]]
  assert caption.max() > 200 and np.median(caption) < 50   # white names on black
  with pytest.raises(SystemExit) as exit_info:
    cli.main(["synthesize", "--workdir", result.workdir, "--help"])   # --out not needed for help
  assert exit_info.value.code == 0
  text = capsys.readouterr().out
  assert all(option.flag in text for option in system.synthesis_options), text


@pytest.mark.parametrize("name", SYSTEMS)
def test_resume_mid_stage_is_exact(name, system_runs):
  """A run restarted from the straight run's checkpoint inside its last stage ends where the
  straight run ended: the same losses, parameters and data position."""
  runs = system_runs(name)
  straight = runs.straight
  half = runs.resume_step
  assert straight.step - runs.system.stages()[-1].steps < half < straight.step
  workdir = runs.workdir("resume")
  shutil.copytree(os.path.join(straight.workdir, "checkpoints", str(half)),
                  os.path.join(workdir, "checkpoints", str(half)))
  resumed = loop.train(runs.config(), workdir)
  assert resumed.step == straight.step and not resumed.preempted
  train_harness.assert_same_losses(resumed.history, straight.history, rtol=0,
                                   steps=range(half + 1, straight.step + 1))
  jax.tree.map(np.testing.assert_array_equal, train_harness.host_params(resumed),
               train_harness.host_params(straight))
  position = lambda d: json.load(open(os.path.join(
      d, "checkpoints", str(straight.step), "data", "process_0-of-1.json")))
  assert position(workdir) == position(straight.workdir)   # the data iterator's position


# Checks marked slow (`-m slow`), out of the README's test command: the 1- vs 8-device check of a
# FIRST_STEP_ONLY system (it trains 8 devices for the whole run to compare one step), and every
# check that reads the 1-device lockstep run of a LOCKSTEP_SLOW system. CoCosNet video's lockstep
# compiles six steps of its three stages on one device (about 4 of a 2-core CPU's minutes, a
# fifth of the suite); the forward-once checks of the other systems cover the shared step code.
# Liquid Warping GAN's one G-then-D stage is the GAN stage pix2pixHD's checks already cover.
LOCKSTEP_SLOW = {"cocovid", "lwgan"}


DEVICE_SYSTEMS = _params(FIRST_STEP_ONLY | LOCKSTEP_SLOW)
LOCKSTEP_SYSTEMS = _params(LOCKSTEP_SLOW)


@pytest.mark.parametrize("name", DEVICE_SYSTEMS)
def test_one_device_equals_eight_devices(name, system_runs):
  runs = system_runs(name)
  got, want = runs.lockstep.history, runs.straight.history
  if name in FIRST_STEP_ONLY:
    got, want = got[:1], want[:1]
  _assert_same_steps(got, want, what="1 device vs 8 devices", looser=LOOSER.get(name, 1))


@pytest.mark.parametrize("name", LOCKSTEP_SYSTEMS)
def test_forward_once_equals_forward_in_every_phase(name, system_runs):
  lockstep = system_runs(name).lockstep
  _assert_same_steps(lockstep.per_phase, lockstep.history, what="forward in every phase vs once")


@pytest.mark.parametrize("name", LOCKSTEP_SYSTEMS)
def test_forward_once_saves_flops(name, system_runs):
  """The step that saves the forward's VJP counts fewer FLOPs than the one running the forward
  in every phase (XLA's common-subexpression elimination merges repeated XLA ops, not the
  repeated CPU convolution calls)."""
  for stage, (once, per_phase) in system_runs(name).lockstep.flops.items():
    assert 0 < once < per_phase, (stage, once, per_phase)


@pytest.mark.parametrize("platform", ["tpu", "cuda"])
@pytest.mark.parametrize("name", SYSTEMS)
def test_train_steps_lower_for_accelerators_in_bfloat16(name, platform):
  """With XLA's convolutions (what GPUs and TPUs run): no CPU-only call, every convolution in
  bfloat16 and every matrix product outside the float32 coordinate geometry too."""
  for stage, traced in conformance.traced_steps(name, "xla"):
    text = traced.lower(lowering_platforms=(platform,)).as_text()
    cpu_calls = {t for t in lowering.custom_call_targets(text)
                 if t.startswith(lowering.CPU_CONV_TARGET_PREFIX)}
    assert not cpu_calls, (stage, cpu_calls)
    convs = [types for op, types in lowering.compute_dtypes(text) if op == "stablehlo.convolution"]
    assert convs and all(set(t) == {"bf16"} for t in convs), (stage, convs[:5])
    products = [d for op, d in lowering.jaxpr_compute_dtypes(traced.jaxpr) if op == "dot_general"]
    assert all(set(d) == {"bfloat16"} for d in products), (stage, products[:5])


@pytest.mark.parametrize("name", SYSTEMS)
def test_bfloat16_reaches_every_convolution_on_the_cpu_path(name):
  for stage, traced in conformance.traced_steps(name, None):
    ops = lowering.jaxpr_compute_dtypes(traced.jaxpr)
    assert ops, stage
    wide = [(op, dtypes) for op, dtypes in ops if set(dtypes) != {"bfloat16"}]
    assert not wide, (stage, wide[:5])


@pytest.mark.parametrize("name", SYSTEMS)
def test_bad_config_field_and_unknown_system_are_one_line_errors(name, tmp_path, capsys):
  spec = conformance.config_spec(name)
  for override, words in (("--config.model.no_such_field=1", "no_such_field"),
                          ("--config.system=no_such_system", "unknown system")):
    workdir = tmp_path / override.split("=")[0].rsplit(".", 1)[-1]
    assert cli.main(["train", "--config", spec, "--workdir", str(workdir), override]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err
    assert not workdir.exists()
