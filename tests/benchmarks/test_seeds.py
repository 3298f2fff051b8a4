"""benchmarks/seeds.py: the noise bands of the results tables, their claims' verdicts, the
seeds' workdirs, and internet_table.py's `--seeds` (its training replaced by canned results)."""
import json
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

from benchmarks import internet_table  # noqa: E402  pylint: disable=g-import-not-at-top
from benchmarks import seeds  # noqa: E402  pylint: disable=g-import-not-at-top


def _row(name, **per_seed):
  """A row whose seeds hold `metric=[value per seed]`."""
  count = len(next(iter(per_seed.values())))
  return seeds.Row(name, name.upper(), [{m: v[i] for m, v in per_seed.items()}
                                        for i in range(count)])


def test_cells_are_the_mean_and_the_sample_standard_deviation():
  assert seeds.mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)   # ddof=1: sqrt(2 / 2)
  assert seeds.cell([0.5977, 0.5989, 0.6001]) == "0.5989 ± 0.0012"
  assert seeds.cell([23.5, 24.5]) == "24.00 ± 0.7071"   # each number as results_table writes it
  assert seeds.cell([0.5989]) == "0.5989"
  assert seeds.cell(None) == "-"


@pytest.mark.parametrize("better, worse, higher, verdict", [
    ([0.96, 0.98], [0.89, 0.91], True, "reproduced"),    # 0.07 apart, band 2 x 0.0141
    ([0.96, 0.98], [0.95, 0.97], True, "within noise"),  # 0.01 apart
    ([0.89, 0.91], [0.96, 0.98], True, "reversed"),
    ([0.035, 0.055], [0.121, 0.141], False, "reproduced"),   # lower is better
    ([0.121, 0.141], [0.035, 0.055], False, "reversed"),
])
def test_verdicts_hold_beyond_two_pooled_standard_deviations(better, worse, higher, verdict):
  rows = [_row("a", m=better), _row("b", m=worse)]
  judged = seeds.judge(seeds.Claim("a", "b", "m", higher, "Table 9"), rows)
  assert judged["verdict"] == verdict
  assert judged["band"] == pytest.approx(2 * 0.0141421, rel=1e-4)


def test_the_band_pools_both_rows_and_its_edge_is_within_noise():
  rows = [_row("a", m=[1.0, 3.0]), _row("b", m=[0.0, 0.0])]   # s_a = sqrt(2), s_b = 0
  judged = seeds.judge(seeds.Claim("a", "b", "m"), rows)
  assert (judged["difference"], judged["band"]) == (pytest.approx(2.0), pytest.approx(2.0))
  assert judged["verdict"] == "within noise"
  assert seeds.verdict(2.01, 2.0) == "reproduced" and seeds.verdict(-2.01, 2.0) == "reversed"


def test_paired_claims_take_the_band_of_the_per_seed_differences():
  """Two outputs of the same runs: seed noise they share (here 0.01 between seeds) leaves the
  paired band (differences 0.002 and 0.004: std 0.00141) and fills the pooled one."""
  rows = [_row("a", m=[0.572, 0.564]), _row("b", m=[0.570, 0.560])]
  paired = seeds.judge(seeds.Claim("a", "b", "m", paired=True), rows)
  pooled = seeds.judge(seeds.Claim("a", "b", "m"), rows)
  assert paired["band"] == pytest.approx(2 * 0.00141421, rel=1e-4)
  assert (paired["verdict"], pooled["verdict"]) == ("reproduced", "within noise")
  assert "paired band 0.00283: reproduced" in seeds.claims_text([paired])
  # Rows of 2 and 1 seeds: the pair they share (seed 0), so no band, and seed 0's means.
  one = seeds.judge(seeds.Claim("a", "b", "m", paired=True), [rows[0], _row("b", m=[0.5])])
  assert (one["better_mean"], one["worse_mean"], one["band"]) == (0.572, 0.5, None)
  assert one["verdict"] == "one seed: no noise band (as claimed)"


