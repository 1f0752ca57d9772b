#!/usr/bin/env bash
# Start the whole service on one machine with embedded defaults: a Redis of
# this checkout's own under var/ (unless REDIS_URL is set), a SQLite database
# under var/, then the Procfile's web, worker, beat and flower through honcho.
# The port checks, the Redis and the ready line are devstack/local_run.py's.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
[ -f .env ] && { set -a; . ./.env; set +a; }

VAR_DIR="${QUARRY_VAR_DIR:-$PWD/var}"
export QUARRY_VAR_DIR="$VAR_DIR"
# Only this machine reaches the service unless HOST / FLOWER_HOST say otherwise.
export HOST="${HOST:-127.0.0.1}" PORT="${PORT:-8000}"
export FLOWER_HOST="${FLOWER_HOST:-127.0.0.1}" FLOWER_PORT="${FLOWER_PORT:-5555}"
# Listening on loopback, the service is this machine's alone, so its webhooks
# may go to receivers on this machine too (`quarry listen`); one that others
# can reach keeps refusing private addresses unless told otherwise.
case "$HOST" in
  127.*|localhost|::1) export WEBHOOK_ALLOW_PRIVATE_NETWORKS="${WEBHOOK_ALLOW_PRIVATE_NETWORKS:-1}" ;;
esac
# Plain log lines for people; deployments default to JSON (LOG_FORMAT).
export LOG_FORMAT="${LOG_FORMAT:-text}"
local_run() { python -m devstack.local_run "$@"; }

# Ctrl-C (or TERM) is how a run ends, not a failure: honcho stops the
# processes, then the EXIT trap stops the Redis and the script exits 0.
trap 'exit 0' INT TERM

local_run check-ports

own_redis=
ready_pid=
cleanup() {
  if [ -n "$ready_pid" ]; then kill "$ready_pid" 2>/dev/null || true; fi
  if [ -n "$own_redis" ]; then local_run stop-redis || true; fi
}
trap cleanup EXIT
if [ -z "${REDIS_URL:-}" ]; then
  own_redis=1
  # Never another checkout's Redis: its worker would take this one's jobs.
  REDIS_URL="$(local_run redis)"
  export REDIS_URL
  redis_note="$REDIS_URL (this checkout's own, in $VAR_DIR/redis)"
else
  redis_note="REDIS_URL from the environment"
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

echo "Quarry is starting: web on $HOST:$PORT, Flower on $FLOWER_HOST:$FLOWER_PORT, Redis $redis_note."
echo "The URLs and the admin key follow on one line once the web and a worker answer."
case "$HOST" in
  0.0.0.0|::|"") console_host=127.0.0.1 ;;
  *:*) console_host="[$HOST]" ;;
  *) console_host="$HOST" ;;
esac
echo "The web console: http://$console_host:$PORT/console (enter an API key there, such as the admin key)."
local_run wait-ready "$KEY_FILE" &
ready_pid=$!
status=0
honcho start web worker beat flower || status=$?
exit "$status"
