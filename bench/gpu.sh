#!/usr/bin/env bash
# GPU check for an H100 host whose python3 has JAX (with CUDA) and PyTorch but
# no TensorFlow, Keras or pydantic, and no network. Run it through the device
# tool with `.whl` carried:  bash bench/gpu.sh
#
# Prepare here, once (pure-Python wheels and the two small binary ones the
# host lacks, for its Python 3.12):  bash bench/gpu.sh --fetch-wheels
# orjson, pydantic-settings and python-dotenv: models.datasets imports them
# (its JSON parser; the store's settings).
# typing-extensions comes along although the host has one: pydantic and optree
# need a recent one, and a host without TensorFlow was checked here (a venv of
# JAX, numpy, h5py, absl-py, rich, packaging, ml-dtypes) to fail on its absence.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--fetch-wheels" ]; then
  grep -qx '/.whl/' .git/info/exclude || echo '/.whl/' >> .git/info/exclude
  for wheel in keras==3.15.1 namex optree pydantic==2.13.4 pydantic-core==2.46.4 \
               annotated-types typing-inspection typing-extensions \
               orjson==3.13.0 pydantic-settings==2.16.3 python-dotenv==1.2.4; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
      --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 -d .whl "$wheel"
  done
  ls .whl
  exit 0
fi

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python3 -c 'import jax, keras; print("jax", jax.__version__, jax.devices(), "keras", keras.__version__)'
python3 -m bench.gpu_train
