#!/usr/bin/env bash
# Backup and restore (docs/operations.md): a database filled through the API
# (test/fill.sql, then test/fill_0.3.0.sql for the rows that 0.3.0 added:
# price books, provider costs, minimum commitments, top-up targets and caps,
# reversals, void and reissued invoices, credit notes, billing details,
# overdue accounts) on one server is dumped with pg_dump in the custom and the
# plain format and restored, with pg_restore and with psql, into empty
# databases of a second, new server (whose transaction ids start lower than
# the first's, as on any new server). Each restored database must
#   a) hold every row of every billing table and every sequence as dumped,
#      each kind of 0.3.0's rows among them,
#   b) pass billing.verify() with the same balance() of every account,
#   c) replay an idempotency key used before the dump without charging again,
#   d) settle the requests left open at the dump,
#   e) give new requests, entries, events and invoices ids above the old,
#   f) let a worker's events_after cursor go on: the old events, then the new.
# Then a dump taken while test/stress charges restores with verify() clean.
# Ends with a line of what it showed, or "dump: FAILED: why" (exit status 1).
#
# Needs billing installed for PG_CONFIG. Environment: DUMP_DIR (default
# /tmp/billing-dump), DUMP_PORT (default 55450; the next port too).
set -euo pipefail
cd "$(dirname "$0")/.."
. test/cluster.sh
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
export PATH="$("$PG_CONFIG" --bindir):$PATH"
DIR=${DUMP_DIR:-/tmp/billing-dump}
PORT=${DUMP_PORT:-55450}
SRC="-h $DIR/source -p $PORT"
DST="-h $DIR/target -p $((PORT + 1))"

fail() { echo "dump: FAILED: $*"; exit 1; }
q() { psql -X -q -v ON_ERROR_STOP=1 -At "$@"; }

cluster_stop "$DIR/source"; cluster_stop "$DIR/target"
rm -rf "$DIR"; mkdir -p "$DIR"; chmod 777 "$DIR"
trap 'cluster_stop "$DIR/source"; cluster_stop "$DIR/target"' EXIT
cluster_start "$DIR/source" "$PORT" || fail "the source server does not start"
cluster_start "$DIR/target" "$((PORT + 1))" || fail "the target server does not start"
export PGUSER=postgres
unset PGHOST PGPORT

# 1. the source: transaction ids well above a new server's, then a day of billing
for i in $(seq 3000); do echo 'SELECT pg_catalog.pg_current_xact_id();'; done | q $SRC -d postgres >/dev/null
q $SRC -d postgres -c 'CREATE DATABASE filled'
q $SRC -d filled -c 'CREATE EXTENSION billing' -f test/fill.sql -f test/fill_0.3.0.sql >"$DIR/fill.log" 2>&1 ||
	{ cat "$DIR/fill.log"; fail "the database cannot be filled"; }
# missing_030 CONNECTION...: the kinds of row of test/fill_0.3.0.sql that a database lacks
missing_030() {
	q "$@" -c "SELECT string_agg(what, ', ') FROM (VALUES
	    ('a book price', EXISTS (SELECT FROM billing.prices WHERE price_book = 'fill3-gold')),
	    ('a discount', EXISTS (SELECT FROM billing.discounts WHERE price_book = 'fill3-gold')),
	    ('a book assignment', EXISTS (SELECT FROM billing.price_book_assignments WHERE price_book = 'fill3-gold')),
	    ('a request priced by a discount, with its provider cost',
	     EXISTS (SELECT FROM billing.requests WHERE discount_id IS NOT NULL AND provider_cost_micros IS NOT NULL)),
	    ('a provider cost', EXISTS (SELECT FROM billing.provider_costs WHERE model = 'fill3-img')),
	    ('a minimum commitment', EXISTS (SELECT FROM billing.minimum_commitments)),
	    ('a top-up target and cap', EXISTS (SELECT FROM billing.accounts WHERE auto_topup_target_micros IS NOT NULL
	                                                                      AND auto_topup_max_per_month_micros IS NOT NULL)),
	    ('a reversal of each source', (SELECT count(DISTINCT source) FROM billing.reversals) = 3),
	    ('a void invoice and its reissue', EXISTS (SELECT FROM billing.invoices v JOIN billing.invoices r USING (account_id, period_start)
	                                                WHERE v.status = 'void' AND r.status = 'open')),
	    ('a credit note', EXISTS (SELECT FROM billing.credit_notes WHERE entry_id IS NOT NULL)),
	    ('billing details', EXISTS (SELECT FROM billing.accounts WHERE billing_details IS NOT NULL)),
	    ('an overdue policy and an account overdue', EXISTS (SELECT FROM billing.accounts WHERE overdue_grace_days = 10
	                                                                                  AND overdue_since IS NOT NULL))
	  ) v(what, present) WHERE NOT present"
}
missing=$(missing_030 $SRC -d filled)
[ -z "$missing" ] || fail "the filled database lacks $missing"
# a worker has read every event so far: its cursor is the last id
cursor=$(q $SRC -d filled -c 'SELECT max(event_id) FROM billing.events_after(NULL, 10000)')
[ -n "$cursor" ] || fail "events_after returns no event on the source"
events=$(q $SRC -d filled -c 'SELECT count(*) FROM billing.events')
rows_script $SRC -d filled >"$DIR/rows.sql"
q $SRC -d filled -f "$DIR/rows.sql" >"$DIR/rows-source.txt"
rows=$(grep -cvE '^(table|sequence) ' "$DIR/rows-source.txt")
balances() {
	q "$@" -c "SELECT a.external_id, billing.balance(a.account_id) - 'computed_at'
	             FROM billing.accounts a ORDER BY a.account_id"
}
balances $SRC -d filled >"$DIR/balances-source.txt"

