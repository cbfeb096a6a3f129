#!/usr/bin/env bash
# Runs every billing test suite on real PostgreSQL 15 clusters:
# pg_regress + isolation specs (make installcheck), the libpq stress program,
# the bad-input generator, pg_regress + isolation specs again on servers whose
# clock is 40 and 400 days ahead (faketime), the TAP tests, the sanitizer run,
# the upgrades from 0.2.0 and 0.1.0, dump and restore, PgBouncer, the
# reference gateway over HTTP and the Citus suite
# (where Citus is installed, or built from the source tree CITUS_SRC names).
# Installs what is missing first. Ends with "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
bash test/setup.sh || { echo "0 passed, 1 failed"; exit 1; }
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
export PATH="$("$PG_CONFIG" --bindir):$PATH"
. test/cluster.sh

WORK=${BILLING_TEST_DIR:-/tmp/billing-test}
rm -rf "$WORK"; mkdir -p "$WORK"; chmod 755 "$WORK"
passed=0; failed=0
tally() {	# tally NAME STATUS
	if [ "$2" -eq 0 ]; then passed=$((passed + 1)); echo "ok: $1"
	else failed=$((failed + 1)); echo "FAILED: $1"; fi
}

# installcheck LABEL: the Makefile's REGRESS and ISOLATION suites (each
# apart, so that a failure in one does not keep the other from running) on
# the cluster of PGHOST/PGPORT; every test counts, a failure shows its diffs
installcheck() {
	local label=$1 suite log diffs rc ok bad
	for suite in regress isolation; do
		log="$WORK/installcheck-$label-$suite.log"
		if [ $suite = regress ]; then
			make -s installcheck PG_CONFIG="$PG_CONFIG" ISOLATION= TAP_TESTS= ${FAKETIME:+FAKETIME=1} >"$log" 2>&1; rc=$?
			diffs=regression.diffs
		else
			make -s installcheck PG_CONFIG="$PG_CONFIG" REGRESS= TAP_TESTS= >"$log" 2>&1; rc=$?
			diffs=test/isolation/output_iso/regression.diffs
		fi
		grep -E '\.\.\. |tests (passed|failed)' "$log" | sed "s/^/$label: /"
		ok=$(grep -cE '\.\.\. ok' "$log")
		bad=$(grep -cE '\.\.\. (FAILED|failed)' "$log")
		passed=$((passed + ok)); failed=$((failed + bad))
		if [ $rc -ne 0 ]; then
			[ "$bad" -eq 0 ] && { tail -20 "$log"; tally "$label: make installcheck ($suite)" 1; }
			[ -f "$diffs" ] && head -c 20000 "$diffs"
		fi
	done
}

# 1. pg_regress and isolation specs on one cluster
PORT=${BILLING_TEST_PORT:-55440}
cluster_start "$WORK/main" "$PORT" || { echo "0 passed, 1 failed"; exit 1; }
installcheck "today"

# 2. libpq stress program and bad-input generator, on the same cluster
if [ -x test/stress ]; then
	timeout 300 test/stress >"$WORK/stress.log" 2>&1; rc=$?
	tail -5 "$WORK/stress.log"; tally "stress" $rc
fi
if [ -x test/fuzz ]; then
	timeout 600 test/fuzz >"$WORK/fuzz.log" 2>&1; rc=$?
	tail -5 "$WORK/fuzz.log"; tally "fuzz" $rc
fi
cluster_stop "$WORK/main"

# 3. the same suites on a server whose clock runs 40 and 400 days ahead: no
#    test may depend on today's date (but for the Makefile's REGRESS_TIMERS,
#    which libfaketime's timers cannot run and which read no date)
for days in 40 400; do
	start=$(date +%s)
	if cluster_start_faketime "$WORK/faketime" "$PORT" "$days"; then
		FAKETIME=1 installcheck "+${days}d"
	else
		tally "+${days}d: a server under faketime" 1
	fi
	cluster_stop "$WORK/faketime"
	echo "+${days}d: $(($(date +%s) - start)) s"
done