def test_one_seed_has_no_band_only_a_direction():
  rows = [_row("a", m=[0.9]), _row("b", m=[0.8, 0.7])]
  ahead = seeds.judge(seeds.Claim("a", "b", "m"), rows)
  behind = seeds.judge(seeds.Claim("a", "b", "m", higher_is_better=False), rows)
  assert ahead["band"] is None
  assert ahead["verdict"] == "one seed: no noise band (as claimed)"
  assert behind["verdict"] == "one seed: no noise band (the other way)"


def test_claims_on_absent_rows_are_left_out_and_absent_metrics_not_measured():
  rows = [_row("a", m=[1.0, 2.0]), _row("b", n=[1.0, 2.0])]
  assert seeds.judge(seeds.Claim("a", "c", "m"), rows) is None
  assert seeds.judge(seeds.Claim("a", "b", "m"), rows)["verdict"] == "not measured"


def test_paper_claims_state_the_tables_own_orderings():
  numbers = {"ours": {"ssim": 0.835, "lpips": 0.035}, "base": {"ssim": 0.841, "lpips": 0.044}}
  claims = seeds.paper_claims("Table 2", numbers, [("ours", "base")], ("ssim", "lpips"),
                              lower=("lpips",))
  assert claims == [seeds.Claim("base", "ours", "ssim", True, "Table 2: ssim 0.841 vs 0.835"),
                    seeds.Claim("ours", "base", "lpips", False, "Table 2: lpips 0.035 vs 0.044")]


def test_seed_zero_keeps_the_rows_workdir_and_finished_runs_are_read_back(tmp_path):
  calls = []

  def train(workdir, seed):
    def compute():
      calls.append((os.path.relpath(workdir, tmp_path), seed))
      return {"m": float(seed)}
    return seeds.read_or_run(workdir, compute)

  row = seeds.run_row(str(tmp_path), "full", "Full", train, 2)
  assert calls == [("full", 0), ("full-seed1", 1)]
  assert row.seeds == [{"m": 0.0}, {"m": 1.0}]
  row = seeds.run_row(str(tmp_path), "full", "Full", train, 3)   # only seed 2 is new
  assert calls[2:] == [("full-seed2", 2)]
  assert row.seeds == [{"m": 0.0}, {"m": 1.0}, {"m": 2.0}]


def test_seeds_takes_a_positive_count():
  with pytest.raises(SystemExit):
    internet_table.main(["--workdir", "/nonexistent", "--seeds", "0"])


# Canned evaluations: FoM's carries the copied source frame's scores, MS c's is clearly ahead.
CANNED = {"fom": {"ms_ssim": 0.895, "ssim": 0.70, "lpips": 0.121, "interp_psnr": 23.0,
                  "ssim/copy": 0.55, "lpips/copy": 0.30, "psnr/copy": 15.0},
          "lwgan": {"ms_ssim": 0.93, "ssim": 0.75, "lpips": 0.08, "interp_psnr": 22.0,
                    "ssim/copy": 0.55, "lpips/copy": 0.30},
          "ms_b": {"ms_ssim": 0.958, "ssim": 0.80, "lpips": 0.037, "interp_psnr": 23.6},
          "ms_c": {"ms_ssim": 0.960, "ssim": 0.80, "lpips": 0.035, "interp_psnr": 24.2}}


def _fake_run(calls):
  def run(workdir, config):
    name = os.path.basename(workdir).split("-seed")[0]
    calls.append((os.path.basename(workdir), config.seed))
    jitter = 0.002 * config.seed   # seeds 0 and 1 differ by 0.002: std 0.00141
    return {k: v + jitter for k, v in CANNED[name].items()}
  return run


