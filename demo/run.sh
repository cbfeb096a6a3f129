#!/usr/bin/env bash
# The demo: installs what is missing, builds billing, starts a throwaway
# PostgreSQL 15 cluster, runs demo/demo.sql (a day of an AI media API's
# billing) and removes the cluster again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash test/setup.sh
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
export PATH="$("$PG_CONFIG" --bindir):$PATH"
. test/cluster.sh
DIR=${BILLING_DEMO_DIR:-/tmp/billing-demo}
cluster_start "$DIR" 55499
trap 'cluster_stop "$DIR"; rm -rf "$DIR"' EXIT
psql -X -q -v ON_ERROR_STOP=0 -d postgres -f demo/demo.sql
