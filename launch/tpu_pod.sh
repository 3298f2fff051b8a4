#!/usr/bin/env bash
# Train psrjax on a Cloud TPU pod slice with gcloud: create the TPU VMs, install psrjax on
# every worker, run the same `psrjax train` on all workers at once, delete the slice.
#
#   BUCKET=my-bucket launch/tpu_pod.sh all        # create, setup, train, delete
#   launch/tpu_pod.sh create | setup | train | delete | status
#
# Every worker runs the identical command; `psrjax train` finds the other workers itself
# (jax.distributed.initialize reads the pod's worker list), each worker reads its own shard
# of the data, worker 0 writes metrics, samples and evaluation, and all workers write the
# orbax checkpoints together. The workdir must therefore be one directory that every worker
# sees: a GCS bucket mounted with gcsfuse at /mnt/psrjax on each worker.
# train.batch_size is the global batch and runs on any slice: the data axis is the largest
# divisor of the chip count that divides it and the other chips replicate the batch (the log
# says how many chips hold distinct examples; PSR-Net's batch 8 on v4-32's 16 chips: 8). A
# multiple of the chip count gives every chip its own examples (EXTRA_ARGS below).
#
# Settings (environment variables; defaults in brackets):
#   TPU_NAME     [psrjax-pod]            name of the slice
#   ZONE         [us-central2-b]         a zone with the accelerator type
#   ACCELERATOR  [v4-32]                 slice type (v4-32 = 16 chips on 4 workers)
#   RUNTIME      [tpu-ubuntu2204-base]   TPU VM software version
#   PROJECT      [gcloud's default]      Google Cloud project
#   BUCKET       (required: setup/train) GCS bucket for the workdir, without gs://
#   CONFIG       [configs/psrnet.py]     config file[:arg]
#   RUN_NAME     [psrnet]                the workdir is /mnt/psrjax/$RUN_NAME
#   EXTRA_ARGS   [""]                    more `psrjax train` arguments, e.g.
#                                        "--config.train.batch_size=64 --config.sharding.params=fsdp"
#                                        (64: a multiple of v4-32's 16 chips)
# Re-running `train` resumes from the workdir's latest checkpoint.
set -euo pipefail

TPU_NAME=${TPU_NAME:-psrjax-pod}
ZONE=${ZONE:-us-central2-b}
ACCELERATOR=${ACCELERATOR:-v4-32}
RUNTIME=${RUNTIME:-tpu-ubuntu2204-base}
CONFIG=${CONFIG:-configs/psrnet.py}
RUN_NAME=${RUN_NAME:-psrnet}
EXTRA_ARGS=${EXTRA_ARGS:-}
MOUNT=/mnt/psrjax
REPO_DIR=$(cd "$(dirname "$0")/.." && pwd)

gcloud_tpu() {
  local project=()
  if [[ -n "${PROJECT:-}" ]]; then project=(--project "$PROJECT"); fi
  gcloud compute tpus tpu-vm "$@" --zone "$ZONE" "${project[@]}"
}

on_all_workers() {
  gcloud_tpu ssh "$TPU_NAME" --worker=all --command "$1"
}

need_bucket() {
  if [[ -z "${BUCKET:-}" ]]; then
    echo "tpu_pod.sh: set BUCKET to a GCS bucket name (the shared workdir)" >&2
    exit 2
  fi
}

create() {
  gcloud_tpu create "$TPU_NAME" --accelerator-type "$ACCELERATOR" --version "$RUNTIME"
}

setup() {
  need_bucket
  local archive
  archive=$(mktemp --suffix .tar.gz)
  git -C "$REPO_DIR" ls-files -z | tar -C "$REPO_DIR" --null -T - -czf "$archive"
  gcloud_tpu scp "$archive" "$TPU_NAME:~/psrjax.tar.gz" --worker=all
  rm -f "$archive"
  on_all_workers "set -e
    rm -rf ~/psrjax && mkdir -p ~/psrjax && tar -xzf ~/psrjax.tar.gz -C ~/psrjax
    python3 -m venv ~/venv && . ~/venv/bin/activate
    pip install -q --upgrade pip && pip install -q -e ~/psrjax 'jax[tpu]'
    if ! command -v gcsfuse >/dev/null; then
      echo 'deb [signed-by=/usr/share/keyrings/cloud.google.asc] https://packages.cloud.google.com/apt gcsfuse-'\$(lsb_release -cs)' main' | sudo tee /etc/apt/sources.list.d/gcsfuse.list
      curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg | sudo tee /usr/share/keyrings/cloud.google.asc >/dev/null
      sudo apt-get update -q && sudo apt-get install -y -q gcsfuse
    fi
    sudo mkdir -p $MOUNT && sudo chown \$USER $MOUNT
    mountpoint -q $MOUNT || gcsfuse --implicit-dirs $BUCKET $MOUNT"
}

train() {
  need_bucket
  on_all_workers ". ~/venv/bin/activate && cd ~/psrjax && \
    psrjax train --config $CONFIG --workdir $MOUNT/$RUN_NAME $EXTRA_ARGS"
}

delete() {
  gcloud_tpu delete "$TPU_NAME" --quiet
}

status() {
  gcloud_tpu describe "$TPU_NAME" --format 'value(state,acceleratorType)'
}

case "${1:-}" in
  create) create ;;
  setup) setup ;;
  train) train ;;
  delete) delete ;;
  status) status ;;
  all)
    create
    trap delete EXIT
    setup
    train
    ;;
  *)
    echo "usage: $0 create|setup|train|delete|status|all (settings: see the header)" >&2
    exit 2
    ;;
esac