# 2. the dumps, and their restores on the new server
pg_dump $SRC -d filled -Fc -f "$DIR/filled.dump" || fail "pg_dump -Fc failed"
pg_dump $SRC -d filled -f "$DIR/filled.sql" || fail "pg_dump (plain) failed"
grep -q '^COPY billing.ledger ' "$DIR/filled.sql" || fail "the plain dump holds no ledger rows"
q $DST -d postgres -c 'CREATE DATABASE restored_custom' -c 'CREATE DATABASE restored_plain'
pg_restore $DST -d restored_custom --exit-on-error "$DIR/filled.dump" >"$DIR/restore-custom.log" 2>&1 ||
	{ cat "$DIR/restore-custom.log"; fail "pg_restore failed"; }
q $DST -d restored_plain -f "$DIR/filled.sql" >"$DIR/restore-plain.log" 2>&1 ||
	{ cat "$DIR/restore-plain.log"; fail "psql could not restore the plain dump"; }

# the new server's transaction ids are below the source's: the case that
# moves event ids
[ "$(q $DST -d postgres -c 'SELECT pg_catalog.pg_current_xact_id()::text::bigint')" -lt \
  "$(q $SRC -d postgres -c 'SELECT pg_catalog.pg_current_xact_id()::text::bigint')" ] ||
	fail "the target server's transaction ids are not below the source's"

for db in restored_custom restored_plain; do
	# a) every row and sequence
	q $DST -d $db -f "$DIR/rows.sql" >"$DIR/rows-$db.txt"
	diff -u "$DIR/rows-source.txt" "$DIR/rows-$db.txt" >"$DIR/rows-$db.diff" ||
		{ head -60 "$DIR/rows-$db.diff"; fail "$db: the rows differ from the source's (diff above)"; }
	missing=$(missing_030 $DST -d $db)
	[ -z "$missing" ] || fail "$db: restored without $missing"
	# b) balances and the invariants
	balances $DST -d $db >"$DIR/balances-$db.txt"
	diff -u "$DIR/balances-source.txt" "$DIR/balances-$db.txt" ||
		fail "$db: balance() differs from the source's (diff above)"
	# c) to f)
	q $DST -d $db -v cursor="$cursor" -v events="$events" >"$DIR/after-$db.log" 2>&1 <<'EOF' ||
\i test/expect.sql
SELECT pg_temp.expect(NOT EXISTS (SELECT FROM billing.verify()), 'verify() finds problems');
CREATE TEMP TABLE old AS
SELECT (SELECT max(request_id) FROM billing.requests) AS request, (SELECT max(entry_id) FROM billing.ledger) AS entry,
       (SELECT max(event_id) FROM billing.events) AS event, (SELECT count(*) FROM billing.ledger) AS entries;
-- f) the worker's cursor: nothing new yet; from the start, every old event
SELECT pg_temp.expect(NOT EXISTS (SELECT FROM billing.events_after(:cursor)), 'events_after(cursor) returns events before any new one');
SELECT pg_temp.expect((SELECT count(*) FROM billing.events_after(NULL, 10000)) = :events,
                      'events_after(NULL) does not return every restored event');
-- c) a key used before the dump replays: the same request, no new entry
SELECT pg_temp.expect(billing.charge(:pre, 'fill-img', '{"n":2}', '{"images":[{},{}]}', '{}', 'fill-c-1') ->> 'request_id'
                      = (SELECT request_id::text FROM billing.requests WHERE idempotency_key = 'fill-c-1'),
                      'a reused key does not replay its request');
