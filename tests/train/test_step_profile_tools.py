"""benchmarks/profile_step.py (thunks attributed to the parts of a step) and
benchmarks/bench_vs_peer.py (pairs against a peer's PyTorch code): their pure parts, the peers'
commands and configs, and benchmarks/peer_steps.py's stand-in for vid2vid's FlowNet2."""
from __future__ import annotations

import argparse
import os
import sys

import pytest

import bench_vs_peer
import peer_steps
import profile_step

from psrjax import config_utils

HLO = """
  %ffi_call.3 = f32[1,16,16,8]{3,2,1,0} custom-call(%a, %b), custom_call_target="psrjax_conv_forward", metadata={op_name="jit(train_step)/jvp(GlobalGenerator)/GlobalGenerator._forward/block0/conv1/ffi_call" stack_frame_id=1}
  %ffi_call.4 = f32[3,3,8,8]{3,2,1,0} custom-call(%a, %c), custom_call_target="psrjax_conv_backward_weights", metadata={op_name="jit(train_step)/transpose(jvp(MultiScaleDiscriminator))/scale0/conv0/ffi_call"}
  %multiply_add_fusion.2 = f32[8]{0} fusion(%p, %g), kind=kLoop, calls=%fc, metadata={op_name="jit(train_step)/optimizer_g/add"}
  ROOT %add_fusion = f32[8]{0} fusion(%x), kind=kLoop, calls=%fd, metadata={op_name="jit(train_step)/prepare/render/add"}
  %sum.1 = f32[] reduce(%y), metadata={op_name="jit(train_step)/reduce_sum"}
  %ffi_call.5 = f32[1,8,8,4]{3,2,1,0} custom-call(%a, %d), custom_call_target="psrjax_conv_forward", metadata={op_name="jit(train_step)/jvp(KeypointDetector)/KeypointDetector._forward/predictor/decoder/up_blocks_0/conv/ffi_call"}
"""


def test_instructions_are_attributed_to_the_parts_of_the_step():
  names = profile_step.op_names(HLO)
  assert {k: profile_step.part_of(v) for k, v in names.items()} == {
      "ffi_call.3": "GlobalGenerator forward", "ffi_call.4": "MultiScaleDiscriminator backward",
      "multiply_add_fusion.2": "optimizer", "add_fusion": "data (decode + prepare)",
      "sum.1": "other (losses, norms)", "ffi_call.5": "KeypointDetector forward"}


def test_concurrent_time_is_shared_and_parts_add_up_to_busy_time():
  # a: 0-10 us alone; a and b 10-20 us together; b 20-40 us alone; nothing 40-50; c 50-60.
  times = profile_step._shared_times([(0, 20, "a"), (10, 40, "b"), (50, 60, "c")])
  assert times == pytest.approx({"a": 15e-6, "b": 25e-6, "c": 10e-6})
  parts = profile_step.breakdown(HLO, {"ffi_call.3": 3.0, "ffi_call.4": 1.0, "other": 9.0},
                                 steps=2)
  assert parts == {"GlobalGenerator forward": 1.5, "MultiScaleDiscriminator backward": 0.5}


def test_gpu_traces_count_the_device_kernels_by_their_hlo_op():
  # A GPU trace holds host events (launches, the executor) and the device's kernels; only the
  # latter count, named by their instruction. A CPU trace has no device process.
  # The device's derived lines (the module spanning the step) do not count either.
  meta = [{"ph": "M", "name": "process_name", "pid": 1, "args": {"name": "/host:CPU"}},
          {"ph": "M", "name": "process_name", "pid": 7, "args": {"name": "/device:GPU:0"}},
          {"ph": "M", "name": "thread_name", "pid": 7, "tid": 2, "args": {"name": "Stream #13"}},
          {"ph": "M", "name": "thread_name", "pid": 7, "tid": 3, "args": {"name": "XLA Modules"}}]
  kernels = [
      {"ph": "X", "pid": 1, "tid": 1, "ts": 0, "dur": 50, "name": "input_scatter_fusion.3",
       "args": {"hlo_op": "input_scatter_fusion.3"}},
      {"ph": "X", "pid": 7, "tid": 2, "ts": 5, "dur": 30, "name": "input_scatter_fusion_3",
       "args": {"hlo_op": "input_scatter_fusion.3"}},
      {"ph": "X", "pid": 7, "tid": 2, "ts": 40, "dur": 10, "name": "sm90_xmma_fprop", "args": {}},
      {"ph": "X", "pid": 7, "tid": 3, "ts": 0, "dur": 60, "name": "jit_train_step", "args": {}}]
  spans = profile_step._thunk_spans(meta + kernels)
  assert spans == [(5, 35, "input_scatter_fusion.3"), (40, 50, "sm90_xmma_fprop")]
  # A kernel without an `hlo_op` is found by its kernel name.
  hlo = '  %multiply_add_fusion.2 = f32[8]{0} fusion(%p), metadata={op_name="jit(s)/optimizer_g/add"}'
  times = {"multiply_add_fusion_2": 3.0, "sm90_xmma_fprop": 1.0}
  assert profile_step.breakdown(hlo, times, 1) == {"optimizer": 3.0}
  host = [dict(e, pid=1) for e in kernels[:3]] + [
      {"ph": "X", "pid": 1, "ts": 0, "dur": 99, "name": "ThunkExecutor::Execute"}]
  assert [s[2] for s in profile_step._thunk_spans(meta[:1] + host)] == [
      "input_scatter_fusion.3", "input_scatter_fusion_3", "sm90_xmma_fprop"]