def test_internet_table_reports_seeds_the_copy_row_and_verdicts(tmp_path, monkeypatch, capsys):
  calls, travels = [], []
  fake = _fake_run(calls)
  def run(workdir, config):
    travels.append(config.data.travel)   # FOMM's row reads INTERnet's world
    return fake(workdir, config)
  monkeypatch.setattr(internet_table, "run", run)
  assert internet_table.main(["--workdir", str(tmp_path), "--rows", "fom,ms_b,ms_c",
                              "--seeds", "2", "--config", "configs/internet.py"]) == 0
  assert calls == [("fom", 0), ("fom-seed1", 1), ("ms_b", 0), ("ms_b-seed1", 1),
                   ("ms_c", 0), ("ms_c-seed1", 1)]
  assert travels == [0.2] * 6      # the paper config's drift, not FOMM runlocal's 0.5
  text = capsys.readouterr().out
  assert "seeds 0..1 per row" in text
  lines = text.splitlines()
  assert ("| FoM | 0.8960 ± 0.00141 | 0.7010 ± 0.00141 | 0.1220 ± 0.00141 | 23.00 ± 0.00141 |"
          in text)
  assert "| copy of the source frame | - | 0.5510 ± 0.00141 | 0.3010 ± 0.00141 | - |" in text
  assert ("- Ours (MS c) ahead of FoM on lpips (lower is better; Table 2: lpips 0.035 vs 0.121): "
          "0.0360 vs 0.1220, difference 0.0860, band 0.00283: reproduced") in lines
  assert any(line.startswith("- Ours (MS c) ahead of MS b) on ms_ssim") and
             line.endswith(": within noise") for line in lines)
  assert any(line.startswith("- FoM ahead of copy of the source frame on ssim") and
             line.endswith(": reproduced") for line in lines)
  saved = json.loads((tmp_path / "table.json").read_text())
  assert [row["name"] for row in saved["rows"]] == ["copy", "fom", "ms_b", "ms_c"]
  assert saved["rows"][1]["seeds"][1]["ssim"] == pytest.approx(0.702)
  assert saved["rows"][1]["std"]["ssim"] == pytest.approx(0.0014142, rel=1e-4)
  assert {c["verdict"] for c in saved["claims"]} == {"reproduced", "within noise"}


def test_internet_table_with_population_statistics_rescores_every_run(tmp_path, monkeypatch,
                                                                      capsys):
  monkeypatch.setattr(internet_table, "run", _fake_run([]))
  rescored = []
  def population(workdir, results):
    rescored.append(os.path.basename(workdir))
    return {k: v + 0.01 for k, v in results.items()}
  monkeypatch.setattr(seeds, "population_results", population)
  argv = ["--workdir", str(tmp_path), "--rows", "fom,ms_c", "--seeds", "2"]
  assert internet_table.main(argv) == 0
  assert not rescored
  assert internet_table.main(argv + ["--batch-norm", "population"]) == 0
  assert rescored == ["fom", "fom-seed1", "ms_c", "ms_c-seed1"]
  text = capsys.readouterr().out
  assert "batch norms with population statistics" in text
  assert "| copy of the source frame | - | 0.5610 ± 0.00141 |" in text
  batch = json.loads((tmp_path / "table.json").read_text())
  population = json.loads((tmp_path / "table-population.json").read_text())
  assert population["rows"][1]["mean"]["ssim"] == pytest.approx(batch["rows"][1]["mean"]["ssim"]
                                                                + 0.01)


