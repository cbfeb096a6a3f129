#!/usr/bin/env bash
# billing benchmark (`make bench`). Installs nothing: the extension must be
# installed for $PG_CONFIG. Starts a throwaway cluster with default durable
# settings (fsync on, synchronous_commit on) and measures with pgbench
# (-M prepared, CLIENTS clients, 2 threads; the scripts are bench/pgbench/*.sql),
# RUNS runs of SECONDS each (medians reported):
#   (1) billing.charge() on ONE account with a large balance
#   (1a) the same, where the account has a monthly spend limit and the
#       request's scope (API key) a daily one, both far from reached
#   (1b) the same, on an account whose money is 100 live credit grants
#   (1c) the same, on an account with a price book assigned and a book-wide
#       discount (docs/pricing.md, "Price books and discounts")
#   (1d) the same as (1), of a model whose route has a provider cost
#       version (the charge also records what it cost upstream)
#   (2) the floor: one plain SQL statement (conditional debit + request row +
#       ledger row) on accounts spread over 10,000 rows
#   (3) the same plain statement on ONE account (the row-lock design)
#   (1v) the video path on one account: begin_request, then complete_request
#       (two transactions; pairs/s)
#   (4) p50/p99 latency of (1) (pgbench's per-transaction log), and (1)
#       again after LEDGER_ROWS ledger entries
#   (6) one client with synchronous_commit = off, CALLS calls per run: the
#       CPU time of the backend and the WAL per call of (1), (1a), (1b), (1c), (1d)
#       and (2), and per pair of (1v) (bench/cost: reading the backend's CPU
#       time needs its pid)
#   (5) after (4): billing.usage() of one account that settled REPORT_REQUESTS
#       requests in 30 days, by day and model, and the statement page of its
#       latest 100 entries (one client, median latency of RUNS runs)
# Settings: BENCH_CLIENTS (16), BENCH_RUNS (5), BENCH_SECONDS (10), BENCH_CALLS (20000),
# BENCH_LEDGER_ROWS (10000000), BENCH_REPORT_REQUESTS (1000000), BENCH_PORT (55502), BENCH_DIR
# (/tmp/billing-bench), BENCH_PROFILE=1 loads pg_stat_statements and prints
# where the time of billing.charge() goes; BENCH_VERIFY_TIMEOUT (120) bounds
# the final billing.verify().
set -euo pipefail
cd "$(dirname "$0")/.."

PG_CONFIG=${PG_CONFIG:-pg_config}
export PATH="$("$PG_CONFIG" --bindir):$PATH"
CLIENTS=${BENCH_CLIENTS:-16}
RUNS=${BENCH_RUNS:-5}
SECONDS_PER_RUN=${BENCH_SECONDS:-10}
CALLS=${BENCH_CALLS:-20000}
LEDGER_ROWS=${BENCH_LEDGER_ROWS:-10000000}
REPORT_REQUESTS=${BENCH_REPORT_REQUESTS:-1000000}
PORT=${BENCH_PORT:-55502}
DIR=${BENCH_DIR:-/tmp/billing-bench}
PLAIN_ACCOUNTS=10000
OTHER_ACCOUNTS=1000

if [ ! -f "$("$PG_CONFIG" --sharedir)/extension/billing.control" ]; then
	echo "bench: the billing extension is not installed for $PG_CONFIG (make install first)" >&2
	exit 1
fi
[ -x bench/cost ] || make -s bench/cost PG_CONFIG="$PG_CONFIG"
command -v pgbench >/dev/null || { echo "bench: pgbench is not in $("$PG_CONFIG" --bindir)" >&2; exit 1; }
ROOT=$PWD

. test/cluster.sh
extra=()
[ "${BENCH_PROFILE:-0}" = 1 ] && extra=("shared_preload_libraries = 'pg_stat_statements'"
	"pg_stat_statements.track = all")
cluster_start "$DIR" "$PORT" "${extra[@]}"
trap 'cluster_stop "$DIR"' EXIT
export PGDATABASE=billing_bench
createdb billing_bench
sql() { psql -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }

