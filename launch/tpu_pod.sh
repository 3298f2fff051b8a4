#!/usr/bin/env bash
# Train psrjax on a Cloud TPU pod slice with gcloud: get the slice (a queued resource or a TPU
# VM, spot, reserved, best-effort or on-demand), install psrjax on every worker, run the same
# `psrjax train` on all workers at once into a gs:// workdir, and relaunch after preemptions
# until the run has finished.
#
#   BUCKET=my-bucket launch/tpu_pod.sh all              # run (below), then delete the slice
#   BUCKET=my-bucket launch/tpu_pod.sh --dry-run all    # print every gcloud command, run none
#   launch/tpu_pod.sh [--dry-run] create | setup | train | run | delete | status | all
#
#   create  request the slice (PROVISION, CAPACITY) and wait until it is ready
#   setup   copy the repository to every worker (or clone REPO_URL there) and install
#           psrjax[tpu] into a Python 3.11 venv (~/venv)
#   train   one `psrjax train` on all workers (it resumes from the workdir's checkpoints)
#   run     the relaunch loop: create and set up the slice when it is missing, train, and
#           after a preemption delete and recreate the slice and train again, until the run
#           has finished or MAX_RELAUNCHES relaunches are spent; the slice is kept at the end
#   delete  delete the slice (the queued resource with its nodes, or the TPU VM)
#   status  print the slice's state
#   all     run, then delete the slice (also when run fails or is interrupted)
#
# Every worker runs the identical command; `psrjax train` finds the other workers itself
# (jax.distributed.initialize reads the pod's worker list), each worker reads its own shard
# of the data, worker 0 writes metrics, samples and evaluation, and all workers write the
# orbax checkpoints together into WORKDIR, a gs:// path every worker reads and writes directly
# (orbax and etils; no gcsfuse mount; the workers' service account needs write access to the
# bucket). train.batch_size is the global batch and runs on any slice: the data axis is the
# largest divisor of the chip count that divides it and the other chips replicate the batch (the
# log says how many chips hold distinct examples; PSR-Net's batch 8 on v4-32's 16 chips: 8). A
# multiple of the chip count gives every chip its own examples (EXTRA_ARGS below).
#
# Preemption and completion. A preempted spot slice first sends SIGTERM: `psrjax train`
# finishes its step, saves a checkpoint, prints "stopped at step N; checkpoint saved, rerun to
# resume" and exits 0; then the workers vanish (the ssh fails) and the queued resource turns
# SUSPENDED (a TPU VM: PREEMPTED). After every train attempt that did not finish, `run` polls
# the slice's state (every POLL_SECONDS while it is in transition): SUSPENDED, FAILED,
# PREEMPTED, TERMINATED, STOPPED or gone: delete it, create it again, set it up and train again
# (the train command resumes from the gs:// checkpoints); still ACTIVE/READY: train again on
# it (a second train failure in a row on a ready slice is an error in the run itself: `run`
# stops). A train attempt that exits 0 without "stopped at step" has finished (the trainer
# wrote its final checkpoint, sample and evaluation, WORKDIR/eval/system/<last step>.json):
# `run` then writes the marker WORKDIR/TRAINING_FINISHED, and a later `run`/`all` finds it
# with `gcloud storage ls` and trains no more.
#
# Python: the TPU VM images (Ubuntu 22.04) ship Python 3.10 and psrjax needs 3.11. setup uses
# uv (pip-installed into the user site), whose `uv venv --python 3.11` downloads a standalone
# CPython build: no apt and no sudo, so it does not race the VM's boot-time apt updates for
# the dpkg lock (the deadsnakes PPA would need both) and works the same on every image.
#
# Settings (environment variables; defaults in brackets):
#   TPU_NAME        [psrjax-pod]            name of the slice (the TPU VM node)
#   ZONE            [us-central2-b]         a zone with the accelerator type
#   ACCELERATOR     [v4-32]                 slice type (v4-32 = 16 chips on 4 workers)
#   RUNTIME         [tpu-ubuntu2204-base]   TPU VM software version (v5e: v2-alpha-tpuv5-lite,
#                                           v5p: v2-alpha-tpuv5, v6e: v2-alpha-tpuv6e)
#   PROJECT         [gcloud's default]      Google Cloud project
#   PROVISION       [queued]                queued: a queued resource (waits in the queue for
#                                           capacity); vm: `tpu-vm create` (fails without it)
#   CAPACITY        [spot]                  spot | reserved | best-effort | on-demand
#                                           (best-effort: queued only, `gcloud alpha`)
#   QUEUED_RESOURCE [$TPU_NAME]             name of the queued resource
#   BUCKET          (required unless WORKDIR is set) GCS bucket, without gs://
#   RUN_NAME        [psrnet]                run name
#   WORKDIR         [gs://$BUCKET/$RUN_NAME] the run's workdir (checkpoints, metrics, samples)
#   CONFIG          [configs/psrnet.py]     config file[:arg], relative to the repository
#   EXTRA_ARGS      [""]                    more `psrjax train` arguments, e.g.
#                                           "--config.train.batch_size=64 --config.sharding.params=fsdp"
#                                           (64: a multiple of v4-32's 16 chips); they come after
#                                           (and override) the flags below
#   DATA_WORKERS    [auto]                  --config.train.data_workers (auto: from the cores)
#   RESUME_DATA     [restore]               --config.resume_data: restore (resuming on a slice
#                                           of another size stops with one line) or reshard
#                                           (each new data shard starts at the checkpoint's step)
#   (every train command also has --config.train.platform=tpu: a worker where JAX finds no TPU
#   stops with a one-line error instead of training on its CPU)
#   REPO_URL        [""]                    clone this git repository on the workers instead of
#                                           copying this checkout's tracked files
#   REPO_REF        [HEAD]                  the commit/branch/tag of REPO_URL to check out
#   PYTHON_VERSION  [3.11]                  Python of the workers' venv
#   MAX_RELAUNCHES  [20]                    relaunches (train attempts after the first) at most
#   POLL_SECONDS    [60]                    seconds between state polls
#   DRY_RUN         [0]                     1 = --dry-run: print the gcloud commands (a run
#                                           with one simulated preemption), run none
set -euo pipefail

