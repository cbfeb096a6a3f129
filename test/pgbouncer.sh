#!/usr/bin/env bash
# billing behind a connection pooler (docs/operations.md): Debian's pgbouncer
# in transaction pooling, with a pool smaller than its clients, in front of a
# throwaway cluster. Runs test/pgbouncer_test.py (the API's behaviour
# through the pool) and the stress program with its clients through the
# pool (STRESS_POOLER). Needs billing installed for PG_CONFIG and pgbouncer
# (test/setup.sh). Environment: PGBOUNCER_TEST_DIR, PGBOUNCER_TEST_PORT (the
# server's; pgbouncer listens on the next one).
set -euo pipefail
cd "$(dirname "$0")/.."
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
export PATH="$("$PG_CONFIG" --bindir):$PATH"
. test/cluster.sh
DIR=${PGBOUNCER_TEST_DIR:-/tmp/billing-pgbouncer}
PORT=${PGBOUNCER_TEST_PORT:-55460}
BOUNCER=$((PORT + 1))
command -v pgbouncer >/dev/null || { echo "pgbouncer: FAILED: pgbouncer is not installed"; exit 1; }

cluster_start "$DIR" "$PORT"
cat >"$DIR/pgbouncer.ini" <<EOF
[databases]
* = host=$DIR port=$PORT
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER
unix_socket_dir = $DIR
pidfile = $DIR/pgbouncer.pid
logfile = $DIR/pgbouncer.log
auth_type = trust
auth_file = $DIR/userlist.txt
pool_mode = transaction
default_pool_size = 3
max_client_conn = 100
; a client waits at most this long for a server connection: a fault that keeps
; server connections busy fails the test instead of hanging it
query_wait_timeout = 20
; libpq's options (the stress program's statement_timeout) cannot pass a pool
ignore_startup_parameters = extra_float_digits,options
EOF
echo '"postgres" ""' >"$DIR/userlist.txt"
chown "$CLUSTER_USER" "$DIR/pgbouncer.ini" "$DIR/userlist.txt"
as_cluster_user pgbouncer -d "$DIR/pgbouncer.ini"
trap 'kill "$(cat "$DIR/pgbouncer.pid" 2>/dev/null)" 2>/dev/null; cluster_stop "$DIR"' EXIT
for i in $(seq 50); do pg_isready -q -h 127.0.0.1 -p "$BOUNCER" && break; sleep 0.1; done

rc=0
createdb pooled
POOLER="host=127.0.0.1 port=$BOUNCER dbname=pooled user=postgres" \
DIRECT="host=$DIR port=$PORT dbname=pooled user=postgres" \
	/usr/bin/python3 test/pgbouncer_test.py || rc=1
if [ -x test/stress ]; then
	STRESS_POOLER="host=127.0.0.1 port=$BOUNCER dbname=billing_stress user=postgres connect_timeout=10" \
		timeout 300 test/stress >"$DIR/stress.log" 2>&1 && echo "ok: the stress program through the pool" ||
		{ rc=1; tail -20 "$DIR/stress.log"; echo "FAILED: the stress program through the pool"; }
	tail -3 "$DIR/stress.log"
fi
[ $rc -eq 0 ] && echo "pgbouncer: every check passed through a pool of 3 in transaction mode" || echo "pgbouncer: FAILED"
exit $rc