# The billing side: one busy account with a large balance, one image model.
ACCOUNT=$(sql <<'EOF'
CREATE EXTENSION billing;
SELECT billing.set_model('bench-img', 'image', 'bench', 'Bench Images');
SELECT billing.set_price('bench-img',
    '[{"type":"output","metric":"image","unit_price_micros":40000,"unit_size":1}]',
    NULL, pg_catalog.now() - interval '1 day');
SELECT billing.set_model('bench-vid', 'video', 'bench', 'Bench Video');
SELECT billing.set_price('bench-vid',
    '[{"type":"output","metric":"second","unit_price_micros":50000}]',
    NULL, pg_catalog.now() - interval '1 day');
SELECT billing.set_model('bench-costed', 'image', 'bench', 'Bench Images');
SELECT billing.set_price('bench-costed',
    '[{"type":"output","metric":"image","unit_price_micros":40000,"unit_size":1}]',
    NULL, pg_catalog.now() - interval '1 day');
SELECT billing.set_provider_cost('bench-costed', 'bench',
    '[{"type":"output","metric":"image","unit_price_micros":25000,"unit_size":1}]',
    pg_catalog.now() - interval '1 day');
SELECT billing.create_account('bench-busy');
EOF
)
ACCOUNT=$(echo "$ACCOUNT" | tail -1)
sql -c "SELECT billing.add_funds($ACCOUNT, 10000000000000, 'bench-initial')" >/dev/null
# (1a): limits of 1,000,000,000 USD; (1b): 100 grants of 100,000 USD, of
# both categories, expiring in 30 to 130 days, so that all stay live.
LIMITED=$(sql -c "SELECT billing.create_account('bench-limited')")
sql -c "SELECT billing.add_funds($LIMITED, 10000000000000, 'bench-initial')" \
	-c "SELECT billing.set_spend_limit($LIMITED, 1000000000000000, 'month')" \
	-c "SELECT billing.set_spend_limit($LIMITED, 1000000000000000, 'day', 'bench-key')" >/dev/null
# (1c): a book with a discount of 10 % on every model, assigned.
BOOKED=$(sql -c "SELECT billing.create_account('bench-booked')")
sql -c "SELECT billing.add_funds($BOOKED, 10000000000000, 'bench-initial')" \
	-c "SELECT billing.create_price_book('bench-book')" \
	-c "SELECT billing.set_discount('bench-book', 900000, NULL, NULL, now() - interval '1 day')" \
	-c "SELECT billing.assign_price_book($BOOKED, 'bench-book')" >/dev/null
VIDEO=$(sql -c "SELECT billing.create_account('bench-video')")
sql -c "SELECT billing.add_funds($VIDEO, 10000000000000, 'bench-initial')" >/dev/null
GRANTED=$(sql -c "SELECT billing.create_account('bench-granted')")
sql -c "SELECT billing.grant_credits($GRANTED, 100000000000, now() + (30 + g) * interval '1 day',
                                     CASE WHEN g % 2 = 0 THEN 'promotional' ELSE 'paid' END)
          FROM generate_series(1, 100) g" >/dev/null

# The floor: plain tables shaped like billing's (identity keys, jsonb
# request documents, ledger keyed by account), in their own schema.
sql <<EOF
CREATE SCHEMA plain;
CREATE TABLE plain.accounts (account_id bigint PRIMARY KEY, balance_micros bigint NOT NULL)
    WITH (fillfactor = 50);