TPU_NAME=${TPU_NAME:-psrjax-pod}
ZONE=${ZONE:-us-central2-b}
ACCELERATOR=${ACCELERATOR:-v4-32}
RUNTIME=${RUNTIME:-tpu-ubuntu2204-base}
PROVISION=${PROVISION:-queued}
CAPACITY=${CAPACITY:-spot}
QUEUED_RESOURCE=${QUEUED_RESOURCE:-$TPU_NAME}
RUN_NAME=${RUN_NAME:-psrnet}
CONFIG=${CONFIG:-configs/psrnet.py}
EXTRA_ARGS=${EXTRA_ARGS:-}
DATA_WORKERS=${DATA_WORKERS:-auto}
RESUME_DATA=${RESUME_DATA:-restore}
REPO_URL=${REPO_URL:-}
REPO_REF=${REPO_REF:-HEAD}
PYTHON_VERSION=${PYTHON_VERSION:-3.11}
MAX_RELAUNCHES=${MAX_RELAUNCHES:-20}
POLL_SECONDS=${POLL_SECONDS:-60}
DRY_RUN=${DRY_RUN:-0}
DRY_STATE=MISSING  # --dry-run: the state the printed state polls stand for
REPO_DIR=$(cd "$(dirname "$0")/.." && pwd)
FINISHED_MARKER=TRAINING_FINISHED
STOPPED_LINE="stopped at step"

log() { echo "tpu_pod.sh: $*" >&2; }
die() { log "$*"; exit 2; }

# Every gcloud call goes through here: printed (shell-quoted, on the script's stdout, also
# from inside command substitutions) with --dry-run, run otherwise.
exec 3>&1
gc() {
  if [[ "$DRY_RUN" == 1 ]]; then
    { printf '+ gcloud'; printf ' %q' "$@"; printf '\n'; } >&3
    return 0
  fi
  gcloud "$@"
}

