#!/usr/bin/env bash
# `make run`: Redis (if none answers), one training worker and the API on
# 127.0.0.1:8000 (HTTP) and 127.0.0.1:8001 (the Open Inference Protocol over
# gRPC), with models and datasets under ./var. Ctrl-C stops both.
# The worker is supervised: if it dies it is started again (worker/supervisor.py).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-redis.sh
mkdir -p var
export FITSERVE_DATA_DIR=${FITSERVE_DATA_DIR:-$PWD/var}

if [ -z "${FITSERVE_API_KEYS:-}" ]; then
  if [ ! -s var/api-key ]; then
    (umask 077; python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > var/api-key)
  fi
  chmod 600 var/api-key
  FITSERVE_API_KEYS=$(cat var/api-key)
  export FITSERVE_API_KEYS
  echo "API key (kept in var/api-key): $FITSERVE_API_KEYS"
fi

fitserve worker --supervised &
worker=$!
trap 'kill $worker 2>/dev/null; wait $worker 2>/dev/null' EXIT INT TERM
host=${FITSERVE_SERVER__HOST:-127.0.0.1}
echo "Serving on http://$host:${FITSERVE_SERVER__PORT:-8000}"
grpc_port=${FITSERVE_GRPC__PORT:-8001}
[ "$grpc_port" = 0 ] || echo "gRPC (Open Inference Protocol) on $host:$grpc_port"
fitserve serve