INSERT INTO plain.accounts SELECT g, 10000000000000 FROM generate_series(1, $PLAIN_ACCOUNTS) g;
CREATE TABLE plain.requests (
    account_id bigint NOT NULL,
    request_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model text NOT NULL, status text NOT NULL, params jsonb NOT NULL, outputs jsonb,
    cost_micros bigint, created_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX ON plain.requests (account_id);
CREATE TABLE plain.ledger (
    account_id bigint NOT NULL,
    entry_id bigint GENERATED ALWAYS AS IDENTITY,
    kind text NOT NULL, amount_micros bigint NOT NULL, request_id bigint,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (account_id, entry_id));
CREATE INDEX ON plain.ledger (account_id, created_at);
VACUUM ANALYZE;
CHECKPOINT;
EOF

median() { sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}'; }

LOG=$DIR/bench.log
: >"$LOG"
mkdir -p "$DIR/pgbench"
# run TAG SCRIPT SECONDS [NAME=VALUE...]: one pgbench run of
# bench/pgbench/SCRIPT.sql with those variables; its line (tps, and p50/p99
# of the transactions' latencies from pgbench's log) kept in the log
run() {
	local tag=$1 script=$2 secs=$3 out tps lat v vars=()
	shift 3
	for v in "$@"; do vars+=(-D "$v"); done
	rm -f "$DIR"/pgbench/pgbench_log.*
	out=$(cd "$DIR/pgbench" && pgbench -n -M prepared -c "$CLIENTS" -j 2 -T "$secs" -l "${vars[@]}" \
		-f "$ROOT/bench/pgbench/$script.sql" 2>&1) || { echo "bench: pgbench failed: $out" >&2; exit 1; }
	tps=$(sed -n 's/^tps = \([0-9]*\.[0-9]\).*/\1/p' <<<"$out")
	# the log's third column is the transaction's latency in microseconds
	lat=$(cat "$DIR"/pgbench/pgbench_log.* | awk '{print $3}' | sort -n |
		awk '{v[NR] = $1} END {printf "p50_ms=%.3f p99_ms=%.3f", v[int(NR * 0.5 + 0.5)] / 1000, v[int(NR * 0.99 + 0.5)] / 1000}')
	echo "$tag script=$script clients=$CLIENTS tps=$tps $lat" >>"$LOG"
	echo "  $tag script=$script clients=$CLIENTS tps=$tps $lat"
}

echo "billing bench: pgbench -M prepared, $CLIENTS clients, $RUNS runs x ${SECONDS_PER_RUN} s, fsync=on synchronous_commit=on, $(nproc) CPUs"
echo "warm-up"
run warm charge 2 acct="$ACCOUNT"
run warm charge_scoped 2 acct="$LIMITED"
run warm charge 2 acct="$GRANTED"
run warm charge 2 acct="$BOOKED"
run warm charge_costed 2 acct="$ACCOUNT"
run warm video 2 acct="$VIDEO"
run warm floor 2 accounts="$PLAIN_ACCOUNTS"
# The designs alternate, so that checkpoints and drift hit each alike.
for i in $(seq "$RUNS"); do
	echo "run $i"
	run charge charge "$SECONDS_PER_RUN" acct="$ACCOUNT"
	run limits charge_scoped "$SECONDS_PER_RUN" acct="$LIMITED"
	run grants charge "$SECONDS_PER_RUN" acct="$GRANTED"
	run book charge "$SECONDS_PER_RUN" acct="$BOOKED"
	run costed charge_costed "$SECONDS_PER_RUN" acct="$ACCOUNT"
	run video video "$SECONDS_PER_RUN" acct="$VIDEO"
	run spread floor "$SECONDS_PER_RUN" accounts="$PLAIN_ACCOUNTS"
	run one floor "$SECONDS_PER_RUN" accounts=1
done
# (6) one client, commits not waited for: what a call costs the server.
# cost TAG MODE ARG: CALLS calls of bench/cost, its line kept in the log
cost() {
	local out
	out=$(PGOPTIONS="-c synchronous_commit=off" bench/cost "$2" "$3" "$CALLS") ||
		{ echo "bench: bench/cost failed: $out" >&2; exit 1; }
	echo "$1 $out" >>"$LOG"
	echo "  $1 $out"
}
echo "one client, synchronous_commit=off, $CALLS calls per run"
cost warm charge "$ACCOUNT"
cost warm floor "$PLAIN_ACCOUNTS"
for i in $(seq "$RUNS"); do
	echo "run $i, one client"
	cost cost-charge charge "$ACCOUNT"
	cost cost-limits charge-scoped "$LIMITED"
	cost cost-grants charge "$GRANTED"
	cost cost-book charge "$BOOKED"
	cost cost-costed charge-costed "$ACCOUNT"
	cost cost-video video "$VIDEO"
	cost cost-spread floor "$PLAIN_ACCOUNTS"
done
VALIDATION=$(sql -c "SELECT billing.balance($ACCOUNT)->>'validation'")
LIMITS=$(sql -c "SELECT string_agg(l->>'period' || ' ' || (l->>'spent_micros') || '/' || (l->>'limit_micros'), ', ')
                   FROM jsonb_array_elements(billing.balance($LIMITED)->'limits') l")
LIVE_GRANTS=$(sql -c "SELECT count(*) FROM jsonb_array_elements(billing.balance($GRANTED)->'credits') g
                       WHERE (g->>'remaining_micros')::bigint > 0")

# (4) 10M ledger entries of other accounts, loaded directly: each pair is a
# usage-sized debit and the funds that cover it, so every account nets to
# zero and billing.verify() still holds. Two loaders share the work.
echo "loading $LEDGER_ROWS ledger entries for $OTHER_ACCOUNTS other accounts"
load_start=$(date +%s)
sql -c "SELECT billing.create_account('bench-other-' || g) FROM generate_series(1, $OTHER_ACCOUNTS) g" >/dev/null
FIRST_OTHER=$(sql -c "SELECT min(account_id) FROM billing.accounts WHERE external_id LIKE 'bench-other-%'")
half=$((LEDGER_ROWS / 4 * 2))
load_part() {	# load_part FROM TO (1-based entry numbers, pairs never split)
	sql <<EOF
INSERT INTO billing.ledger (account_id, kind, amount_micros, created_at)
SELECT $FIRST_OTHER + (g - 1) / 2 % $OTHER_ACCOUNTS,
       CASE WHEN g % 2 = 1 THEN 'funds' ELSE 'adjustment' END,
       CASE WHEN g % 2 = 1 THEN 40000 ELSE -40000 END,
       now() - interval '90 days' + g * interval '$((7776000000000 / LEDGER_ROWS)) microseconds'
FROM generate_series($1, $2) g;
EOF
}
load_part 1 "$half" &
p1=$!
load_part $((half + 1)) "$LEDGER_ROWS" &
p2=$!
wait $p1 && wait $p2
sql -c "VACUUM ANALYZE billing.ledger" -c "CHECKPOINT"
echo "  loaded in $(($(date +%s) - load_start)) s; ledger has $(sql -c 'SELECT count(*) FROM billing.ledger') entries"

# The floor runs again in between as a control: the machine may be busier
# now than before, and the ratio to the floor shows it.
run warm10m charge 2 acct="$ACCOUNT"
for i in $(seq "$RUNS"); do
	echo "run $i after the load"
	run charge10m charge "$SECONDS_PER_RUN" acct="$ACCOUNT"
	run spread10m floor "$SECONDS_PER_RUN" accounts="$PLAIN_ACCOUNTS"
done

# (5) Reports: one account that settled REPORT_REQUESTS requests of four
# models in the 30 days before today, loaded set-based as settlement posts
# them (a completed request and its usage entry), then taken in by the rollup.
echo "loading $REPORT_REQUESTS settled requests of one account over 30 days"
load_start=$(date +%s)
REPORT_ACCOUNT=$(sql -c "SELECT billing.create_account('bench-report')")
sql <<EOF
SELECT billing.add_funds($REPORT_ACCOUNT, 40000::bigint * $REPORT_REQUESTS + 1000000, 'bench-report');
CREATE TABLE plain.report_window AS
SELECT date_trunc('day', now()) - interval '30 days' AS from_ts, date_trunc('day', now()) AS to_ts,
       NULL::timestamptz AS page_from;
WITH r AS (
    INSERT INTO billing.requests (account_id, model, provider, status, params, outputs,
                                  cost_estimate_micros, cost_micros, currency, postpaid,
                                  created_at, completed_at)
    SELECT $REPORT_ACCOUNT, 'bench-img-' || g % 4, 'bench', 'completed', '{"n":1}',
           '{"images":[{"width":1024,"height":1024}]}', 40000, 40000, 'USD', false, t, t
      FROM plain.report_window w, generate_series(1, $REPORT_REQUESTS) g,
           LATERAL (SELECT w.from_ts + (g - 1) * (interval '30 days' / $REPORT_REQUESTS)) s(t)
    RETURNING request_id, completed_at)
INSERT INTO billing.ledger (account_id, kind, amount_micros, request_id, created_at)
SELECT $REPORT_ACCOUNT, 'usage', -40000, request_id, completed_at FROM r ORDER BY request_id;
SELECT billing._adjust_available($REPORT_ACCOUNT, -40000::bigint * $REPORT_REQUESTS);
UPDATE plain.report_window SET page_from =
    (SELECT created_at FROM billing.ledger WHERE account_id = $REPORT_ACCOUNT
      ORDER BY entry_id DESC OFFSET 99 LIMIT 1);
EOF
echo "  loaded in $(($(date +%s) - load_start)) s"
rollup_start=$(date +%s)
sql -c "SELECT billing.rollup_usage()" -c "SELECT billing.rollup_usage()" >/dev/null
sql -c "VACUUM ANALYZE" -c "CHECKPOINT"
echo "  rolled up in $(($(date +%s) - rollup_start)) s; ledger has $(sql -c 'SELECT count(*) FROM billing.ledger') entries," \
	"rollup $(sql -c 'SELECT count(*) FROM billing.usage_rollup') rows"
REPORT_EXACT=$(sql -c "SELECT (SELECT sum(cost_micros) FROM plain.report_window w,
                              billing.usage($REPORT_ACCOUNT, w.from_ts, w.to_ts))
                       = 40000::bigint * $REPORT_REQUESTS")
saved_clients=$CLIENTS
CLIENTS=1
for i in $(seq "$RUNS"); do
	echo "run $i of the reports"
	run report report "$SECONDS_PER_RUN" acct="$REPORT_ACCOUNT"
	run statement statement "$SECONDS_PER_RUN" acct="$REPORT_ACCOUNT"
done
CLIENTS=$saved_clients

# Exactness of the busy account: balance() against the acknowledged work.
CHECK=$(sql -c "SELECT (billing.balance($ACCOUNT)->>'balance_micros')::bigint
                       = 10000000000000 - 40000 * count(*) AND (billing.balance($ACCOUNT)->>'held_micros')::bigint = 0
                       AND count(*) FILTER (WHERE model = 'bench-costed')
                           = count(*) FILTER (WHERE provider_cost_micros = 25000)
                  FROM billing.requests WHERE account_id = $ACCOUNT AND status = 'completed'")
verify_start=$(date +%s)
PROBLEMS=$(PGOPTIONS="-c statement_timeout=${BENCH_VERIFY_TIMEOUT:-120}s" \
	sql -c "SELECT count(*) FROM billing.verify()" 2>&1) || PROBLEMS="timed out after ${BENCH_VERIFY_TIMEOUT:-120} s"
VERIFY_SECONDS=$(($(date +%s) - verify_start))
BAL=$(sql -c "SELECT billing.balance($ACCOUNT)")

med() { grep "^$1 " "$LOG" | field "$2" | median; }
c=$(med charge tps); cl=$(med limits tps); cg=$(med grants tps); cb=$(med book tps); cd=$(med costed tps); v=$(med video tps); s=$(med spread tps); o=$(med one tps); c10=$(med charge10m tps); s10=$(med spread10m tps)
echo
echo "results (medians of $RUNS runs, pgbench, $CLIENTS clients, transactions/s):"
echo "  (1) billing.charge, one account:        $c"
echo "  (2) plain statement, 10,000 accounts:   $s"
echo "  (3) plain statement, one account:       $o"
echo "  (1)/(2) = $(ratio "$c" "$s")   (target >= 0.9)"
echo "  latency p50/p99: (1) $(med charge p50_ms)/$(med charge p99_ms) ms, (2) $(med spread p50_ms)/$(med spread p99_ms) ms;" \
	"p99 (1)/(2) = $(ratio "$(med charge p99_ms)" "$(med spread p99_ms)")   (target <= 1.2)"
echo "  (1a) with a monthly and a key's daily limit: $cl, (1a)/(2) = $(ratio "$cl" "$s"), (1a)/(1) = $(ratio "$cl" "$c")"
echo "  (1b) with 100 live credit grants:            $cg, (1b)/(2) = $(ratio "$cg" "$s"), (1b)/(1) = $(ratio "$cg" "$c")"
echo "  (1c) with a price book and a discount:       $cb, (1c)/(2) = $(ratio "$cb" "$s"), (1c)/(1) = $(ratio "$cb" "$c")   (target >= 0.95)"
echo "  (1d) on a route with a provider cost version: $cd, (1d)/(2) = $(ratio "$cd" "$s"), (1d)/(1) = $(ratio "$cd" "$c")   (target >= 0.95)"
echo "  (1v) video, begin_request + complete_request: $v pairs/s, pairs per charge = $(ratio "$v" "$c") (goal >= 0.45)"
echo "  (1)/(3) = $(ratio "$c" "$o")"
echo "  (4) billing.charge latency p50 $(med charge p50_ms) ms, p99 $(med charge p99_ms) ms"
echo "      after $LEDGER_ROWS ledger entries: $c10 charges/s, p50 $(med charge10m p50_ms) ms, p99 $(med charge10m p99_ms) ms"
echo "      after/before = $(ratio "$c10" "$c"); (1)/(2) after = $(ratio "$c10" "$s10") (floor control after: $s10)"
echo "  plain one-account latency p50 $(med one p50_ms) ms, p99 $(med one p99_ms) ms;" \
	"spread p50 $(med spread p50_ms) ms, p99 $(med spread p99_ms) ms"
cc=$(med cost-charge cpu_us); cs=$(med cost-spread cpu_us); wc=$(med cost-charge wal_bytes); ws=$(med cost-spread wal_bytes)
echo "  (6) one client, synchronous_commit=off, per call (medians of $RUNS runs of $CALLS calls):"
echo "      (1) charge: CPU $cc us, WAL $wc bytes; (2) floor: CPU $cs us, WAL $ws bytes"
echo "      CPU (1)/(2) = $(ratio "$cc" "$cs") (target <= 1.2), WAL (1)/(2) = $(ratio "$wc" "$ws") (target <= 1.3)"
echo "      (1a) limits: CPU $(med cost-limits cpu_us) us, WAL $(med cost-limits wal_bytes) bytes, CPU (1a)/(1) = $(ratio "$(med cost-limits cpu_us)" "$cc")"
echo "      (1b) grants: CPU $(med cost-grants cpu_us) us, WAL $(med cost-grants wal_bytes) bytes, CPU (1b)/(1) = $(ratio "$(med cost-grants cpu_us)" "$cc")"
echo "      (1c) price book: CPU $(med cost-book cpu_us) us, WAL $(med cost-book wal_bytes) bytes, CPU (1c)/(1) = $(ratio "$(med cost-book cpu_us)" "$cc")"
echo "      (1d) provider cost: CPU $(med cost-costed cpu_us) us, WAL $(med cost-costed wal_bytes) bytes, CPU (1d)/(1) = $(ratio "$(med cost-costed cpu_us)" "$cc")"
echo "      (1v) video, per pair: CPU $(med cost-video cpu_us) us, WAL $(med cost-video wal_bytes) bytes," \
	"CPU of a call / (1) = $(ratio "$(med cost-video cpu_us)" "$(awk -v c="$cc" 'BEGIN {print 2 * c}')")"
echo "  (5) billing.usage, 30 days by day and model, $REPORT_REQUESTS requests: p50 $(med report p50_ms) ms," \
	"p99 $(med report p99_ms) ms (target < 50 ms); equals the ledger: $REPORT_EXACT"
echo "      billing.statement, latest 100 entries: p50 $(med statement p50_ms) ms," \
	"p99 $(med statement p99_ms) ms (target < 5 ms)"
echo "  bench account validation during the runs: $VALIDATION"
echo "  (1a) limits, spent/limit: $LIMITS; (1b) grants still live: $LIVE_GRANTS"
echo "  busy account balance = funds - 0.04 x completed requests, nothing held, (1d) costed: $CHECK"
echo "  billing.verify() problems: $PROBLEMS (${VERIFY_SECONDS} s)"
echo "  final balance: $BAL"

if [ "${BENCH_PROFILE:-0}" = 1 ]; then
	echo
	echo "top statements by total time (pg_stat_statements, nested included):"
	sql -c "CREATE EXTENSION pg_stat_statements"
	psql -X -v ON_ERROR_STOP=1 -c "SELECT calls, round(total_exec_time::numeric, 0) AS total_ms,
	        round(mean_exec_time::numeric, 3) AS mean_ms, left(regexp_replace(query, '\s+', ' ', 'g'), 110) AS query
	   FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 25"
fi
[ "$PROBLEMS" = 0 ] && [ "$CHECK" = t ] && [ "$REPORT_EXACT" = t ]