where() {
  printf '%s\n' --zone "$ZONE"
  if [[ -n "${PROJECT:-}" ]]; then printf '%s\n' --project "$PROJECT"; fi
}

tpu_vm() { local w; mapfile -t w < <(where); gc compute tpus tpu-vm "$@" "${w[@]}"; }
queued() {
  local w alpha=()
  mapfile -t w < <(where)
  if [[ "$CAPACITY" == best-effort ]]; then alpha=(alpha); fi
  gc "${alpha[@]}" compute tpus queued-resources "$@" "${w[@]}"
}

on_all_workers() { tpu_vm ssh "$TPU_NAME" --worker=all --command "$1"; }

check_settings() {
  case "$PROVISION" in queued | vm) ;; *) die "PROVISION=$PROVISION: use queued or vm" ;; esac
  case "$CAPACITY" in
    spot | reserved | on-demand) ;;
    best-effort) [[ "$PROVISION" == queued ]] || die "CAPACITY=best-effort needs PROVISION=queued" ;;
    *) die "CAPACITY=$CAPACITY: use spot, reserved, best-effort or on-demand" ;;
  esac
  [[ "$MAX_RELAUNCHES" =~ ^[0-9]+$ ]] || die "MAX_RELAUNCHES=$MAX_RELAUNCHES is not a count"
}

workdir() {
  if [[ -n "${WORKDIR:-}" ]]; then
    echo "${WORKDIR%/}"
  elif [[ -n "${BUCKET:-}" ]]; then
    echo "gs://${BUCKET#gs://}/$RUN_NAME"
  else
    die "set BUCKET to a GCS bucket name (or WORKDIR to a gs:// path): the shared workdir"
  fi
}

capacity_flags() {
  case "$CAPACITY" in
    spot) echo --spot ;;
    reserved) echo --reserved ;;
    best-effort) echo --best-effort ;;
    on-demand) ;;
  esac
}

# The slice's state in one word: ACTIVE/READY when usable, MISSING when it does not exist.
slice_state() {
  if [[ "$DRY_RUN" == 1 ]]; then
    if [[ "$PROVISION" == queued ]]; then
      queued describe "$QUEUED_RESOURCE" --format 'value(state.state)'
    else
      tpu_vm describe "$TPU_NAME" --format 'value(state)'
    fi
    echo "$DRY_STATE"
    return
  fi
  local state
  if [[ "$PROVISION" == queued ]]; then
    state=$(queued describe "$QUEUED_RESOURCE" --format 'value(state.state)' 2>/dev/null) || state=MISSING
  else
    state=$(tpu_vm describe "$TPU_NAME" --format 'value(state)' 2>/dev/null) || state=MISSING
  fi
  echo "${state:-MISSING}"
}

ready_state() { if [[ "$PROVISION" == queued ]]; then echo ACTIVE; else echo READY; fi; }
preempted_state() { if [[ "$PROVISION" == queued ]]; then echo SUSPENDED; else echo PREEMPTED; fi; }

# healthy | gone | transition
classify() {
  case "$1" in
    ACTIVE | READY) echo healthy ;;
    MISSING | SUSPENDED | FAILED | PREEMPTED | TERMINATED | STOPPED) echo gone ;;
    *) echo transition ;;
  esac
}

# Polls until the slice is healthy or gone; prints that word.
settled_state() {
  local state kind
  while true; do
    state=$(slice_state)
    kind=$(classify "$state")
    log "slice $TPU_NAME: $state"
    if [[ "$kind" != transition ]]; then echo "$kind"; return; fi
    sleep "$POLL_SECONDS"
  done
}

create() {
  local flags
  mapfile -t flags < <(capacity_flags)
  if [[ "$PROVISION" == queued ]]; then
    queued create "$QUEUED_RESOURCE" --node-id "$TPU_NAME" --accelerator-type "$ACCELERATOR" \
      --runtime-version "$RUNTIME" "${flags[@]}" || return 1
  else
    tpu_vm create "$TPU_NAME" --accelerator-type "$ACCELERATOR" --version "$RUNTIME" \
      "${flags[@]}" || return 1
  fi
  if [[ "$DRY_RUN" == 1 ]]; then DRY_STATE=$(ready_state); fi
  # A queued resource waits for capacity (WAITING_FOR_RESOURCES, PROVISIONING) before ACTIVE.
  if [[ $(settled_state) != healthy ]]; then
    log "slice $TPU_NAME did not become ready"
    return 1
  fi
}

