"""launch/slurm_gpu.sbatch run with bash, the SLURM_* variables set and fake `srun` and
`scontrol` first on PATH: USR1 (SLURM's warning before the time limit) forwards SIGTERM to the
srun'd trainers, waits for them and requeues the job; SIGTERM (preemption) is forwarded without
a requeue; a run that ends by itself is not requeued; the data-workers flag follows
SLURM_CPUS_PER_TASK."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(REPO, "launch", "slurm_gpu.sbatch")

# The fake srun records its arguments (once its SIGTERM handler is in place), then "trains" for
# $FAKE_SRUN_SECONDS; a SIGTERM is recorded and answered like psrjax train does (exit 0).
FAKE_SRUN = textwrap.dedent("""\
  #!{python}
  import json, os, signal, sys, time
  d = os.environ["FAKE_SLURM_DIR"]
  def on_term(signum, frame):
    open(os.path.join(d, "srun_signal"), "w").write(signal.Signals(signum).name)
    print("stopped at step 7; checkpoint saved, rerun to resume", flush=True)
    sys.exit(0)
  signal.signal(signal.SIGTERM, on_term)
  with open(os.path.join(d, "srun_args.json"), "w") as f:
    json.dump(sys.argv[1:], f)
  time.sleep(float(os.environ.get("FAKE_SRUN_SECONDS", "60")))
  """)
FAKE_SCONTROL = textwrap.dedent("""\
  #!{python}
  import json, os, sys
  with open(os.path.join(os.environ["FAKE_SLURM_DIR"], "scontrol.jsonl"), "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
  """)


@pytest.fixture
def slurm(tmp_path):
  bin_dir, state = tmp_path / "bin", tmp_path / "slurm"
  for d in (bin_dir, state, tmp_path / "venv" / "bin"):
    d.mkdir(parents=True)
  (tmp_path / "venv" / "bin" / "activate").write_text("# the test's stand-in virtualenv\n")
  for name, text in (("srun", FAKE_SRUN), ("scontrol", FAKE_SCONTROL)):
    (bin_dir / name).write_text(text.format(python=sys.executable))
    (bin_dir / name).chmod(0o755)
  env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
             FAKE_SLURM_DIR=str(state), VENV=str(tmp_path / "venv"), SLURM_JOB_ID="4242",
             SLURM_NTASKS="16", SLURM_JOB_NUM_NODES="2", SLURM_CPUS_PER_TASK="8")
  env.pop("DATA_WORKERS", None)
  return env, state


def _start(env, *args, **settings):
  return subprocess.Popen(["bash", SCRIPT, *args], env=dict(env, **settings),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for(path, timeout=30.0):
  deadline = time.monotonic() + timeout
  while not path.exists():
    assert time.monotonic() < deadline, f"{path} never appeared"
    time.sleep(0.05)


def _scontrol_calls(state) -> list:
  path = state / "scontrol.jsonl"
  return [json.loads(l) for l in path.read_text().splitlines()] if path.exists() else []


def test_usr1_stops_the_trainers_with_sigterm_then_requeues(slurm):
  env, state = slurm
  job = _start(env, "configs/psrnet.py", "gs://bucket/runs/psrnet", "--config.train.steps=9")
  _wait_for(state / "srun_args.json")
  job.send_signal(signal.SIGUSR1)
  out, _ = job.communicate(timeout=30)
  assert job.returncode == 0, out
  assert (state / "srun_signal").read_text() == "SIGTERM", out
  assert _scontrol_calls(state) == [["requeue", "4242"]], out
  # The requeue comes after the trainers had saved and exited.
  assert out.index("stopped at step 7") < out.index("requeueing job 4242"), out
  args = json.loads((state / "srun_args.json").read_text())
  assert args[:4] == ["--kill-on-bad-exit=1", "psrjax", "train", "--config"], args
  assert "--config.train.platform=gpu" in args and "--config.train.steps=9" in args, args
  assert args[args.index("--workdir") + 1] == "gs://bucket/runs/psrnet"
  assert "--config.train.data_workers=7" in args, args  # 8 CPUs per task, one for the main
  # The launcher's flags come first: the same flags among the script's arguments win.
  assert args.index("--config.train.platform=gpu") < args.index("--config.train.steps=9"), args


def test_sigterm_is_forwarded_without_a_requeue(slurm):
  env, state = slurm
  job = _start(env)
  _wait_for(state / "srun_args.json")
  job.send_signal(signal.SIGTERM)
  out, _ = job.communicate(timeout=30)
  assert (state / "srun_signal").read_text() == "SIGTERM", out
  assert _scontrol_calls(state) == [], "preemption: SLURM requeues the job itself"


@pytest.mark.parametrize("cpus, flag", [("3", "2"), ("1", "0"), (None, "auto")])
def test_a_run_that_ends_is_not_requeued_and_workers_follow_the_cpus(slurm, cpus, flag):
  env, state = slurm
  if cpus is None:
    env.pop("SLURM_CPUS_PER_TASK")
  else:
    env["SLURM_CPUS_PER_TASK"] = cpus
  job = _start(env, FAKE_SRUN_SECONDS="0")
  out, _ = job.communicate(timeout=30)
  assert job.returncode == 0, out
  assert _scontrol_calls(state) == [] and not (state / "srun_signal").exists()
  args = json.loads((state / "srun_args.json").read_text())
  assert f"--config.train.data_workers={flag}" in args, args
  assert args[args.index("--config") + 1] == "configs/psrnet.py"
