#!/usr/bin/env bash
# The Citus suite (`make check-citus`; docs/citus.md): billing on a coordinator and
# two workers on loopback, distributed by billing.citus_setup(). Checks
#   1. the layout: every billing table distributed or a reference table,
#      calls keyed by an account pushed down to its worker, and a charge on
#      its worker sending nothing to another node;
#   2. the API through the coordinator (test/citus/api.sql), reports of one
#      account included; every function as the first call of a new session
#      on the coordinator and on each worker, and again after a worker
#      restarts (the cluster has the default citus.shard_count, 32);
#   3. races over parallel connections: tight admission on one account, one
#      idempotency key raced, complete against cancel;
#   4. caches after a change (an account disabled, a new price), for a bare
#      SELECT and inside a transaction block;
#   5. ids distinct across the workers, events included, and events_after
#      missing nothing with one worker far ahead and a late writer;
#   6. billing.verify() clean;
#   7. a smoke load: charges per second on the cluster beside one plain
#      server (a figure, not a target);
#   8. DROP EXTENSION after billing.citus_drop(): no shard is left;
#   9. the upgrade from 0.1.0 on a cluster (a PostgreSQL copy of its own).
# Needs Citus installed for PG_CONFIG (citus.control in its sharedir), or
# CITUS_SRC, a Citus source tree that it builds and installs into PG_CONFIG
# first; without either it prints one line saying the suite was skipped and
# exits 77.
# Environment: PG_CONFIG, CITUS_SRC, CITUS_BUILD_DIR (where the copy of
# CITUS_SRC is built; default CITUS_DIR-build), CITUS_DIR (default
# /tmp/billing-citus), CITUS_PORT (default 55450; the workers and the plain
# server take the next three), CITUS_SMOKE_SECONDS (default 10), CITUS_KEEP.
# Ends with "citus: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
export PATH="$("$PG_CONFIG" --bindir):$PATH"
DIR=${CITUS_DIR:-/tmp/billing-citus}
PORT=${CITUS_PORT:-55450}
IMG='{"images":[{"width":1024,"height":1024}]}'	# one image, 0.04 at the default provider
W1=$((PORT + 1)) W2=$((PORT + 2)) PLAIN=$((PORT + 3))

# CITUS_SRC: a Citus source tree (13.x), built and installed into PG_CONFIG
# first. The build runs on a copy (CITUS_BUILD_DIR), never in the tree
# itself, and is skipped while nothing in the tree is newer than the last
# build for this PG_CONFIG.
build_citus() {
	local build=${CITUS_BUILD_DIR:-${DIR%/}-build} stamp log
	stamp=$build/.built-for
	log=$build.log
	if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$PG_CONFIG" ] && [ -f "$("$PG_CONFIG" --pkglibdir)/citus.so" ] &&
		[ -z "$(find "$CITUS_SRC" -newer "$stamp" -print -quit)" ]; then
		echo "citus: Citus from $CITUS_SRC is built and installed already ($build)"
		return 0
	fi
	echo "citus: building Citus from $CITUS_SRC in $build (log: $log)"
	rm -rf "$build"; mkdir -p "$build"
	tar -C "$CITUS_SRC" --exclude=.git -cf - . | tar -C "$build" -xf - || return 1
	# PostgreSQL 15.20 exports have_createdb_privilege() (commands/dbcommands.h),
	# which Citus 13.2 still defines for PostgreSQL 15 as a static shim: the
	# build of the copy uses the server's
	if grep -q 'bool have_createdb_privilege' "$("$PG_CONFIG" --includedir-server)/commands/dbcommands.h"; then
		perl -0pi -e 's/static inline bool\s*\nhave_createdb_privilege\(void\)\s*\{.*?\n\}\n/#include "commands\/dbcommands.h"\n/s' \
			"$build/src/include/pg_version_compat.h" || return 1
	fi
	(cd "$build" && ./configure PG_CONFIG="$PG_CONFIG" && make -j"$(nproc)" && make install) >"$log" 2>&1 ||
		{ tail -20 "$log"; return 1; }
	echo "$PG_CONFIG" >"$stamp"
}
if [ -n "${CITUS_SRC:-}" ]; then
	[ -f "$CITUS_SRC/src/backend/distributed/citus.control" ] ||
		{ echo "citus: FAILED: CITUS_SRC=$CITUS_SRC is not a Citus source tree"; exit 1; }
	build_citus || { echo "citus: FAILED: building Citus from $CITUS_SRC"; echo "citus: 0 passed, 1 failed"; exit 1; }