delete() {
  if [[ "$PROVISION" == queued ]]; then
    queued delete "$QUEUED_RESOURCE" --force --quiet
  else
    tpu_vm delete "$TPU_NAME" --quiet
  fi
}

status() {
  slice_state
}

ARCHIVE=""
setup() {
  workdir >/dev/null
  local fetch
  if [[ -n "$REPO_URL" ]]; then
    fetch="rm -rf ~/psrjax && git clone -q $(printf %q "$REPO_URL") ~/psrjax && git -C ~/psrjax checkout -q $(printf %q "$REPO_REF")"
  else
    if [[ "$DRY_RUN" == 1 ]]; then
      ARCHIVE=/tmp/psrjax-checkout.tar.gz
    elif [[ -z "$ARCHIVE" ]]; then
      ARCHIVE=$(mktemp --suffix .tar.gz)
      git -C "$REPO_DIR" ls-files -z | tar -C "$REPO_DIR" --null -T - -czf "$ARCHIVE"
    fi
    tpu_vm scp "$ARCHIVE" "$TPU_NAME:~/psrjax.tar.gz" --worker=all || return 1
    fetch="rm -rf ~/psrjax && mkdir -p ~/psrjax && tar -xzf ~/psrjax.tar.gz -C ~/psrjax"
  fi
  on_all_workers "set -e
    $fetch
    export PATH=\$HOME/.local/bin:\$PATH
    command -v uv >/dev/null || python3 -m pip install -q --user uv || curl -LsSf https://astral.sh/uv/install.sh | sh
    uv venv -q --python $PYTHON_VERSION ~/venv
    uv pip install -q --python ~/venv/bin/python -e \"\$HOME/psrjax[tpu]\"
    ~/venv/bin/psrjax --help >/dev/null"
}

train_command() {
  local wd
  wd=$(workdir)
  # The launcher's flags first, so that the same flags in EXTRA_ARGS win.
  local EXTRA_ARGS="--config.train.platform=tpu --config.train.data_workers=$DATA_WORKERS \
--config.resume_data=$RESUME_DATA${EXTRA_ARGS:+ $EXTRA_ARGS}"
  echo "cd ~/psrjax && ~/venv/bin/psrjax train --config $CONFIG --workdir $wd $EXTRA_ARGS"
}

# One train attempt on all workers; its output is shown and kept in $1 (the log).
# Returns the ssh's exit status.
train_once() {
  local log_file=${1:-/dev/null} status_file
  status_file=$(mktemp)
  {
    local ssh_rc=0
    on_all_workers "$(train_command)" || ssh_rc=$?
    echo "$ssh_rc" >"$status_file"
  } 2>&1 | tee "$log_file"
  local rc
  rc=$(cat "$status_file")
  rm -f "$status_file"
  return "$rc"
}

train() {
  workdir >/dev/null
  train_once
}

finished_already() {
  local wd
  wd=$(workdir)
  if [[ "$DRY_RUN" == 1 ]]; then gc storage ls "$wd/$FINISHED_MARKER"; return 1; fi
  gc storage ls "$wd/$FINISHED_MARKER" >/dev/null 2>&1
}

mark_finished() {
  local wd
  wd=$(workdir)
  if [[ "$DRY_RUN" == 1 ]]; then
    gc storage cp - "$wd/$FINISHED_MARKER"
  else
    printf 'finished %s on %s\n' "$(date -u +%FT%TZ)" "$ACCELERATOR" | gc storage cp - "$wd/$FINISHED_MARKER"
  fi
}

# Deletes the slice (unless it is gone), creates it and sets it up; 1 if the slice did not come
# up. A setup that fails on a ready slice ends the script (an install error, not a capacity one).
recreate() {
  if [[ $(slice_state) != MISSING ]]; then delete || return 1; fi
  create || return 1
  if ! setup; then
    log "setup failed on the ready slice $TPU_NAME"
    exit 1
  fi
}

