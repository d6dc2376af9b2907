#!/usr/bin/env bash
# Makes sure a PostgreSQL server and a Redis server are running on 127.0.0.1 for the tests,
# installing them from Debian packages when missing and starting them when stopped, and that
# the command-line peers the tests use (jq, openssl, nginx, PyJWT, prometheus_client, Node.js
# with oidc-provider) are
# installed. Creates a `portcullis`
# role and a `portcullis_test` database. Idempotent: run it as often as you like.
#
# Prints, on standard output and nothing else, the variables to use:
#   eval "$(scripts/services.sh)"
# Progress goes to standard error.
set -euo pipefail

PG_PORT="${PORTCULLIS_PG_PORT:-5432}"
REDIS_PORT="${PORTCULLIS_REDIS_PORT:-6379}"
DB_USER=portcullis
DB_PASSWORD=portcullis
DB_NAME=portcullis_test

log() { printf 'services: %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    log "not root and no sudo: cannot install or start services"; exit 1
  fi
fi

apt_updated=0
apt_install() {
  if [ "$apt_updated" -eq 0 ]; then
    log "apt-get update"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    apt_updated=1
  fi
  log "apt-get install $*"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

as_postgres() { $SUDO -u postgres "$@" 2>/dev/null || runuser -u postgres -- "$@"; }

# --- Command-line peers the tests use -----------------------------------------------------
# jq (the AmateRS audit queries) and openssl (the AmateRS API-key hash recipe).
missing=()
command -v jq >/dev/null 2>&1 || missing+=(jq)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# nginx: the mTLS tests put a real TLS terminator in front of forwarded certificates (the
# tests start their own instance on a free port; the package's service is not needed).
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  if apt-cache show nginx-light >/dev/null 2>&1; then missing+=(nginx-light); else missing+=(nginx); fi
fi
if [ "${#missing[@]}" -gt 0 ]; then
  apt_install "${missing[@]}"
fi
# PyJWT (with python-cryptography): the JWT interoperability tests sign and verify with it.
if ! python3 -c "import jwt, cryptography" >/dev/null 2>&1; then
  log "pip install pyjwt[crypto]"
  python3 -m pip install --quiet --disable-pip-version-check "pyjwt[crypto]>=2.10" >&2
fi
# prometheus_client: its parser reads the quickstart's /metrics as Prometheus would.
if ! python3 -c "import prometheus_client" >/dev/null 2>&1; then
  log "pip install prometheus_client"
  python3 -m pip install --quiet --disable-pip-version-check "prometheus_client>=0.20" >&2
fi

# panva's oidc-provider (a real OpenID Provider for the JWT tests), from the npm registry,
# at the version its package-lock.json pins.
OIDC_DIR="$(cd "$(dirname "$0")/.." && pwd)/testkit/oidc-provider"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  apt_install nodejs npm
fi
if [ ! -d "$OIDC_DIR/node_modules/oidc-provider" ]; then
  log "npm ci (oidc-provider)"
  (cd "$OIDC_DIR" && npm ci --silent --no-audit --no-fund >&2)
fi

# --- PostgreSQL -------------------------------------------------------------------------
if ! command -v pg_lsclusters >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  apt_install postgresql postgresql-client
fi

pg_version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
if ! pg_lsclusters -h 2>/dev/null | awk -v v="$pg_version" '$1 == v && $2 == "main"' | grep -q .; then
  log "creating PostgreSQL $pg_version cluster"
  $SUDO pg_createcluster "$pg_version" main -p "$PG_PORT" >&2
fi
cluster_port=$(pg_lsclusters -h | awk -v v="$pg_version" '$1 == v && $2 == "main" {print $3}')
if [ "$cluster_port" != "$PG_PORT" ]; then
  log "cluster listens on $cluster_port, using that port"
  PG_PORT="$cluster_port"
fi
if ! pg_lsclusters -h | awk -v v="$pg_version" '$1 == v && $2 == "main" {print $4}' | grep -q online; then
  log "starting PostgreSQL $pg_version"
  $SUDO pg_ctlcluster "$pg_version" main start >&2
fi
for _ in $(seq 1 30); do
  if pg_isready -q -h 127.0.0.1 -p "$PG_PORT"; then break; fi
  sleep 1
done
pg_isready -q -h 127.0.0.1 -p "$PG_PORT" || { log "PostgreSQL did not come up on 127.0.0.1:$PG_PORT"; exit 1; }

psql_admin() { as_postgres psql -X -q -v ON_ERROR_STOP=1 -p "$PG_PORT" "$@"; }
if [ "$(psql_admin -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER'")" != "1" ]; then
  log "creating role $DB_USER"
  psql_admin -c "CREATE ROLE $DB_USER LOGIN PASSWORD '$DB_PASSWORD' CREATEDB" >&2
fi
if [ "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" != "1" ]; then
  log "creating database $DB_NAME"
  psql_admin -c "CREATE DATABASE $DB_NAME OWNER $DB_USER" >&2
fi

# --- Redis ------------------------------------------------------------------------------
if ! command -v redis-server >/dev/null 2>&1; then
  apt_install redis-server
fi
if ! redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; then
  log "starting Redis on 127.0.0.1:$REDIS_PORT"
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --daemonize yes \
    --save "" --appendonly no --protected-mode yes >&2
  for _ in $(seq 1 30); do
    if redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; then break; fi
    sleep 0.2
  done
fi
redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG \
  || { log "Redis did not come up on 127.0.0.1:$REDIS_PORT"; exit 1; }

echo "export DATABASE_URL=postgres://$DB_USER:$DB_PASSWORD@127.0.0.1:$PG_PORT/$DB_NAME"
echo "export REDIS_URL=redis://127.0.0.1:$REDIS_PORT"