def test_a_copy_row_without_seed_noise_takes_the_models_deviation_as_its_band(
    tmp_path, monkeypatch, capsys):
  """Every run scores the same copied frames: the copy row is one exact result, and a claim
  against it holds beyond twice the model's own seed deviation."""
  fake = _fake_run([])
  def run(workdir, config):
    copy = {"ssim/copy": 0.795, "lpips/copy": 0.30}
    return {**{k: v for k, v in fake(workdir, config).items() if "/" not in k}, **copy}
  monkeypatch.setattr(internet_table, "run", run)
  assert internet_table.main(["--workdir", str(tmp_path), "--rows", "fom,ms_c",
                              "--seeds", "3"]) == 0
  lines = capsys.readouterr().out.splitlines()
  assert "| copy of the source frame | - | 0.7950 | 0.3000 | - | - | - | - |" in lines
  # MS c's SSIM: 0.800, 0.802, 0.804 (std 0.002): 0.0070 ahead, beyond 2 x 0.002 (pooled
  # with a zero deviation it would be 2 x 0.0014).
  assert ("- Ours (MS c) ahead of copy of the source frame on ssim (higher is better; beats "
          "copying the source frame): 0.8020 vs 0.7950, difference 0.007, band 0.004: "
          "reproduced") in lines
  saved = json.loads((tmp_path / "table.json").read_text())
  assert saved["rows"][0]["seeds"] == [{"ssim": 0.795, "lpips": 0.30}]
  assert [row["exact"] for row in saved["rows"]] == [True, False, False]


def test_internet_table_without_copy_scores_has_no_copy_row(tmp_path, monkeypatch, capsys):
  monkeypatch.setitem(CANNED, "fom", {k: v for k, v in CANNED["fom"].items() if "/" not in k})
  monkeypatch.setattr(internet_table, "run", _fake_run([]))
  assert internet_table.main(["--workdir", str(tmp_path), "--rows", "fom,ms_c"]) == 0
  text = capsys.readouterr().out
  assert "copy" not in text.partition("\n\n")[2]
  assert "| FoM | 0.8950 | 0.7000 | 0.1210 | 23.00 |" in text
  assert "0.0350 vs 0.1210, difference 0.0860, band -: one seed: no noise band (as claimed)" in text


def _scores(seed):
  return {"ssim": 0.8 + 0.001 * seed, "lpips": 0.05, "psnr": 22.0, "steps": 4.0}


@pytest.mark.parametrize("script, argv, workdirs, claim", [
    ("cocovid_ablation", ["--variants", "full,no_ts"],
     ["full", "full-seed1", "no_ts", "no_ts-seed1", "pix2pixhd", "pix2pixhd-seed1"],
     "- pix2pixHD ahead of Full on ssim (higher is better; Table 2: ssim 0.841 vs "
     "0.835): 0.8005 vs 0.8005, difference 0.0000, band 0.00141: within noise"),
    ("cocovid_ablation", ["--variants", "full", "--baselines", "vid2vid:50,pix2pix"],
     ["full", "full-seed1", "vid2vid_50", "vid2vid_50-seed1", "pix2pix", "pix2pix-seed1"],
     "- Full ahead of pix2pix on lpips (lower is better; Table 2: lpips 0.035 vs "
     "0.073): 0.0500 vs 0.0500, difference -0.0000, band 0.0000: within noise"),
    ("d2gnet_ablation", ["--init-from", "/uv", "--variants", "full,no_d2g", "--baselines", "edn"],
     ["full", "full-seed1", "no_d2g", "no_d2g-seed1", "edn", "edn-seed1"],
     "- D²G-Net (full) ahead of Everybody Dance Now on psnr (higher is better; Table 1: psnr "
     "37.44 vs 37.1): 22.00 vs 22.00, difference 0.0000, band 0.0000: within noise"),
    ("d2gnet_ablation", ["--init-from", "/uv", "--variants", "full", "--baselines", "edn,vid2vid"],
     ["full", "full-seed1", "edn", "edn-seed1", "vid2vid", "vid2vid-seed1"],
     "- Everybody Dance Now ahead of vid2vid on r_psnr (higher is better; Table 1: r_psnr "
     "36.41 vs 35.91): - vs -, difference -, band -: not measured"),
])
def test_ablations_run_every_row_over_the_seeds(script, argv, workdirs, claim, tmp_path,
                                                monkeypatch, capsys):
  module = __import__(f"benchmarks.{script}", fromlist=["run"])
  calls = []
  def run(workdir, config):
    calls.append((os.path.basename(workdir), config.seed))
    return _scores(config.seed)
  monkeypatch.setattr(module, "run", run)
  assert module.main(["--workdir", str(tmp_path), "--seeds", "2", *argv]) == 0
  assert calls == [(w, int("seed1" in w)) for w in workdirs]
  text = capsys.readouterr().out
  assert "0.8005 ± 0.000707" in text
  assert claim in text.splitlines(), text
  if "vid2vid:50" in argv:  # a baseline's own steps
    assert "| vid2vid, 50 steps |" in text


