#!/usr/bin/env bash
# Make sure a Redis answers on FITSERVE_REDIS_URL's host and port (127.0.0.1:6379
# by default), starting a local one if none does.
set -euo pipefail
host=${REDIS_HOST:-127.0.0.1}
port=${REDIS_PORT:-6379}

ping() { redis-cli -h "$host" -p "$port" ping 2>/dev/null | grep -q PONG; }

if command -v redis-cli >/dev/null && ping; then
  exit 0
fi
if ! command -v redis-server >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "ensure-redis: installing redis-server" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "ensure-redis: no Redis answers on $host:$port and redis-server is not installed;" \
         "install it (e.g. apt-get install redis-server) or set FITSERVE_REDIS_URL." >&2
    exit 1
  fi
fi
mkdir -p var/redis
echo "ensure-redis: starting redis-server on $host:$port (data in var/redis)" >&2
redis-server --daemonize yes --bind "$host" --port "$port" --dir "$PWD/var/redis" \
  --appendonly yes --logfile "$PWD/var/redis/redis.log"
for _ in $(seq 50); do ping && exit 0; sleep 0.1; done
echo "ensure-redis: redis-server did not answer on $host:$port" >&2
exit 1