def test_time_is_split_by_what_ran_it():
  times = {"ffi_call.3": 3.0, "ffi_call.5": 1.0, "ffi_call.4": 1.0, "multiply_add_fusion.2": 0.5,
           "sum.1": 0.25, "not_in_the_module": 9.0}
  assert profile_step.by_kind(HLO, times, steps=1) == {
      "psrjax_conv_forward": 4.0, "psrjax_conv_backward_weights": 1.0,
      "XLA multiply_add_fusion": 0.5, "XLA sum": 0.25}


def test_busy_pairs_are_left_out_of_the_median():
  pairs = [{"ratio": 1.2, "psrjax_s": 1.0, "peer_s": 1.2, "busy": False},
           {"ratio": 0.5, "psrjax_s": 2.0, "peer_s": 1.0, "busy": True},
           {"ratio": 1.0, "psrjax_s": 1.1, "peer_s": 1.1, "busy": False}]
  s = bench_vs_peer.summary(pairs)
  assert (s["clean_pairs"], s["median_ratio"], s["min_ratio"], s["max_ratio"]) == (2, 1.1, 1.0,
                                                                                   1.2)
  assert bench_vs_peer.summary([pairs[1]]) == {"clean_pairs": 0}


def test_a_command_is_measured_with_the_cpu_others_used(tmp_path):
  result = bench_vs_peer.run_measured([sys.executable, "-c", "print('{\"step_time_s\": 0.5}')"])
  assert result["step_time_s"] == 0.5 and result["wall_s"] > 0 and result["other_cores"] >= 0
  with pytest.raises(RuntimeError, match="failed"):
    bench_vs_peer.run_measured([sys.executable, "-c", "raise SystemExit(3)"])


def test_the_cpu_description_names_its_vector_flags():
  model, flags = bench_vs_peer.cpu_description()
  assert model and all(bench_vs_peer.FLAGS.match(f) for f in flags)


def test_every_peer_has_a_step_and_a_config_its_overrides_apply_to(tmp_path):
  assert set(bench_vs_peer.CONFIGS) == set(peer_steps.PEERS)
  configs = {}
  for peer in bench_vs_peer.CONFIGS:
    args = argparse.Namespace(peer=peer, checkout="/x", steps=2, warmup=1, threads=1,
                              workdir=str(tmp_path))
    psrjax, other = bench_vs_peer.commands(args, "vgg.pth").values()
    assert other[other.index("--checkout") + 1] == "/x" and peer in other
    overrides, _ = config_utils.split_overrides(psrjax)
    configs[peer] = c = config_utils.load_config(
        os.path.join(bench_vs_peer.REPO, psrjax[psrjax.index("--config") + 1]), overrides)
    assert (c.loss.vgg_net, c.loss.vgg_weights) == ("vgg19", "vgg.pth")
  # vid2vid's peer step: one clip of 12 frames at 256x256, the 6-channel IUV + stick label
  c = configs["vid2vid"]
  assert (c.data.resolution, c.data.frames_per_example, c.train.batch_size) == (256, 12, 1)
  assert (c.schedule.clip_doublings, c.model.remat) == (0, "blocks")   # one 12-frame stage
  m = c.model
  assert (m.ngf, m.n_downsample, m.n_blocks, m.n_frames_g) == (128, 3, 9, 3)
  assert (m.num_d, m.ndf, m.n_scales_temporal, m.iuv) == (2, 64, 2, True)
  assert c.pose.label == "stick"


def test_vid2vid_flownet_stand_in_returns_fixed_flows_in_flownets_shapes():
  torch = pytest.importorskip("torch")
  net = peer_steps.fixed_flownet_module(8, 6, frames=5).FlowNet()
  net.initialize(None)
  flow, conf = net(torch.zeros(1, 3, 3, 8, 6), torch.zeros(1, 3, 3, 8, 6))
  assert flow.shape == (1, 3, 2, 8, 6) and conf.shape == (1, 3, 1, 8, 6)
  again, _ = net(torch.ones(1, 3, 3, 8, 6), torch.ones(1, 3, 3, 8, 6))
  assert torch.equal(flow, again) and set(conf.unique().tolist()) <= {0.0, 1.0}
  flow2, _ = net(torch.zeros(2, 3, 8, 6), torch.zeros(2, 3, 8, 6))
  assert flow2.shape == (2, 2, 8, 6)