def test_d2gnet_table_runs_baselines_alone_and_claims_nothing_of_lwgan(tmp_path, monkeypatch,
                                                                       capsys):
  """Liquid Warping GAN's row (reference only, as in the paper) needs no UV pre-training; the
  D²G-Net variants do."""
  from benchmarks import d2gnet_ablation  # pylint: disable=g-import-not-at-top
  specs = []
  def run(workdir, config):
    specs.append((os.path.basename(workdir), config.system, config.data.get("protocol")))
    return _scores(config.seed)
  monkeypatch.setattr(d2gnet_ablation, "run", run)
  argv = ["--workdir", str(tmp_path), "--variants", "", "--baselines", "lwgan,edn"]
  assert d2gnet_ablation.main(argv + ["--seeds", "2"]) == 0
  assert specs[:2] == [("lwgan", "lwgan", "person"), ("lwgan-seed1", "lwgan", "person")]
  text = capsys.readouterr().out
  assert "| Liquid Warping GAN (reference) | 0.8005 ± 0.000707 |" in text
  assert "Liquid Warping GAN" not in text.partition("ahead of")[2]
  with pytest.raises(SystemExit):
    d2gnet_ablation.main(["--workdir", str(tmp_path), "--variants", "full"])
  assert "--init-from" in capsys.readouterr().err
  with pytest.raises(SystemExit):
    d2gnet_ablation.main(argv[:4] + ["--baselines", "lwgan_uv"])
  assert "--surface-from" in capsys.readouterr().err
  specs.clear()
  monkeypatch.setattr(d2gnet_ablation, "run", lambda workdir, config: specs.append(
      config.data.surface_from) or _scores(config.seed))
  assert d2gnet_ablation.main(argv[:4] + ["--baselines", "lwgan,lwgan_uv", "--surface-from",
                                          "/uv2d"]) == 0
  assert specs == ["", "/uv2d"]


@pytest.mark.parametrize("script", ["cocovid_ablation", "d2gnet_ablation"])
def test_ablations_name_unknown_baselines(script, tmp_path, capsys):
  module = __import__(f"benchmarks.{script}", fromlist=["main"])
  with pytest.raises(SystemExit):
    module.main(["--workdir", str(tmp_path), "--init-from", "/uv", "--baselines", "vid2vdi"]
                if script == "d2gnet_ablation" else
                ["--workdir", str(tmp_path), "--baselines", "vid2vdi"])
  assert "unknown baselines ['vid2vdi']; known: " in capsys.readouterr().err


def _mfci_results(seed):
  """An MFCI run's canned evaluation: the fused model's VFID half the baseline's, + seed."""
  return {"num_examples": 4.0, **{f"{m}/{o}": v + seed for o, scale in (("single", 1.0),
                                                                        ("fused", 0.5))
                                  for m, v in (("vfid", 10.0 * scale), ("psnr", 22.0),
                                               ("ssim", 0.5), ("m_ssim", 0.4),
                                               ("m_psnr", 20.0), ("tempe", 0.001),
                                               ("mask_iou", 0.6))}}