# 4. TAP tests, one at a time through make installcheck (PGXS's
#    prove_installcheck). PostgreSQL::Test::Cluster starts its own servers,
#    so they run as the cluster user from a copy it owns
if ls test/t/*.pl >/dev/null 2>&1; then
	cp -a "$ROOT" "$WORK/tap"; chown -R "$CLUSTER_USER" "$WORK/tap"
	for t in test/t/*.pl; do
		(cd "$WORK/tap" && as_cluster_user env PATH="$PATH" PG_CONFIG="$PG_CONFIG" \
			make -s installcheck PG_CONFIG="$PG_CONFIG" REGRESS= ISOLATION= PROVE_TESTS="$t") \
			>"$WORK/$(basename "$t").log" 2>&1
		rc=$?; tail -3 "$WORK/$(basename "$t").log"; tally "$t" $rc
	done
fi

# 5. sanitizer run (test/sanitize.sh builds its own instrumented copy)
if [ -f test/sanitize.sh ]; then
	bash test/sanitize.sh >"$WORK/sanitize.log" 2>&1; rc=$?
	tail -5 "$WORK/sanitize.log"; tally "sanitize" $rc
fi

# 6. the upgrades from 0.2.0 and from 0.1.0 (test/upgrade.sh builds the
#    release and the current tree into a copy of PostgreSQL of its own)
if [ -f test/upgrade.sh ]; then
	for from in 0.2.0 0.1.0; do
		UPGRADE_FROM=$from UPGRADE_DIR=${UPGRADE_DIR:-$WORK/upgrade}-$from UPGRADE_PORT=${UPGRADE_PORT:-$((PORT + 2))} \
			bash test/upgrade.sh >"$WORK/upgrade-$from.log" 2>&1; rc=$?
		tail -5 "$WORK/upgrade-$from.log"; tally "upgrade from $from" $rc
	done
fi

# 6b. backup and restore on a second server, and PgBouncer in transaction
#     pooling (ports 10 to 13 above PORT)
if [ -f test/dump.sh ]; then
	DUMP_DIR=$WORK/dump DUMP_PORT=$((PORT + 10)) timeout 900 bash test/dump.sh >"$WORK/dump.log" 2>&1; rc=$?
	tail -5 "$WORK/dump.log"; tally "dump and restore" $rc
fi
if [ -f test/pgbouncer.sh ]; then
	PGBOUNCER_TEST_DIR=$WORK/pgbouncer PGBOUNCER_TEST_PORT=$((PORT + 12)) timeout 900 bash test/pgbouncer.sh >"$WORK/pgbouncer.log" 2>&1; rc=$?
	grep -E '^(FAILED|ok)' "$WORK/pgbouncer.log"; tail -1 "$WORK/pgbouncer.log"; tally "pgbouncer" $rc
fi

# 7. the reference gateway (examples/gateway/) over real HTTP, on a cluster
#    of its own (its port and the two after it)
if [ -f test/gateway.sh ]; then
	GATEWAY_TEST_DIR=$WORK/gateway GATEWAY_TEST_PORT=${GATEWAY_TEST_PORT:-$((PORT + 5))} \
		bash test/gateway.sh >"$WORK/gateway.log" 2>&1; rc=$?
	grep FAILED -A1 "$WORK/gateway.log"; tail -1 "$WORK/gateway.log"; tally "gateway" $rc
fi

# 8. billing on a Citus cluster (test/citus.sh): one step; skipped, neither
#    passed nor failed, where Citus is not installed
if [ -f test/citus.sh ]; then
	CITUS_DIR=${CITUS_DIR:-$WORK/citus} CITUS_PORT=${CITUS_PORT:-$((PORT + 20))} \
		bash test/citus.sh >"$WORK/citus.log" 2>&1; rc=$?
	if [ $rc -eq 77 ]; then
		cat "$WORK/citus.log"
	else
		grep -E '^citus: (FAILED|ok: smoke)' "$WORK/citus.log"; tail -1 "$WORK/citus.log"; tally "citus" $rc
	fi
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
