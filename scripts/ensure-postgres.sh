#!/usr/bin/env bash
# Make sure PostgreSQL's server programs (initdb, pg_ctl, postgres) are on this machine.
# The tests start their own throwaway cluster on 127.0.0.1 (mlops_sdk.testing.postgres);
# this script only installs Debian's package when the programs are missing.
set -euo pipefail
have_pg() {
  command -v initdb >/dev/null 2>&1 && return 0
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
}
if have_pg; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-postgres: installing Debian's postgresql package"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  # Debian starts a system cluster on port 5432; the tests use their own, so stop it.
  (command -v service >/dev/null 2>&1 && service postgresql stop >/dev/null 2>&1) || true
  have_pg && exit 0
fi
echo "ensure-postgres: PostgreSQL server programs not found and could not be installed;" \
     "the PostgreSQL tests will be skipped (install Debian's 'postgresql' package)." >&2
exit 0