def test_mfci_fused_runs_start_from_their_seeds_baseline(tmp_path, monkeypatch, capsys):
  from benchmarks import mfci_ablation  # pylint: disable=g-import-not-at-top
  calls = []
  results = _mfci_results
  def single(base, workdir, steps, vgg, cache, sets):
    calls.append((os.path.basename(workdir), dict(sets)["seed"]))
    return results(int(dict(sets)["seed"]))
  def fused(base, workdir, single_dir, steps, overrides, cache, sets):
    calls.append((os.path.basename(workdir), os.path.basename(single_dir), dict(sets)["seed"]))
    return results(int(dict(sets)["seed"]))
  monkeypatch.setattr(mfci_ablation, "train_single", single)
  monkeypatch.setattr(mfci_ablation, "train_fused", fused)
  assert mfci_ablation.main(["--workdir", str(tmp_path), "--variants", "rb6", "--seeds", "2"]) == 0
  assert calls == [("single", "0"), ("single-seed1", "1"), ("rb6", "single", "0"),
                   ("rb6-seed1", "single-seed1", "1")]
  lines = capsys.readouterr().out.splitlines()
  assert "| single-frame (MSE + GAN) | 10.50 ± 0.7071 | 22.50 ± 0.7071 |" in "\n".join(lines)
  assert ("- MSE + VGG + Fusion_RB6 ahead of single-frame (MSE + GAN) on vfid (lower is better; "
          "Table 1: vfid 7.99 vs 10.25): 5.5000 vs 10.50, difference 5.0000, paired band 0.0000: "
          "reproduced") in lines   # seed i's fused run is trained from seed i's baseline


def test_seeded_rows_run_over_the_seeds_and_the_others_once(tmp_path, monkeypatch, capsys):
  """--seeded-rows: the fused model and its baseline at 2 seeds, another variant once; the
  baseline follows any seeded fused row, whose seed i starts from the baseline's seed i."""
  from benchmarks import cocovid_ablation, mfci_ablation  # pylint: disable=g-import-not-at-top
  calls = []
  def single(base, workdir, *args):
    calls.append(os.path.basename(workdir))
    return _mfci_results(int(dict(args[-1])["seed"]))
  def fused(base, workdir, single_dir, *args):
    calls.append((os.path.basename(workdir), os.path.basename(single_dir)))
    return _mfci_results(int(dict(args[-1])["seed"]))
  monkeypatch.setattr(mfci_ablation, "train_single", single)
  monkeypatch.setattr(mfci_ablation, "train_fused", fused)
  argv = ["--workdir", str(tmp_path), "--variants", "rb6,avg_dv", "--seeds", "2"]
  assert mfci_ablation.main(argv + ["--seeded-rows", "rb6"]) == 0
  assert calls == ["single", "single-seed1", ("rb6", "single"), ("rb6-seed1", "single-seed1"),
                   ("avg_dv", "single")]
  text = capsys.readouterr().out
  assert "| MSE + VGG + Fusion_Avg + D_V | 5.0000 | 22.00 |" in text
  # paired: the one-seed row against the baseline's seed 0, the one it was trained from
  assert "5.0000 vs 10.00, difference 5.0000, paired band -: one seed: no noise band" in text
  for module in (mfci_ablation, cocovid_ablation):
    with pytest.raises(SystemExit):
      module.main(["--workdir", str(tmp_path), "--seeds", "2", "--seeded-rows", "rb7"])
    assert "--seeded-rows names rows this table does not run: ['rb7']" in capsys.readouterr().err


def test_internet_table_runs_lwgan_on_its_own_config(tmp_path, monkeypatch, capsys):
  configs = []
  def run(workdir, config):
    configs.append(config.system)
    return CANNED[os.path.basename(workdir)]
  monkeypatch.setattr(internet_table, "run", run)
  assert internet_table.main(["--workdir", str(tmp_path), "--rows", "lwgan,ms_c"]) == 0
  assert configs == ["lwgan", "internet"]
  text = capsys.readouterr().out
  assert "| copy of the source frame | - | 0.5500 | 0.3000 |" in text
  assert any(line.startswith("- LWGAN ahead of copy of the source frame on lpips")
             for line in text.splitlines())
  assert any(line.startswith("- Ours (MS c) ahead of LWGAN on ms_ssim") and
             line.endswith("(as claimed)") for line in text.splitlines())


@pytest.mark.parametrize("script, config", [("cocovid_ablation", "configs/cocovid.py:tiny"),
                                            ("d2gnet_ablation", "configs/d2gnet.py:tiny")])
