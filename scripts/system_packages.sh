#!/usr/bin/env bash
# The system servers the test suite starts for real beside the Python ones, PostgreSQL and Redis
# (mlservice/launcher/postgres.py and mlservice/launcher/redis_server.py find them the same way): installed from
# Debian's packages when missing and we may (root with apt-get), else the command to run is
# printed and this fails.
set -euo pipefail

have_postgres() {
    [[ -n "${MLSERVICE_POSTGRES_BIN_DIR:-}" && -x "${MLSERVICE_POSTGRES_BIN_DIR}/initdb" ]] && return 0
    command -v pg_config >/dev/null && [[ -x "$(pg_config --bindir)/initdb" ]] && return 0
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && return 0
    command -v initdb >/dev/null && command -v postgres >/dev/null
}

have_redis() {
    [[ -n "${MLSERVICE_REDIS_SERVER:-}" && -x "${MLSERVICE_REDIS_SERVER}" ]] && return 0
    command -v redis-server >/dev/null
}

missing=()
have_postgres || missing+=(postgresql)
have_redis || missing+=(redis-server)
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "installing ${missing[*]} (Debian packages) for the tests' servers"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null \
        || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
    exit 0
fi
echo "the tests need ${missing[*]}: sudo apt-get install ${missing[*]} (or set MLSERVICE_POSTGRES_BIN_DIR, MLSERVICE_REDIS_SERVER)" >&2
exit 1