fi
if [ ! -f "$("$PG_CONFIG" --sharedir)/extension/citus.control" ]; then
	echo "citus: SKIPPED: Citus is not installed for $PG_CONFIG (no citus.control in $("$PG_CONFIG" --sharedir)/extension) and CITUS_SRC names no Citus source tree to build"
	exit 77
fi
. test/cluster.sh

passed=0 failed=0
check() {	# check NAME STATUS [output]
	if [ "$2" -eq 0 ]; then passed=$((passed + 1)); echo "citus: ok: $1"
	else failed=$((failed + 1)); echo "citus: FAILED: $1"; [ -n "${3:-}" ] && echo "$3" | tail -15; fi
}
# psql on a node (default the coordinator) that stops at the first error
q() { local port=$PORT; [[ "${1:-}" =~ ^[0-9]+$ ]] && { port=$1; shift; }
	psql -X -q -v ON_ERROR_STOP=1 -At -h 127.0.0.1 -p "$port" -U postgres -d billing "$@"; }
# expect NAME SQL [PORT]: the query must print t
expect() { local out; out=$(q ${3:-$PORT} -c "$2" 2>&1); [ "$out" = t ]; check "$1" $? "$out"; }

NODES=("$DIR/coord:$PORT" "$DIR/w1:$W1" "$DIR/w2:$W2")
stop_all() { for n in "${NODES[@]}" "$DIR/plain:$PLAIN"; do cluster_stop "${n%%:*}"; done; }
[ -n "${CITUS_KEEP:-}" ] || trap stop_all EXIT	# CITUS_KEEP=1: the nodes stay up, for a look
stop_all
rm -rf "$DIR"; mkdir -p "$DIR"; chmod 755 "$DIR"

# 0. three nodes and a plain server, billing preloaded beside Citus
conf=("shared_preload_libraries = 'citus,billing'" "max_prepared_transactions = 100"
	"shared_buffers = 128MB")	# citus.shard_count: the default (32)
for n in "${NODES[@]}"; do
	cluster_start "${n%%:*}" "${n##*:}" "${conf[@]}" >/dev/null || { echo "citus: FAILED: node ${n##*:} does not start"; exit 1; }
	createdb -h 127.0.0.1 -p "${n##*:}" -U postgres billing
	q "${n##*:}" -c "SET client_min_messages = warning; CREATE EXTENSION citus;" || exit 1
done
cluster_start "$DIR/plain" "$PLAIN" "shared_buffers = 128MB" >/dev/null || exit 1
createdb -h 127.0.0.1 -p "$PLAIN" -U postgres billing
out=$(q 2>&1 <<EOF
SET client_min_messages = warning;
SELECT citus_set_coordinator_host('127.0.0.1', $PORT);
SELECT 1 FROM citus_add_node('127.0.0.1', $W1);
SELECT 1 FROM citus_add_node('127.0.0.1', $W2);
CREATE EXTENSION billing;
SELECT billing.citus_setup();
SELECT billing.citus_setup();
EOF
); rc=$?
check "CREATE EXTENSION billing and billing.citus_setup() twice" $rc "$out"
[ $rc -eq 0 ] || exit 1

# 1. layout
expect "every billing table is distributed by account_id or a reference table" "
SELECT bool_and(p.logicalrelid IS NOT NULL
                AND (p.partmethod = 'n' OR (p.partmethod = 'h' AND column_to_column_name(p.logicalrelid, p.partkey) = 'account_id')))
  FROM pg_class c LEFT JOIN pg_dist_partition p ON p.logicalrelid = c.oid
 WHERE c.relnamespace = 'billing'::regnamespace AND c.relkind = 'r'"
expect "the distributed tables are co-located" "
SELECT count(DISTINCT colocationid) = 1 FROM pg_dist_partition
 WHERE logicalrelid::text LIKE 'billing.%' AND partmethod = 'h'"
expect "the shards are on both workers" "
SELECT count(DISTINCT n.nodeport) = 2 FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid)
  JOIN pg_dist_node n USING (groupid) WHERE s.logicalrelid = 'billing.accounts'::regclass"