def test_every_variant_builds_its_system(script, config):
  """Each row's overrides name real config keys and give a system that builds."""
  from psrjax.systems import registry  # pylint: disable=g-import-not-at-top
  from benchmarks.cocovid_ablation import make_config  # pylint: disable=g-import-not-at-top
  module = __import__(f"benchmarks.{script}", fromlist=["VARIANTS"])
  for name, (_, overrides) in module.VARIANTS.items():
    built = make_config(config, {**overrides, "seed": 1})
    for key, value in overrides.items():
      node = built
      for part in key.split("."):
        node = node[part]
      assert node == value, (name, key)
    registry.get_system(built)


def _ledger_table(tmp_path, monkeypatch, calls, workdir="work", extra=()):
  """d2gnet_ablation.py's full and no_d2g rows at 2 seeds with the ledger under tmp_path."""
  from benchmarks import d2gnet_ablation  # pylint: disable=g-import-not-at-top
  def run(run_dir, config):
    calls.append(os.path.basename(run_dir))
    return _scores(config.seed)
  monkeypatch.setattr(d2gnet_ablation, "run", run)
  return d2gnet_ablation.main(["--workdir", str(tmp_path / workdir), "--init-from",
                               str(tmp_path / "uv"), "--variants", "full,no_d2g",
                               "--baselines", "", "--seeds", "2", "--ledger",
                               str(tmp_path / "ledger"), *extra])


def test_the_ledger_reads_back_recorded_runs_where_their_workdirs_are_gone(tmp_path,
                                                                            monkeypatch, capsys):
  calls = []
  assert _ledger_table(tmp_path, monkeypatch, calls) == 0
  assert calls == ["full", "full-seed1", "no_d2g", "no_d2g-seed1"]
  entry = json.loads((tmp_path / "ledger" / "full-seed1.json").read_text())
  assert entry["results"] == _scores(1) and entry["paths"]["init_from"] == str(tmp_path / "uv")
  assert entry["machine"] == seeds.machine() and entry["commit"] and entry["date"]
  first = capsys.readouterr().out
  # Another workdir, another pre-training path (another machine's): nothing trains again.
  assert _ledger_table(tmp_path, monkeypatch, calls, workdir="elsewhere",
                       extra=["--init-from", "/another/uv"]) == 0
  assert calls[4:] == []
  assert capsys.readouterr().out.partition("\n\n")[2] == first.partition("\n\n")[2]
  # A changed config trains again and replaces the entry.
  from benchmarks import d2gnet_ablation  # pylint: disable=g-import-not-at-top
  monkeypatch.setitem(d2gnet_ablation.VARIANTS, "full", ("D²G-Net (full)", {"train.steps": 7}))
  assert _ledger_table(tmp_path, monkeypatch, calls, workdir="third") == 0
  assert calls[4:] == ["full", "full-seed1"]
  assert "holds another config's run" in capsys.readouterr().out


def test_recorded_only_trains_nothing_and_names_the_missing_runs(tmp_path, monkeypatch, capsys):
  calls = []
  ledger = tmp_path / "ledger"
  ledger.mkdir()
  assert _ledger_table(tmp_path, monkeypatch, calls, extra=["--seeds", "1"]) == 0
  other = json.loads((ledger / "no_d2g.json").read_text())
  (ledger / "no_d2g.json").write_text(json.dumps({**other, "machine": "Other CPU, 2 cores"}))
  capsys.readouterr()
  assert _ledger_table(tmp_path, monkeypatch, calls, workdir="w2", extra=["--recorded-only"]) == 0
  assert calls == ["full", "no_d2g"]
  text = capsys.readouterr().out
  assert text.rstrip().endswith("Not yet run: full-seed1, no_d2g-seed1")
  assert f"runs on {seeds.machine()} (1 runs); Other CPU, 2 cores (1 runs)" in text
  assert any(line.startswith("- D²G-Net (full) ahead of w/o D²G") and
             line.endswith("(runs on 2 machines)") for line in text.splitlines())
  from benchmarks import d2gnet_ablation  # pylint: disable=g-import-not-at-top
  with pytest.raises(SystemExit):
    d2gnet_ablation.main(["--workdir", str(tmp_path), "--variants", "", "--recorded-only"])
  assert "--recorded-only reads the runs of a ledger: give --ledger DIR" in capsys.readouterr().err


