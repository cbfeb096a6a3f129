#!/usr/bin/env bash
# The reference gateway (examples/gateway/) over real HTTP: a throwaway
# cluster, then test/gateway_test.py, which starts the gateway and checks
# every answer against billing's state, and runs test/gateway_sdk/sdk_test.mjs:
# the same API through OpenAI's official Node SDK (the npm package `openai`,
# installed into the test run's folder, never into the repo). Needs billing
# installed and Debian's python3-psycopg (test/setup.sh); installs nodejs and
# npm with apt-get when they are missing. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
export PATH="$("$PG_CONFIG" --bindir):$PATH"
. test/cluster.sh
DIR=${GATEWAY_TEST_DIR:-/tmp/billing-gateway}
PORT=${GATEWAY_TEST_PORT:-55470}
# the SDK version the test is written against (7.x declares Node >= 22 but
# runs on Debian 12's Node 20; npm warns, the test decides)
OPENAI_SDK_VERSION=${OPENAI_SDK_VERSION:-7.60.0}

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	echo "installing nodejs and npm"
	SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
fi

cluster_start "$DIR" "$PORT"
trap 'cluster_stop "$DIR"' EXIT
SDK=$DIR/openai-sdk
mkdir -p "$SDK"
echo '{"private": true}' >"$SDK/package.json"
npm install --prefix "$SDK" --no-audit --no-fund --loglevel=error "openai@$OPENAI_SDK_VERSION" >/dev/null
GATEWAY_TEST_DIR=$DIR GATEWAY_HTTP_PORT=$((PORT + 1)) GATEWAY_SDK_DIR=$SDK /usr/bin/python3 test/gateway_test.py
