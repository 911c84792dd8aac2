#!/usr/bin/env bash
# Make sure Azurite (Microsoft's Azure Storage emulator, the npm package `azurite`) is installed
# into .cache/azurite of this repo. The Azure tests start their own Azurite Blob service on
# 127.0.0.1 (mlops_sdk.testing.cloud_servers.AzuriteServer); this script only installs it.
# Needs Node.js and npm; installs Debian's nodejs/npm when run as root and they are missing.
set -euo pipefail
VERSION="${AZURITE_VERSION:-3.37.0}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="$ROOT/.cache/azurite"
BIN="$DEST/node_modules/.bin/azurite-blob"
if [ -x "$BIN" ] && grep -q "\"version\": \"$VERSION\"" "$DEST/node_modules/azurite/package.json" 2>/dev/null; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-azurite: installing Debian's nodejs and npm"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "ensure-azurite: npm not found and could not be installed; the Azure Blob tests will be skipped." >&2
  [ "${CI:-}" = "true" ] && exit 1  # in CI a skipped Azure suite would hide a failure
  exit 0
fi
mkdir -p "$DEST"
echo "ensure-azurite: npm install azurite@$VERSION into $DEST"
(cd "$DEST" && npm install --no-audit --no-fund --loglevel=error --prefix "$DEST" "azurite@$VERSION" >/dev/null)
[ -x "$BIN" ] || { echo "ensure-azurite: install finished but $BIN is missing" >&2; exit 1; }
