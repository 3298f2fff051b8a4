"""launch/tpu_pod.sh against a fake `gcloud` first on PATH (it logs its arguments and plays a
queued resource): `--dry-run` prints the whole relaunch loop and runs nothing, a preempted slice
is deleted, recreated, set up and trained again until the run finishes, a SIGTERM-stopped train
on a ready slice is simply rerun, and the relaunch count is bounded."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(REPO, "launch", "tpu_pod.sh")

# The fake gcloud: state in $FAKE_GCLOUD_DIR (the queued resource's state, the finished marker,
# a train counter); every call is one JSON line in calls.jsonl. $FAKE_TRAIN_PLAN lists what the
# train attempts do, one word each: "preempt" (the slice turns SUSPENDED, the ssh exits 255),
# "stop" (the trainer saves after SIGTERM and exits 0, the slice stays ACTIVE), "finish"; the
# first $FAKE_CREATE_FAILURES queued resources created turn FAILED.
FAKE_GCLOUD = textwrap.dedent("""\
  #!{python}
  import json, os, sys
  d = os.environ["FAKE_GCLOUD_DIR"]
  args = sys.argv[1:]
  with open(os.path.join(d, "calls.jsonl"), "a") as f:
    f.write(json.dumps(args) + "\\n")
  state = os.path.join(d, "state")
  marker = os.path.join(d, "marker")
  if args[:2] == ["storage", "ls"]:
    sys.exit(0 if os.path.exists(marker) else 1)
  if args[:2] == ["storage", "cp"]:
    open(marker, "w").write(sys.stdin.read())
    sys.exit(0)
  words = [a for a in args if a != "alpha"]
  if words[:3] == ["compute", "tpus", "queued-resources"]:
    verb = words[3]
    if verb == "create":
      counter = os.path.join(d, "creates")
      n = int(open(counter).read()) if os.path.exists(counter) else 0
      open(counter, "w").write(str(n + 1))
      failing = n < int(os.environ.get("FAKE_CREATE_FAILURES", "0"))
      open(state, "w").write("FAILED" if failing else "ACTIVE")
    elif verb == "describe":
      if not os.path.exists(state):
        print("ERROR: NOT_FOUND", file=sys.stderr)
        sys.exit(1)
      print(open(state).read())
    elif verb == "delete":
      os.remove(state)
    sys.exit(0)
  if words[:4] == ["compute", "tpus", "tpu-vm", "ssh"]:
    command = args[args.index("--command") + 1]
    if "psrjax train" not in command:
      sys.exit(0)
    counter = os.path.join(d, "trains")
    n = int(open(counter).read()) if os.path.exists(counter) else 0
    open(counter, "w").write(str(n + 1))
    plan = os.environ["FAKE_TRAIN_PLAN"].split()
    what = plan[min(n, len(plan) - 1)]
    if what == "preempt":
      print("step 40/100")
      open(state, "w").write("SUSPENDED")
      print("ssh: connect to host 10.0.0.3 port 22: Connection refused", file=sys.stderr)
      sys.exit(255)
    if what == "stop":
      print("stopped at step 40; checkpoint saved, rerun to resume")
      sys.exit(0)
    print("eval system at step 100: l1 0.1")
    sys.exit(0)
  sys.exit(0)  # scp and anything else
  """)


@pytest.fixture
def fake_gcloud(tmp_path):
  bin_dir, state_dir = tmp_path / "bin", tmp_path / "gcloud"
  bin_dir.mkdir()
  state_dir.mkdir()
  gcloud = bin_dir / "gcloud"
  gcloud.write_text(FAKE_GCLOUD.format(python=sys.executable))
  gcloud.chmod(0o755)
  return bin_dir, state_dir


def _run(fake_gcloud, *args, plan="finish", **settings):
  bin_dir, state_dir = fake_gcloud
  env = {k: v for k, v in os.environ.items() if k not in ("PROJECT", "WORKDIR", "BUCKET")}
  env.update(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", FAKE_GCLOUD_DIR=str(state_dir),
             FAKE_TRAIN_PLAN=plan, BUCKET="my-bucket", POLL_SECONDS="0", **settings)
  return subprocess.run(["bash", SCRIPT, *args], env=env, capture_output=True, text=True,
                        timeout=120, check=False)


def _calls(fake_gcloud) -> list[list[str]]:
  path = fake_gcloud[1] / "calls.jsonl"
  if not path.exists():
    return []
  return [json.loads(line) for line in path.read_text().splitlines()]


def _kind(call: list[str]) -> str:
  """A call in a word or two: "create", "describe", "delete", "setup", "train", "ls", "cp"..."""
  words = [a for a in call if a != "alpha"]
  if words[0] == "storage":
    return words[1]
  if words[3] == "ssh":
    return "train" if "psrjax train" in call[call.index("--command") + 1] else "setup"
  return words[3]


def test_dry_run_prints_the_relaunch_loop_and_runs_nothing(fake_gcloud):
  result = _run(fake_gcloud, "--dry-run", "all")
  assert result.returncode == 0, result.stderr
  assert _calls(fake_gcloud) == [], "--dry-run ran gcloud"
  lines = [line for line in result.stdout.splitlines() if line.startswith("+ gcloud ")]
  creates = [l for l in lines if "queued-resources create psrjax-pod" in l]
  assert len(creates) == 2 and all("--spot" in l and "--node-id psrjax-pod" in l
                                    and "--accelerator-type v4-32" in l for l in creates), lines
  trains = [l for l in lines if "tpu-vm ssh" in l and "psrjax\\ train" in l]
  assert len(trains) == 2, lines
  assert all("gs://my-bucket/psrnet" in l and "--config.train.platform=tpu" in l
             for l in trains), trains
  assert any("queued-resources describe psrjax-pod" in l and "state.state" in l for l in lines)
  assert sum("queued-resources delete psrjax-pod --force" in l for l in lines) == 2, lines
  assert any("tpu-vm ssh" in l and "uv venv -q --python 3.11" in l for l in lines), lines
  assert "+ gcloud storage ls gs://my-bucket/psrnet/TRAINING_FINISHED" in lines
  assert "+ gcloud storage cp - gs://my-bucket/psrnet/TRAINING_FINISHED" in lines
  # The order of one preemption: train, poll (SUSPENDED), delete, create, set up, train again.
  order = [("train" if l in trains else "delete" if "delete" in l else "create" if l in creates
            else None) for l in lines]
  assert [o for o in order if o] == ["create", "train", "delete", "create", "train", "delete"]
  assert "gcsfuse" not in result.stdout


def test_dry_run_other_capacities(fake_gcloud):
  reserved = _run(fake_gcloud, "--dry-run", "create", CAPACITY="reserved")
  assert "queued-resources create" in reserved.stdout and "--reserved" in reserved.stdout
  best = _run(fake_gcloud, "--dry-run", "create", CAPACITY="best-effort")
  assert "+ gcloud alpha compute tpus queued-resources create" in best.stdout, best.stdout
  assert "--best-effort" in best.stdout
  vm = _run(fake_gcloud, "--dry-run", "create", PROVISION="vm")
  assert "tpu-vm create psrjax-pod" in vm.stdout and "--spot" in vm.stdout, vm.stdout
  on_demand = _run(fake_gcloud, "--dry-run", "create", CAPACITY="on-demand")
  assert "queued-resources create" in on_demand.stdout and "--spot" not in on_demand.stdout
  bad = _run(fake_gcloud, "create", CAPACITY="cheap")
  assert bad.returncode == 2 and "CAPACITY=cheap" in bad.stderr
  assert _calls(fake_gcloud) == []


def test_a_preempted_slice_is_recreated_and_training_resumes_until_finished(fake_gcloud):
  result = _run(fake_gcloud, "all", plan="preempt finish")
  assert result.returncode == 0, result.stdout + result.stderr
  calls = _calls(fake_gcloud)
  kinds = [_kind(c) for c in calls]
  # Before the preemption: no slice yet, so it is created, set up and trained on.
  first = kinds.index("train")
  assert kinds[:first] == ["ls", "describe", "describe", "create", "describe", "scp", "setup"]
  # The train ssh fails; the poll answers SUSPENDED: delete, recreate, set up, train again.
  assert kinds[first + 1:] == ["describe", "describe", "delete", "create", "describe", "scp",
                               "setup", "train", "cp", "delete"], kinds
  (train1, train2) = [c for c in calls if _kind(c) == "train"]
  assert train1 == train2, "the relaunch must rerun the same train command"
  command = train1[train1.index("--command") + 1]
  assert "--workdir gs://my-bucket/psrnet" in command
  assert "--config.train.platform=tpu" in command and "--config.train.data_workers=auto" in command
  create = next(c for c in calls if _kind(c) == "create")
  assert "--spot" in create and "--runtime-version" in create
  assert "--python 3.11" in next(c for c in calls if _kind(c) == "setup")[-3]
  assert (fake_gcloud[1] / "marker").exists()
  assert "slice preempted: recreating it" in result.stderr
  # Once finished, another run finds the marker and does nothing.
  again = _run(fake_gcloud, "run")
  assert again.returncode == 0 and "has finished" in again.stderr
  assert [_kind(c) for c in _calls(fake_gcloud)[len(calls):]] == ["ls"]


def test_a_sigterm_stop_on_a_ready_slice_reruns_train_without_recreating(fake_gcloud):
  result = _run(fake_gcloud, "run", plan="stop finish")
  assert result.returncode == 0, result.stdout + result.stderr
  kinds = [_kind(c) for c in _calls(fake_gcloud)]
  assert kinds.count("create") == 1 and kinds.count("delete") == 0, kinds
  assert kinds[-4:] == ["train", "describe", "train", "cp"], kinds
  assert "stopped at step 40" in result.stdout


def test_relaunches_are_bounded(fake_gcloud):
  result = _run(fake_gcloud, "run", plan="preempt", MAX_RELAUNCHES="2")
  assert result.returncode == 1
  kinds = [_kind(c) for c in _calls(fake_gcloud)]
  assert kinds.count("train") == 3 and kinds.count("create") == 3, kinds
  assert "2 relaunches spent" in result.stderr
  assert not (fake_gcloud[1] / "marker").exists()


def test_train_failing_twice_on_a_ready_slice_stops(fake_gcloud):
  bin_dir, _ = fake_gcloud
  # A trainer that fails (exit 1) while the slice stays ACTIVE: an error in the run itself.
  failing = (bin_dir / "gcloud").read_text().replace(
      'if what == "stop":', 'if what == "crash":\n    sys.exit(1)\n  if what == "stop":')
  (bin_dir / "gcloud").write_text(failing)
  result = _run(fake_gcloud, "run", plan="crash")
  assert result.returncode == 1
  kinds = [_kind(c) for c in _calls(fake_gcloud)]
  assert kinds.count("train") == 2 and kinds.count("create") == 1, kinds
  assert "twice in a row" in result.stderr


def test_a_slice_that_fails_to_come_up_is_deleted_and_requested_again(fake_gcloud):
  result = _run(fake_gcloud, "all", FAKE_CREATE_FAILURES="1")
  assert result.returncode == 0, result.stdout + result.stderr
  kinds = [_kind(c) for c in _calls(fake_gcloud)]
  assert kinds == ["ls", "describe", "describe", "create", "describe", "describe", "delete",
                   "create", "describe", "scp", "setup", "train", "cp", "delete"], kinds
  assert "could not bring up the slice: trying again (relaunch 1 of 20)" in result.stderr