def test_population_scores_need_the_checkpoint_or_the_ledgers_record(tmp_path, monkeypatch):
  ledger = seeds.Ledger(str(tmp_path / "ledger"))
  config = __import__("ml_collections").ConfigDict({"seed": 0, "init_from": "/a/b"})
  ledger.run(str(tmp_path / "w" / "ms_c"), config, lambda: {"ssim": 0.5})
  row = seeds.Row("ms_c", "MS c", [{"ssim": 0.5}])
  with pytest.raises(SystemExit, match="ms_c: its results come from the ledger"):
    seeds.rescored([row], str(tmp_path / "w"), "population", ledger)
  (tmp_path / "w" / "ms_c" / "eval" / "system").mkdir(parents=True)
  monkeypatch.setattr(seeds, "population_results", lambda run_dir, results: {"ssim": 0.6})
  assert seeds.rescored([row], str(tmp_path / "w"), "population", ledger)[0].seeds == [
      {"ssim": 0.6}]
  monkeypatch.setattr(seeds, "population_results", None)   # read back, not computed again
  assert seeds.rescored([row], str(tmp_path / "gone"), "population", ledger)[0].seeds == [
      {"ssim": 0.6}]


def test_mfci_reads_its_baseline_and_fused_runs_back_from_the_ledger(tmp_path, monkeypatch,
                                                                     capsys):
  from benchmarks import mfci_ablation  # pylint: disable=g-import-not-at-top
  calls = []
  monkeypatch.setattr(mfci_ablation, "train_single", lambda base, workdir, *a, **k: calls.append(
      os.path.basename(workdir)) or _mfci_results(0))
  monkeypatch.setattr(mfci_ablation, "train_fused", lambda base, workdir, *a, **k: calls.append(
      os.path.basename(workdir)) or _mfci_results(0))
  argv = ["--variants", "rb6", "--ledger", str(tmp_path / "ledger")]
  assert mfci_ablation.main(["--workdir", str(tmp_path / "a"), *argv]) == 0
  first = capsys.readouterr().out.partition("\n\n")[2]
  assert mfci_ablation.main(["--workdir", str(tmp_path / "b"), *argv]) == 0
  assert calls == ["single", "rb6"]
  assert capsys.readouterr().out.partition("\n\n")[2] == first
  assert sorted(os.listdir(tmp_path / "ledger")) == ["rb6.json", "single.json"]


def test_a_run_stopped_before_its_end_is_neither_read_back_nor_recorded(tmp_path, monkeypatch):
  """SIGTERM ends a training early with its checkpoint saved; the table exits, and the next
  invocation resumes the run instead of reading back its early evaluation."""
  from benchmarks import d2gnet_ablation  # pylint: disable=g-import-not-at-top
  from psrjax.train import loop  # pylint: disable=g-import-not-at-top
  stopped = loop.TrainResult(workdir=str(tmp_path / "w" / "edn"), step=7, state=None,
                             history=[], eval_results={"ssim": 0.1}, preempted=True)
  monkeypatch.setattr(loop, "train", lambda config, workdir: stopped)
  argv = ["--workdir", str(tmp_path / "w"), "--variants", "", "--baselines", "edn",
          "--ledger", str(tmp_path / "ledger")]
  with pytest.raises(SystemExit, match="edn: stopped at step 7 before its end"):
    d2gnet_ablation.main(argv)
  assert not (tmp_path / "w" / "edn" / "results.json").exists()
  assert not (tmp_path / "ledger" / "edn.json").exists()
