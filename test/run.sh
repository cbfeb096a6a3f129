#!/usr/bin/env bash
# Runs every billing test suite on real PostgreSQL 15 clusters:
# pg_regress + isolation specs (make installcheck), the libpq stress program,
# the bad-input generator, the TAP tests, the sanitizer run and the upgrade
# from 0.1.0.
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

# 1. pg_regress and isolation specs on one cluster
PORT=${BILLING_TEST_PORT:-55440}
cluster_start "$WORK/main" "$PORT" || { echo "0 passed, 1 failed"; exit 1; }
make -s installcheck PG_CONFIG="$PG_CONFIG" >"$WORK/installcheck.log" 2>&1
rc=$?
cat "$WORK/installcheck.log" | grep -E '\.\.\. |tests (passed|failed)|^ok|^not ok' || true
ok=$(grep -cE '\.\.\. ok' "$WORK/installcheck.log")
bad=$(grep -cE '\.\.\. (FAILED|failed)' "$WORK/installcheck.log")
passed=$((passed + ok)); failed=$((failed + bad))
if [ $rc -ne 0 ]; then
	[ "$bad" -eq 0 ] && tally "make installcheck" 1
	for f in regression.diffs test/isolation/output_iso/regression.diffs; do
		[ -f "$f" ] && head -c 20000 "$f"
	done
fi

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

# 3. TAP tests (PostgreSQL::Test::Cluster starts its own servers, so they
#    run as the cluster user from a copy it owns)
if ls test/t/*.pl >/dev/null 2>&1; then
	cp -a "$ROOT" "$WORK/tap"; chown -R "$CLUSTER_USER" "$WORK/tap"
	for t in test/t/*.pl; do
		(cd "$WORK/tap" && as_cluster_user env PATH="$PATH" PG_CONFIG="$PG_CONFIG" \
			PG_REGRESS="$("$PG_CONFIG" --pgxs | sed 's|src/makefiles/pgxs.mk|src/test/regress/pg_regress|')" \
			prove -I "$("$PG_CONFIG" --pgxs | sed 's|makefiles/pgxs.mk|test/perl|')" "$t") \
			>"$WORK/$(basename "$t").log" 2>&1
		rc=$?; tail -3 "$WORK/$(basename "$t").log"; tally "$t" $rc
	done
fi

# 4. sanitizer run (test/sanitize.sh builds its own instrumented copy)
if [ -f test/sanitize.sh ]; then
	bash test/sanitize.sh >"$WORK/sanitize.log" 2>&1; rc=$?
	tail -5 "$WORK/sanitize.log"; tally "sanitize" $rc
fi

# 5. the upgrade from 0.1.0 (test/upgrade.sh builds 0.1.0 and the current
#    tree into a copy of PostgreSQL of its own)
if [ -f test/upgrade.sh ]; then
	UPGRADE_DIR=${UPGRADE_DIR:-$WORK/upgrade} UPGRADE_PORT=${UPGRADE_PORT:-$((PORT + 2))} \
		bash test/upgrade.sh >"$WORK/upgrade.log" 2>&1; rc=$?
	tail -5 "$WORK/upgrade.log"; tally "upgrade" $rc
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
