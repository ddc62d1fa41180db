#!/usr/bin/env bash
# Makes sure the tests and the demo can have a Postgres: a URL in TEST_DATABASE_URL or
# DATABASE_URL, or the initdb/pg_ctl binaries to start a throwaway cluster. On a fresh
# Debian machine without them it installs Debian's postgresql package (as root).
set -euo pipefail
if [ -n "${TEST_DATABASE_URL:-}${DATABASE_URL:-}" ]; then exit 0; fi
if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-postgres: initdb not found; installing Debian's postgresql package" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  exit 0
fi
echo "ensure-postgres: no Postgres: set TEST_DATABASE_URL/DATABASE_URL or install PostgreSQL (initdb, pg_ctl)" >&2
exit 1
