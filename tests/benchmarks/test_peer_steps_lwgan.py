"""benchmarks/peer_steps.py's Liquid Warping GAN peer: the fixed tensors standing in for the
authors' body recovery (HMR, SMPL, the mesh renderer) and the stand-in that returns them."""
import pytest

import bench_vs_peer
import peer_steps

torch = pytest.importorskip("torch")


def test_lwgan_is_a_peer_with_a_config_and_a_marker():
  assert "lwgan" in peer_steps.PEERS and bench_vs_peer.CONFIGS["lwgan"] == "configs/lwgan.py"
  assert "lwgan" not in bench_vs_peer.EXTRA   # the paper config: batch 4 at 256x256
  assert "models/impersonator_trainer.py" in bench_vs_peer.MARKERS["lwgan"]


def test_fixed_inputs_have_the_body_recoverys_shapes_and_encodings():
  f = peer_steps.lwgan_inputs(batch=2, res=32)
  assert f["images"].shape == (2, 2, 3, 32, 32) and f["images"].abs().max() <= 1
  assert f["cond"].shape == (2, 2, 3, 32, 32) and f["j2d"].shape == (2, 2, 19, 2)
  assert f["T"].shape == (2, 32, 32, 2)
  background = f["cond"][:, :, 2]                      # uv_seg: (0, 0, 1) on the background
  assert set(background.unique().tolist()) == {0.0, 1.0}
  assert 0.2 < background.mean() < 0.95                # a body blob in every frame
  assert torch.all(f["cond"][:, :, :2][background[:, :, None].expand(-1, -1, 2, -1, -1) > 0] == 0)
  uv = f["cond"][:, :, :2]
  assert uv.min() >= 0 and uv.max() <= 1
  target_bg = background[1] > 0                        # T: -2 exactly off the target's body
  assert torch.all(f["T"][target_bg] == -2)
  assert f["T"][~target_bg].abs().max() <= 1
  assert f["j2d"].abs().max() <= 1
  again = peer_steps.lwgan_inputs(batch=2, res=32)
  assert all(torch.equal(f[k], again[k]) for k in f)


def test_the_stand_in_tells_source_from_target_by_the_smpl_parameters():
  f = peer_steps.lwgan_inputs(batch=2, res=16)
  body = peer_steps.lwgan_body(f)
  for which in (0, 1):
    info = body.get_details(torch.full((2, 85), float(which)))
    assert torch.equal(info["j2d"], f["j2d"][which])
    f2verts, fim, wim = body.render_fim_wim(info["cam"], info["verts"])
    assert f2verts.shape[0] == 2 and f2verts.dim() == 4
    cond, _ = body.encode_fim(info["cam"], info["verts"], fim=fim, transpose=True)
    assert torch.equal(cond, f["cond"][which])
  assert torch.equal(body.cal_bc_transform(f2verts, fim, wim), f["T"])
