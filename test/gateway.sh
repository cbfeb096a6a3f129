#!/usr/bin/env bash
# The reference gateway (examples/gateway/) over real HTTP: a throwaway
# cluster, then test/gateway_test.py, which starts the gateway and checks
# every answer against billing's state. Needs billing installed and Debian's
# python3-psycopg (test/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
export PATH="$("$PG_CONFIG" --bindir):$PATH"
. test/cluster.sh
DIR=${GATEWAY_TEST_DIR:-/tmp/billing-gateway}
PORT=${GATEWAY_TEST_PORT:-55470}
cluster_start "$DIR" "$PORT"
trap 'cluster_stop "$DIR"' EXIT
GATEWAY_TEST_DIR=$DIR GATEWAY_HTTP_PORT=$((PORT + 1)) /usr/bin/python3 test/gateway_test.py
