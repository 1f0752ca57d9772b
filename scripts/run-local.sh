#!/usr/bin/env bash
# Start the whole service on one machine with embedded defaults: a private
# Redis under var/ (unless REDIS_URL is set), a SQLite database under var/,
# then the Procfile's web, worker, beat and flower through honcho.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
[ -f .env ] && { set -a; . ./.env; set +a; }

VAR_DIR="${QUARRY_VAR_DIR:-$PWD/var}"
export QUARRY_VAR_DIR="$VAR_DIR"
mkdir -p "$VAR_DIR/redis"

if [ -z "${REDIS_URL:-}" ]; then
  REDIS_PORT="${QUARRY_REDIS_PORT:-6391}"
  export REDIS_URL="redis://127.0.0.1:${REDIS_PORT}/0"
  if ! redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$VAR_DIR/redis" \
      --daemonize yes --pidfile "$VAR_DIR/redis/redis.pid" \
      --logfile "$VAR_DIR/redis/redis.log" --appendonly yes --save ""
    for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
    trap 'redis-cli -p "$REDIS_PORT" shutdown >/dev/null 2>&1 || true' EXIT
  fi
fi

# Prometheus samples of an earlier run's processes would be added to this one's.
rm -rf "$VAR_DIR/metrics"

flask --app wsgi db upgrade

# A local admin key, made on first start and kept (readable only by you) in
# var/local-admin-key; the database holds only its hash.
KEY_FILE="$VAR_DIR/local-admin-key"
if [ -s "$KEY_FILE" ] && ! flask --app wsgi keys list --tenant local 2>/dev/null \
     | grep -q "$(cut -c1-15 "$KEY_FILE")"; then
  rm -f "$KEY_FILE"  # the database it belonged to is gone
fi
if [ ! -s "$KEY_FILE" ]; then
  (umask 077; flask --app wsgi keys create --tenant local --scopes read,write,admin \
     --tier enterprise --name local-admin 2>/dev/null > "$KEY_FILE")
fi

# Plain log lines for people; deployments default to JSON (LOG_FORMAT).
export LOG_FORMAT="${LOG_FORMAT:-text}"

PORT="${PORT:-8000}"
export PORT
FLOWER_PORT="${FLOWER_PORT:-5555}"
export FLOWER_PORT
cat <<MSG

  Quarry is starting.
    API        http://127.0.0.1:${PORT}/api/v1
    API docs   http://127.0.0.1:${PORT}/docs   (ReDoc: /redoc, OpenAPI: /openapi.json)
    Health     http://127.0.0.1:${PORT}/health
    Flower     http://127.0.0.1:${FLOWER_PORT}
    Redis      ${REDIS_URL}
    Admin key  $(cat "$KEY_FILE")   (also in ${KEY_FILE})
  Ctrl-C stops everything.

MSG
honcho start web worker beat flower
