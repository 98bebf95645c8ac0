#!/usr/bin/env bash
# Make sure PostgreSQL and Redis answer on loopback for the test suite:
# start them where they are installed but stopped, say clearly where they are missing.
set -euo pipefail

PGHOST=127.0.0.1
PGPORT=5432
REDIS_PORT=6379

pg_up() { pg_isready -q -h "$PGHOST" -p "$PGPORT" 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; }

wait_for() {  # wait_for <check-function> <name>
  for _ in $(seq 1 60); do "$1" && return 0; sleep 0.5; done
  echo "error: $2 did not come up" >&2; return 1
}

if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "PostgreSQL is stopped; starting it"
    for version in $(ls /etc/postgresql); do
      pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    done
    wait_for pg_up PostgreSQL
  else
    echo "error: PostgreSQL is not installed. Install it (apt-get install postgresql) or point DATABASE_URL at a server." >&2
    exit 1
  fi
fi

if ! redis_up; then
  if command -v redis-server >/dev/null; then
    echo "Redis is stopped; starting it"
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log
    wait_for redis_up Redis
  else
    echo "error: Redis is not installed. Install it (apt-get install redis-server)." >&2
    exit 1
  fi
fi
echo "PostgreSQL and Redis answer."