# recreate until the slice comes up; every failed try (e.g. the new queued resource FAILED)
# spends one of run's relaunches (`relaunches`, a local of run).
bring_up() {
  while ! recreate; do
    if ((relaunches >= MAX_RELAUNCHES)); then
      log "could not bring up the slice; $MAX_RELAUNCHES relaunches spent"
      return 1
    fi
    relaunches=$((relaunches + 1))
    log "could not bring up the slice: trying again (relaunch $relaunches of $MAX_RELAUNCHES)"
    sleep "$POLL_SECONDS"
  done
}

# The relaunch loop (see the header).
run() {
  local wd attempt=0 relaunches=0 healthy_failures=0 rc log_file slice
  wd=$(workdir)
  if finished_already; then
    log "$wd/$FINISHED_MARKER exists: the run has finished"
    return 0
  fi
  log "workdir $wd; at most $MAX_RELAUNCHES relaunches"
  if [[ $(settled_state) == healthy ]]; then setup; else bring_up; fi
  log_file=$(mktemp)
  while true; do
    attempt=$((attempt + 1))
    log "train attempt $attempt"
    rc=0
    if [[ "$DRY_RUN" == 1 ]]; then
      train_once
      # Simulate a preemption on the first attempt so that the relaunch commands are printed.
      if [[ $attempt == 1 ]]; then
        log "dry run: attempt 1 stands for a preempted one (ssh exit 255, slice $(preempted_state))"
        rc=255
        DRY_STATE=$(preempted_state)
      fi
    else
      train_once "$log_file" || rc=$?
    fi
    if [[ $rc == 0 ]] && ! grep -q "$STOPPED_LINE" "$log_file"; then
      log "training finished (attempt $attempt, $relaunches relaunches)"
      mark_finished
      rm -f "$log_file"
      return 0
    fi
    log "train attempt $attempt did not finish (exit $rc)"
    if ((relaunches >= MAX_RELAUNCHES)); then
      log "$MAX_RELAUNCHES relaunches spent; giving up (the checkpoints stay in $wd)"
      rm -f "$log_file"
      return 1
    fi
    relaunches=$((relaunches + 1))
    slice=$(settled_state)
    if [[ "$slice" == healthy && $rc != 0 ]]; then
      # Vanished workers can fail the ssh before the slice's state shows the preemption.
      sleep "$POLL_SECONDS"
      slice=$(settled_state)
    fi
    if [[ "$slice" == gone ]]; then
      healthy_failures=0
      log "slice preempted: recreating it (relaunch $relaunches of $MAX_RELAUNCHES)"
      bring_up || { rm -f "$log_file"; return 1; }
    elif [[ $rc != 0 ]]; then
      healthy_failures=$((healthy_failures + 1))
      if ((healthy_failures >= 2)); then
        log "train failed twice in a row on a ready slice (exit $rc); not relaunching"
        rm -f "$log_file"
        return 1
      fi
      log "train failed on a ready slice (exit $rc): training again (relaunch $relaunches of $MAX_RELAUNCHES)"
    else
      healthy_failures=0
      log "train stopped on a ready slice: training again (relaunch $relaunches of $MAX_RELAUNCHES)"
    fi
  done
}

cleanup() {
  if [[ -n "$ARCHIVE" && "$DRY_RUN" != 1 ]]; then rm -f "$ARCHIVE"; fi
}
trap cleanup EXIT

args=()
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    *) args+=("$arg") ;;
  esac
done
check_settings
if [[ "$DRY_RUN" == 1 ]]; then log "dry run: printing the gcloud commands, running none"; fi

case "${args[0]:-}" in
  create) create ;;
  setup) setup ;;
  train) train ;;
  run) run ;;
  delete) delete ;;
  status) status ;;
  all)
    trap 'delete; cleanup' EXIT
    run
    ;;
  *)
    echo "usage: $0 [--dry-run] create|setup|train|run|delete|status|all (settings: see the header)" >&2
    exit 2
    ;;
esac