q -f test/citus/catalog.sql >"$DIR/catalog.log" 2>&1
check "catalog: models and prices through the coordinator" $? "$(cat "$DIR/catalog.log")"
A=$(q -c "SELECT billing.create_account('push-1')")
q -c "SELECT billing.add_funds($A, 100000000)" >/dev/null
for path in bare block; do
	if [ $path = bare ]; then sql="SELECT billing.charge($A, 'ct-img', '{}', '$IMG');"
	else sql="BEGIN; SELECT billing.charge($A, 'ct-img', '{}', '$IMG'); COMMIT;"; fi
	out=$(q -c "SET client_min_messages = debug1;" -c "SET citus.log_remote_commands = on;" -c "$sql" 2>&1)
	echo "$out" | grep -q "pushing down the function call"
	check "a charge ($path) is pushed down to the account's worker" $? "$out"
	# the call itself, and (in a block) the transaction's own commands only
	[ "$(echo "$out" | grep -c 'NOTICE:  issuing .*billing\.')" = 1 ]
	check "a charge ($path) sends one command of billing's to one worker" $? "$out"
done
# on the worker, the charge stays there: single-shard statements run locally,
# nothing sent to another node, no two-phase commit
home=$(q -c "SELECT n.nodeport FROM pg_dist_placement p JOIN pg_dist_node n USING (groupid)
              WHERE p.shardid = get_shard_id_for_distribution_column('billing.accounts', $A)")
out=$(q "$home" -c "SET citus.log_remote_commands = on;" -c "SET client_min_messages = debug1;" \
	-c "SELECT billing.charge($A, 'ct-img', '{}', '$IMG') ->> 'cost_micros'" 2>&1)
! echo "$out" | grep -qE "issuing|PREPARE|intermediate|subplan" && echo "$out" | tail -1 | grep -qx 40000
check "a charge on the account's worker runs there alone (no remote command, no intermediate result)" $? "$out"

# 2. the API through the coordinator
q -v ON_ERROR_STOP=1 -f test/citus/api.sql >"$DIR/api.log" 2>&1
check "the API through the coordinator (test/citus/api.sql)" $? "$(cat "$DIR/api.log")"

# 2b. every function as the first call of a new session (docs/operations.md), on the
# coordinator and on each worker, with the default shard count; again after
# a worker restarts. One psql per call: each call is the session's first, so
# nothing a call plans or caches helps the next. Calls of an account are
# bare (SELECT f(...)), the form Citus delegates to the account's worker;
# what refuses by design on Citus (docs/citus.md) must refuse with 0A000.
q -c "SELECT billing.set_model('ct-vid', 'video', 'vidco', 'VidCo', 'vidco-gen-3')" \
	-c "SELECT billing.set_price('ct-vid', '[{\"type\":\"output\",\"metric\":\"second\",\"unit_price_micros\":30000}]')" >/dev/null
VID='{"duration_seconds":5}'	# 0.15 at ct-vid
# first CALLER PORT SQL [SQLSTATE]: SQL, alone in a new session on the node
# at PORT, succeeds (or fails with SQLSTATE); prints its output. Failures
# go to a file: most calls run in a command substitution's subshell
first() { local what=$1 port=$2 sql=$3 want=${4:-} out rc
	out=$(psql -X -q -At -v ON_ERROR_STOP=1 -v VERBOSITY=sqlstate -h 127.0.0.1 -p "$port" -U postgres -d billing \
		-c "$sql" 2>&1); rc=$?
	if [ -n "$want" ]; then [ $rc -ne 0 ] && [ "$out" = "ERROR:  $want" ]; rc=$?; fi
	[ $rc -eq 0 ] || echo "$what on $port: $sql -> $(echo "$out" | head -3)" >>"$DIR/first.fail"
	echo "$out"
}
rid() { sed -n 's/.*"request_id": \([0-9]*\).*/\1/p' | head -1; }
first_calls() {	# first_calls PORT TAG
	local p=$1 t=$2 a b r1 r2 r3 r4
	a=$(first create_account "$p" "SELECT billing.create_account('first-$t-a')")
	b=$(first create_account "$p" "SELECT billing.create_account('first-$t-b', 'postpaid')")
	first add_funds "$p" "SELECT billing.add_funds($a, 100000000)" >/dev/null
	first balance "$p" "SELECT billing.balance($a)" >/dev/null
	first estimate "$p" "SELECT billing.estimate('ct-vid', '$VID')" >/dev/null
	first effective_cost "$p" "SELECT billing.effective_cost('ct-img', '$IMG')" >/dev/null
	r1=$(first begin_request "$p" "SELECT billing.begin_request($a, 'ct-vid', '$VID')" | rid)
	r2=$(first begin_request "$p" "SELECT billing.begin_request($a, 'ct-img', '{}', 'first-$t')" | rid)
	first begin_request "$p" "SELECT billing.begin_request($a, 'ct-img', '{}', 'first-$t')" >/dev/null	# replayed
	r3=$(first begin_request "$p" "SELECT billing.begin_request($a, 'ct-vid', '$VID', NULL, 'scope-1')" | rid)
	r4=$(first charge "$p" "SELECT billing.charge($a, 'ct-img', '{}', '$IMG')" | rid)
	# the calls whose output is not needed, NAME|SQL|SQLSTATE it must fail
	# with; a call listed twice is replayed (the same key or request)
	while IFS='|' read -r what sql want; do
		first "$what" "$p" "$sql" "$want" >/dev/null
	done <<-CALLS
		charge|SELECT billing.charge($a, 'ct-vid', '{}', '$VID', '{}', 'charge-$t')|
		charge|SELECT billing.charge($a, 'ct-vid', '{}', '$VID', '{}', 'charge-$t')|
		complete_request|SELECT billing.complete_request(${r1:-0}, '$VID')|
		complete_request|SELECT billing.complete_request(${r1:-0}, '$VID')|
		fail_request|SELECT billing.fail_request(${r2:-0}, 'upstream 500', 0)|
		cancel_request|SELECT billing.cancel_request(${r3:-0})|
		response_metadata|SELECT billing.response_metadata(${r4:-0})|
		refund_request|SELECT billing.refund_request(${r4:-0}, 1000, 'first')|
		adjust_balance|SELECT billing.adjust_balance($a, -1, 'first')|
		grant_credits|SELECT billing.grant_credits($a, 1000, NULL, 'promotional')|
		set_spend_limit|SELECT billing.set_spend_limit($a, 100000000, 'day')|
		set_balance_alerts|SELECT billing.set_balance_alerts($a, '{1000}')|
		configure_auto_topup|SELECT billing.configure_auto_topup($a, 1000, 5000000, false)|
		set_credit_limit|SELECT billing.set_credit_limit($b, 1000000, 'first')|
		suggest_credit_limit|SELECT billing.suggest_credit_limit($b)|
		set_billing_type|SELECT billing.set_billing_type($b, 'prepaid')|
		usage|SELECT * FROM billing.usage($a, '-infinity', 'infinity', '{}')|
		statement|SELECT * FROM billing.statement($a, '-infinity', 'infinity')|
		events_after|SELECT * FROM billing.events_after(NULL, 5)|
		verify|SELECT * FROM billing.verify($a)|
		expire_credits|SELECT billing.expire_credits()|
		expire_requests|SELECT billing.expire_requests('1 day')|
		mark_invoice_paid|SELECT billing.mark_invoice_paid(999999999)|PB404
		complete_topup|SELECT billing.complete_topup(999999999, true)|PB404
		catalog|SELECT count(*) FROM billing.catalog|
		set_billing_details|SELECT billing.set_billing_details($b, '{"legal_name":"First"}')|
		set_overdue_policy|SELECT billing.set_overdue_policy($b, 5)|
		list_invoices|SELECT * FROM billing.list_invoices($b)|
		mark_overdue|SELECT billing.mark_overdue()|
		invoice_document|SELECT billing.invoice_document(999999999)|PB404
		void_invoice|SELECT billing.void_invoice(999999999, 'first')|PB404
		issue_credit_note|SELECT billing.issue_credit_note(999999999, 10000, 'first')|PB404
		usage_all|SELECT * FROM billing.usage(NULL, '-infinity', 'infinity', '{}')|0A000
		rollup_usage|SELECT billing.rollup_usage()|0A000
	CALLS
	[ -n "$r1" ] && [ -n "$r2" ] && [ -n "$r3" ] && [ -n "$r4" ] || echo "$t: a request id is missing ($r1 $r2 $r3 $r4)" >>"$DIR/first.fail"
}
for p in $PORT $W1 $W2; do
	: >"$DIR/first.fail"; first_calls "$p" "$p"
	[ ! -s "$DIR/first.fail" ]; check "every function as the first call of a new session on the node at $p (shard_count $(q -c 'SHOW citus.shard_count'))" $? "$(cat "$DIR/first.fail")"
done
as_cluster_user pg_ctl -D "$DIR/w1/data" -m fast -w restart >/dev/null
for p in $PORT $W1; do
	: >"$DIR/first.fail"; first_calls "$p" "restart-$p"
	[ ! -s "$DIR/first.fail" ]; check "every function as the first call of a new session on the node at $p after a worker restart" $? "$(cat "$DIR/first.fail")"
done

# 3. races: each parallel client is its own connection to the coordinator
# tight admission: funds for exactly 30 charges of 0.04, 8 clients x 10 tries
R=$(q -c "SELECT billing.create_account('race-tight')")
q -c "SELECT billing.add_funds($R, 1200000)" >/dev/null
for i in $(seq 8); do
	(for j in $(seq 10); do
		q -v VERBOSITY=sqlstate -c "SELECT billing.charge($R, 'ct-img', '{}', '$IMG')" 2>&1 | grep -c PB402
	done >"$DIR/tight.$i") &
done
wait
expect "tight admission: 30 charges admitted, 50 refused, nothing below zero" "
SELECT count(*) = 30 AND sum(cost_micros) = 1200000 FROM billing.requests WHERE account_id = $R" 
[ "$(cat "$DIR"/tight.* | awk '{s += $1} END {print s}')" = 50 ]; check "tight admission: the 50 refusals are PB402" $?
# the balance as a call of its own: a function of billing inside a query of
# billing's tables would run on the shard, where it cannot query further
avail() { q -c "SELECT billing.balance($1)" | sed 's/.*"available_micros": \([-0-9]*\).*/\1/'; }
held() { q -c "SELECT billing.balance($1)" | sed 's/.*"held_micros": \([-0-9]*\).*/\1/'; }
[ "$(avail $R)" = 0 ]; check "tight admission: balance 0" $? "$(avail $R)"

K=$(q -c "SELECT billing.create_account('race-key')")
q -c "SELECT billing.add_funds($K, 10000000)" >/dev/null
for i in $(seq 8); do
	q -c "SELECT billing.charge($K, 'ct-img', '{}', '$IMG', '{}', 'same-key') ->> 'request_id'" >"$DIR/key.$i" 2>&1 &
done
wait
[ "$(sort -u "$DIR"/key.* | wc -l)" = 1 ]; check "idempotency key raced: every client gets the same request" $? "$(cat "$DIR"/key.*)"
expect "idempotency key raced: one request" "SELECT count(*) = 1 FROM billing.requests WHERE account_id = $K"
[ "$(avail $K)" = $((10000000 - 40000)) ]; check "idempotency key raced: charged once" $? "$(avail $K)"

C=$(q -c "SELECT billing.create_account('race-cc')")
q -c "SELECT billing.add_funds($C, 10000000)" >/dev/null
ok=0
for i in $(seq 5); do
	rid=$(q -c "SELECT billing.begin_request($C, 'ct-img', '{}') ->> 'request_id'")
	q -v VERBOSITY=sqlstate -c "SELECT billing.complete_request($rid, '$IMG')" >"$DIR/cc-complete.$i" 2>&1 &
	q -v VERBOSITY=sqlstate -c "SELECT billing.cancel_request($rid)" >"$DIR/cc-cancel.$i" 2>&1 &
	wait
	n=$(grep -l '"status"' "$DIR/cc-complete.$i" "$DIR/cc-cancel.$i" 2>/dev/null | wc -l)
	grep -q PB409 "$DIR/cc-complete.$i" "$DIR/cc-cancel.$i" && [ "$n" = 1 ] && ok=$((ok + 1))
done
[ $ok = 5 ]; check "complete against cancel: one wins, the other gets PB409 (5 rounds)" $? "$(cat "$DIR"/cc-*)"
used=$(q -c "SELECT COALESCE(sum(cost_micros), 0) FROM billing.requests WHERE account_id = $C AND status = 'completed'")
[ "$(held $C)" = 0 ] && [ "$(avail $C)" = $((10000000 - used)) ]
check "complete against cancel: no hold left, usage only for completed" $? "held $(held $C), available $(avail $C), used $used"

# 4. caches: a session that has charged keeps charging only what is true now
S=$(q -c "SELECT billing.create_account('stale-1')")
q -c "SELECT billing.add_funds($S, 10000000)" >/dev/null
for path in bare block; do
	if [ $path = bare ]; then pre="" post=""; else pre="BEGIN;" post="COMMIT;"; fi
	q -c "UPDATE billing.accounts SET active = true WHERE account_id = $S" >/dev/null
	out=$(q 2>&1 <<EOF
\set ON_ERROR_STOP 0
$pre SELECT billing.charge($S, 'ct-img', '{}', '$IMG') ->> 'cost_micros' AS before_disable; $post
\! psql -X -q -h 127.0.0.1 -p $PORT -U postgres -d billing -c "UPDATE billing.accounts SET active = false WHERE account_id = $S"
$pre SELECT billing.charge($S, 'ct-img', '{}', '$IMG') ->> 'cost_micros' AS after_disable; $post
EOF
)
	echo "$out" | grep -q "does not exist or is disabled"; check "stale cache ($path): a disabled account is refused" $? "$out"
done
q -c "UPDATE billing.accounts SET active = true WHERE account_id = $S" >/dev/null
for path in bare block; do
	if [ $path = bare ]; then pre="" post=""; else pre="BEGIN;" post="COMMIT;"; fi
	price=$([ $path = bare ] && echo 50000 || echo 60000)
	out=$(q 2>&1 <<EOF
$pre SELECT billing.charge($S, 'ct-img', '{}', '$IMG') IS NOT NULL; $post
\! psql -X -q -At -h 127.0.0.1 -p $PORT -U postgres -d billing -c "SELECT billing.set_price('ct-img', '[{\"type\":\"output\",\"metric\":\"image\",\"unit_price_micros\":$price}]') > 0"
$pre SELECT (billing.charge($S, 'ct-img', '{}', '$IMG') ->> 'cost_micros') = '$price'; $post
EOF
)
	echo "$out" | tail -1 | grep -qx t; check "stale cache ($path): a new price is charged" $? "$out"
done

# 5. ids distinct across the workers
for i in $(seq 16); do
	a=$(q -c "SELECT billing.create_account('ids-$i')") &&
		q -c "SELECT billing.add_funds($a, 1000000)" >/dev/null &&
		q -c "SELECT billing.charge($a, 'ct-img', '{}', '$IMG')" >/dev/null || break
done
check "16 accounts charged" $?
expect "the accounts are on both workers" "
SELECT count(DISTINCT n.nodeport) = 2 FROM billing.external_ids e
  JOIN pg_dist_placement p ON p.shardid = get_shard_id_for_distribution_column('billing.accounts', e.account_id)
  JOIN pg_dist_node n USING (groupid)
 WHERE e.external_id LIKE 'ids-%'"
for col in requests:request_id ledger:entry_id accounts:account_id; do
	expect "${col#*:} is unique across the cluster" "
SELECT count(*) = count(DISTINCT ${col#*:}) FROM billing.${col%%:*}"
done

# 5b. event ids (docs/events.md): distinct across the workers, and a reader
# that keeps the last id it handled misses nothing and sees nothing twice,
# with one worker's transaction counter far ahead of the other's and a
# writer that commits after later events were read
acct_on() {	# acct_on PORT: an account of ids-* on the node at PORT
	q -c "SELECT min(e.account_id) FROM billing.external_ids e
	        JOIN pg_dist_placement p ON p.shardid = get_shard_id_for_distribution_column('billing.accounts', e.account_id)
	        JOIN pg_dist_node n USING (groupid) WHERE e.external_id LIKE 'ids-%' AND n.nodeport = $1"; }
grant() { q -c "SELECT billing.grant_credits($1, 1000, NULL, 'promotional')" >/dev/null; }
E1=$(acct_on $W1) E2=$(acct_on $W2)
: >"$DIR/events.seen"; last=0
poll() {	# the reader: every event after the last one it handled
	local before
	while :; do
		before=$last
		q -c "SELECT event_id FROM billing.events_after($last, 7)" >>"$DIR/events.seen" || return 1
		[ -s "$DIR/events.seen" ] && last=$(tail -1 "$DIR/events.seen")
		[ "$last" = "$before" ] && return 0
	done
}
for a in $E1 $E2 $E1 $E2; do grant "$a"; done
poll
# the first worker's transaction counter runs far ahead of the second's
echo 'SELECT pg_current_xact_id();' >"$DIR/xids.sql"
pgbench -n -h 127.0.0.1 -p "$W1" -U postgres -c 2 -T 2 -f "$DIR/xids.sql" billing >/dev/null 2>&1
grant "$E1"; poll
expect "events_after returns a new event of the worker that is ahead at once" "
SELECT count(*) = $(wc -l <"$DIR/events.seen") FROM billing.events"
expect "the worker behind had its event base raised" "SELECT last_value >> 6 > 0 FROM billing.event_node" "$W2"
grant "$E2"; poll
# a writer on the second worker commits after later events were read
q >/dev/null 2>&1 <<EOF &
BEGIN;
SELECT billing.grant_credits($E2, 1000, NULL, 'promotional');
SELECT pg_sleep(3);
COMMIT;
EOF
sleep 1
for a in $E1 $E2 $E1; do grant "$a"; poll; done
wait
poll
[ "$(sort "$DIR/events.seen" | uniq -d | wc -l)" = 0 ] && [ "$(sort -n "$DIR/events.seen")" = "$(cat "$DIR/events.seen")" ]
check "events_after: no event returned twice, ids in order" $? "$(cat "$DIR/events.seen")"
expect "events_after: every committed event returned ($(wc -l <"$DIR/events.seen") seen)" "
SELECT count(*) = $(wc -l <"$DIR/events.seen") FROM billing.events"
expect "event_id is unique across the cluster" "SELECT count(*) = count(DISTINCT event_id) FROM billing.events"
expect "events were written on both workers" "
SELECT count(DISTINCT n.nodeport) = 2 FROM billing.events e
  JOIN pg_dist_placement p ON p.shardid = get_shard_id_for_distribution_column('billing.events', e.account_id)
  JOIN pg_dist_node n USING (groupid)"

# 6. invariants
out=$(q -c "SELECT count(*) FROM billing.verify()" 2>&1)
[ "$out" = 0 ]; check "billing.verify() returns no rows" $? "$out; $(q -c 'SELECT * FROM billing.verify()' 2>&1)"

# 7. smoke load: charges per second, 8 clients, 10 s, 64 accounts; the same
# on one plain server
SMOKE_SECONDS=${CITUS_SMOKE_SECONDS:-10}
q "$PLAIN" -c "CREATE EXTENSION billing" -f test/citus/catalog.sql >/dev/null
for port in $PORT $PLAIN; do
	q "$port" -c "SELECT billing.add_funds(billing.create_account('load-' || i), 1000000000000)
	              FROM generate_series(1, 64) i" >/dev/null
	first=$(q "$port" -c "SELECT min(account_id) FROM billing.external_ids WHERE external_id LIKE 'load-%'")
	# the account id is looked up once per transaction; a charge by a constant id is pushed down
	cat >"$DIR/load.sql" <<EOF
\set a random(0, 63)
SELECT billing.charge(:a + $first, 'ct-img', '{}', '$IMG');
EOF
	pgbench -n -h 127.0.0.1 -p "$port" -U postgres -c 8 -j 2 -T "$SMOKE_SECONDS" -f "$DIR/load.sql" billing \
		>"$DIR/pgbench.$port" 2>&1
	tps[$port]=$(sed -n 's/^tps = \([0-9]*\).*/\1/p' "$DIR/pgbench.$port")
done
[ -n "${tps[$PORT]}" ] && [ -n "${tps[$PLAIN]}" ]
check "smoke load: ${tps[$PORT]:-?} charges/s on the coordinator and 2 workers, ${tps[$PLAIN]:-?} on one plain server" $? \
	"$(cat "$DIR/pgbench.$PORT" "$DIR/pgbench.$PLAIN")"
out=$(q -c "SELECT count(*) FROM billing.verify()" 2>&1)
[ "$out" = 0 ]; check "billing.verify() returns no rows after the load" $? "$out"

# 8. dropping billing: no shard is left behind
out=$(q -c "SELECT billing.citus_drop()" -c "DROP EXTENSION billing" 2>&1); rc=$?
check "billing.citus_drop() and DROP EXTENSION billing" $rc "$out"
for port in $PORT $W1 $W2; do
	expect "no billing table or shard left on the node at $port" "SELECT count(*) = 0 FROM pg_class c
	  WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = 'billing')" "$port"
done

# 9. the upgrade on a Citus cluster: 0.1.0 installed on the coordinator and
# two workers (CREATE EXTENSION reaches the workers; 0.1.0 cannot be
# distributed), filled through its API; then the current build, ALTER
# EXTENSION billing UPDATE (it runs again on every worker), citus_setup()
# and the API on the distributed tables. A copy of this PostgreSQL (with
# Citus) of its own, on the same ports.
UPG_RELEASE=3403213	# the commit of release 0.1.0 (test/upgrade.sh)
upgrade_on_citus() {
	local pgc u n a r
	git cat-file -e "$UPG_RELEASE^{commit}" 2>/dev/null || { echo "commit $UPG_RELEASE (0.1.0) is not in this clone"; return 1; }
	stop_all
	pgc=$(pg_private_copy "$PG_CONFIG" "$DIR/upg/pg") || return 1
	rm -f "$("$pgc" --pkglibdir)/billing.so" "$("$pgc" --sharedir)"/extension/billing[.-]*
	mkdir -p "$DIR/upg/old"; git archive "$UPG_RELEASE" | tar -C "$DIR/upg/old" -xf -
	tree_copy . "$DIR/upg/new"
	extension_install "$DIR/upg/old" "$pgc" >"$DIR/upg/build-old.log" 2>&1 || { tail "$DIR/upg/build-old.log"; return 1; }
	PATH="$("$pgc" --bindir):$PATH"
	for n in "${NODES[@]}"; do
		u=$DIR/upg/${n##*/}; u=${u%%:*}
		cluster_start "$u" "${n##*:}" "${conf[@]}" >/dev/null || return 1
		createdb -h 127.0.0.1 -p "${n##*:}" -U postgres billing
		q "${n##*:}" -c "SET client_min_messages = warning; CREATE EXTENSION citus;" || return 1
	done
	q >"$DIR/upg/fill.log" 2>&1 <<EOF || { cat "$DIR/upg/fill.log"; return 1; }
SET client_min_messages = warning;
SELECT citus_set_coordinator_host('127.0.0.1', $PORT);
SELECT 1 FROM citus_add_node('127.0.0.1', $W1);
SELECT 1 FROM citus_add_node('127.0.0.1', $W2);
CREATE EXTENSION billing VERSION '0.1.0';
SELECT billing.set_model('ct-img', 'image', 'acme', 'Acme Imaging', 'acme-img-v2');
SELECT billing.set_price('ct-img', '[{"type":"output","metric":"image","unit_price_micros":40000}]');
SELECT billing.add_funds(billing.create_account('upg-' || i), 10000000) FROM generate_series(1, 8) i;
SELECT billing.charge(account_id, 'ct-img', '{}', '$IMG') FROM billing.accounts;
SELECT billing.begin_request(account_id, 'ct-img', '{}', 'open') FROM billing.accounts;
EOF
	for n in "${NODES[@]}"; do u=$DIR/upg/${n##*/}; cluster_stop "${u%%:*}"; done
	extension_install "$DIR/upg/new" "$pgc" >"$DIR/upg/build-new.log" 2>&1 || { tail "$DIR/upg/build-new.log"; return 1; }
	for n in "${NODES[@]}"; do
		u=$DIR/upg/${n##*/}; u=${u%%:*}
		as_cluster_user pg_ctl -D "$u/data" -l "$u/server.log" -w start >/dev/null || return 1
	done
	q -c "SET client_min_messages = warning" -c "ALTER EXTENSION billing UPDATE" -c "SELECT billing.citus_setup()" || return 1
	for n in "${NODES[@]}"; do
		[ "$(q "${n##*:}" -c "SELECT extversion FROM pg_extension WHERE extname = 'billing'")" = "$(q -c "SELECT default_version FROM pg_available_extensions WHERE name = 'billing'")" ] ||
			{ echo "the node at ${n##*:} is not updated"; return 1; }
	done
	[ "$(q -c "SELECT count(*) FROM billing.requests")" = 16 ] || { echo "requests lost"; return 1; }
	a=$(q -c "SELECT min(account_id) FROM billing.accounts")
	# the open requests of 0.1.0 settle, new work is charged, on the workers
	r=$(q -c "SELECT request_id FROM billing.requests WHERE account_id = $a AND idempotency_key = 'open'")
	q -c "SELECT billing.complete_request($r, '$IMG')" >/dev/null || return 1
	out=$(q -c "SET client_min_messages = debug1" -c "SELECT billing.charge($a, 'ct-img', '{}', '$IMG')" 2>&1)
	echo "$out" | grep -q "pushing down the function call" && echo "$out" | grep -q '"cost_micros": 40000' || { echo "$out"; return 1; }
	q -c "SELECT billing.charge(account_id, 'ct-img', '{}', '$IMG') FROM billing.external_ids" >/dev/null || return 1
	[ "$(q -c "SELECT count(*) = count(DISTINCT request_id) FROM billing.requests")" = t ] || { echo "request ids repeat"; return 1; }
	out=$(q -c "SELECT count(*) FROM billing.verify()"); [ "$out" = 0 ] || { q -c "SELECT * FROM billing.verify()"; return 1; }
	q -c "SELECT billing.citus_drop()" -c "DROP EXTENSION billing" || return 1
	for n in "${NODES[@]}"; do u=$DIR/upg/${n##*/}; cluster_stop "${u%%:*}"; done
}
out=$(upgrade_on_citus 2>&1); rc=$?
check "the upgrade from 0.1.0 on a Citus cluster: ALTER EXTENSION UPDATE on every node, citus_setup(), open requests settle, verify() clean" $rc "$out"
for n in "${NODES[@]}"; do u=$DIR/upg/${n##*/}; cluster_stop "${u%%:*}"; done

echo "citus: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