SELECT pg_temp.expect((SELECT count(*) FROM billing.ledger) = (SELECT entries FROM old), 'a replayed key charged again');
SELECT pg_temp.expect(billing.add_funds(:pre, 3000000, 'fill-pay-1', 'card')
                      = (SELECT entry_id FROM billing.ledger WHERE idempotency_key = 'fill-pay-1'),
                      'a reused funds key does not replay its entry');
-- d) the open requests settle
SELECT pg_temp.expect(billing.complete_request(r.request_id, '{"duration_seconds":7.2}') ->> 'status' = 'completed',
                      'the request in progress does not complete')
  FROM billing.requests r WHERE r.idempotency_key = 'fill-running';
SELECT pg_temp.expect(billing.cancel_request(r.request_id) ->> 'status' = 'cancelled', 'the queued request is not cancelled')
  FROM billing.requests r WHERE r.idempotency_key = 'fill-queued';
SELECT pg_temp.expect(billing.complete_request(r.request_id, '{"images":[{}]}') ->> 'status' = 'completed',
                      'the postpaid request does not complete')
  FROM billing.requests r WHERE r.idempotency_key = 'fill-post-open';
SELECT pg_temp.expect((billing.balance(a) ->> 'held_micros')::bigint = 0, 'money is still held')
  FROM (VALUES (:pre), (:post)) v(a);
-- e) new ids after the old: a request and its entry, an event (a grant), an
-- invoice number from the sequence
SELECT billing.charge(:pre, 'fill-img', '{"n":1}', '{"images":[{}]}') ->> 'request_id' AS request \gset
SELECT pg_temp.expect(:request > (SELECT request FROM old), 'a new request id is not above the old');
SELECT pg_temp.expect((SELECT max(entry_id) FROM billing.ledger) > (SELECT entry FROM old), 'a new entry id is not above the old');
SELECT billing.grant_credits(:pre, 1000, now() + interval '1 day') > 0 AS granted \gset
SELECT pg_temp.expect((SELECT max(event_id) FROM billing.events) > (SELECT event FROM old), 'a new event id is not above the old');
SELECT pg_temp.expect(pg_sequence_last_value(pg_get_serial_sequence('billing.invoices', 'invoice_id'))
                      >= (SELECT max(invoice_id) FROM billing.invoices), 'the invoice numbers start again');
-- f) the cursor goes on: exactly the new events, in order
SELECT pg_temp.expect((SELECT count(*) FROM billing.events_after(:cursor)) =
                      (SELECT count(*) FROM billing.events WHERE event_id > (SELECT event FROM old)),
                      'events_after(cursor) does not return exactly the new events');
SELECT pg_temp.expect((SELECT count(*) FROM billing.events_after(NULL, 10000)) = (SELECT count(*) FROM billing.events),
                      'events_after(NULL) misses events');
SELECT pg_temp.expect(NOT EXISTS (SELECT FROM billing.verify()), 'verify() finds problems after new work');
EOF
		{ cat "$DIR/after-$db.log"; fail "$db: the restored database does not work (above)"; }
done

# 3. a dump taken while the stress program charges is a consistent snapshot
if [ -x test/stress ]; then
	PGHOST=$DIR/source PGPORT=$PORT STRESS_SECONDS=12 test/stress >"$DIR/stress.log" 2>&1 &
	stress=$!
	for i in $(seq 100); do	# until the stress database has work in it
		[ "$(q $SRC -d billing_stress -c 'SELECT count(*) > 100 FROM billing.ledger' 2>/dev/null)" = t ] && break
		sleep 0.2
	done
	pg_dump $SRC -d billing_stress -Fc -f "$DIR/stress.dump" || fail "pg_dump under load failed"
	wait $stress || { tail -5 "$DIR/stress.log"; fail "the stress program failed while dumped"; }
	q $DST -d postgres -c 'CREATE DATABASE restored_stress'
	pg_restore $DST -d restored_stress --exit-on-error "$DIR/stress.dump" >"$DIR/restore-stress.log" 2>&1 ||
		{ cat "$DIR/restore-stress.log"; fail "pg_restore of the dump under load failed"; }
	problems=$(q $DST -d restored_stress -c 'SELECT count(*) FROM billing.verify()')
	entries=$(q $DST -d restored_stress -c 'SELECT count(*) FROM billing.ledger')
	[ "$problems" = 0 ] || fail "the dump taken under load restores with $problems problems in verify()"
	under_load="; a dump under load ($entries entries) restores with verify() clean"
fi
echo "dump: custom and plain dumps restored on a new server: $rows rows (0.3.0's among them) and every sequence kept, balances equal, keys replay, open requests settle, new ids above the old, events_after goes on${under_load:-}"
