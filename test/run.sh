#!/usr/bin/env bash
# Every billing test suite, each through its make target (Makefile, "One
# target per test suite"; docs/testing.md). Installs what is missing first
# (test/setup.sh). On the host's PostgreSQL 15:
#   1. check-regress and check-isolation on one cluster, then check-stress
#      and check-fuzz on it;
#   2. check-regress and check-isolation again on servers whose clock runs 40
#      and 400 days ahead (faketime; without the tests that need timers);
#   3. check-tap (one test at a time), check-sanitize, check-upgrade (from
#      0.2.0 and from 0.1.0), check-dump, check-pgbouncer, check-gateway,
#      check-citus (skipped, neither passed nor failed, without Citus).
# Then on PostgreSQL 17 and 18 (BILLING_PG_MAJORS; empty: none), each in its
# Debian chroot (test/pgchroot.sh, made once per machine), this script again
# (BILLING_RUN_MAJOR=N): regress, isolation, TAP, the upgrade from 0.1.0,
# dump, and a database made on 15 moved there with pg_dump/pg_restore and
# (to 17) pg_upgrade (test/dumprestore.sh).
# Every pg_regress, isolation and TAP test counts, every other suite counts
# as one. Ends with "N passed, N failed"; exit status 1 on any failure.
#
# Environment: PG_CONFIG, BILLING_TEST_DIR (default /tmp/billing-test),
# BILLING_TEST_PORT (default 55440; the suites take it and the 49 ports
# after it), BILLING_PG_MAJORS (default "17 18").
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
INSIDE=${BILLING_RUN_MAJOR:-}
. test/cluster.sh
if [ -n "$INSIDE" ]; then
	# a chroot serves every clone on the machine: billing goes into a copy
	export BILLING_PG_MAJOR=$INSIDE
	rm -rf "${BILLING_TEST_DIR:?}.pg"
	PG_CONFIG=$(pg_private_copy "/usr/lib/postgresql/$INSIDE/bin/pg_config" "$BILLING_TEST_DIR.pg") ||
		{ echo "0 passed, 1 failed"; exit 1; }
	export PG_CONFIG
fi
bash test/setup.sh || { echo "0 passed, 1 failed"; exit 1; }
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
export PATH="$("$PG_CONFIG" --bindir):$PATH"

WORK=${BILLING_TEST_DIR:-/tmp/billing-test}
PORT=${BILLING_TEST_PORT:-55440}
rm -rf "$WORK"; mkdir -p "$WORK"; chmod 755 "$WORK"
passed=0; failed=0
tally() {	# tally NAME STATUS
	if [ "$2" -eq 0 ]; then passed=$((passed + 1)); echo "ok: $1"
	else failed=$((failed + 1)); echo "FAILED: $1"; fi
}
mk() { make -s PG_CONFIG="$PG_CONFIG" "$@"; }

# tests LABEL COMMAND...: a suite of many tests; each counts (pg_regress up
# to 15: "test name ... ok"; from 16 on: "ok 1 - name", "not ok 2 - name"),
# and a run that fails without a failed test, or counts none, is one failure
tests() {
	local label=$1 log="$WORK/$1.log" rc ok bad; shift
	"$@" >"$log" 2>&1; rc=$?
	grep -E '\.\.\. |^(not )?ok [0-9]+ ' "$log" | sed "s/^/${label%-*}: /"
	ok=$(grep -cE '\.\.\. +ok|^ok [0-9]+ ' "$log")
	bad=$(grep -cE '\.\.\. +(FAILED|failed)|^not ok [0-9]+ ' "$log")
	passed=$((passed + ok)); failed=$((failed + bad))
	if [ $rc -ne 0 ] || [ $((ok + bad)) -eq 0 ]; then
		[ "$bad" -eq 0 ] && tally "$label" 1
		tail -c 20000 "$log"
	fi
}

# step LABEL COMMAND...: a suite that counts as one; check-citus's exit
# status 77 (make's "Error 77") is a suite skipped
step() {
	local label=$1 log="$WORK/${1//[ \/]/_}.log" rc; shift
	"$@" >"$log" 2>&1; rc=$?
	if [ $rc -ne 0 ] && grep -q 'Error 77$' "$log"; then
		grep -v 'Error 77$' "$log" | tail -1; return
	fi
	tail -n "$([ $rc -eq 0 ] && echo 2 || echo 40)" "$log"; tally "$label" $rc
}

# 1. regress and isolation (each apart, so that a failure in one does not
#    keep the other from running), then stress and fuzz (15 only)
label=$([ -n "$INSIDE" ] && echo "pg$INSIDE" || echo today)
cluster_start "$WORK/main" "$PORT" || { echo "0 passed, 1 failed"; exit 1; }
tests "$label-regress" mk check-regress
tests "$label-isolation" mk check-isolation
if [ -z "$INSIDE" ]; then
	step stress mk check-stress
	step fuzz mk check-fuzz
fi
cluster_stop "$WORK/main"

# 2. the clock 40 and 400 days ahead: no test may depend on today's date
#    (15 only; but for the Makefile's REGRESS_TIMERS, which read no date)
for days in $([ -n "$INSIDE" ] || echo 40 400); do
	if cluster_start_faketime "$WORK/faketime" "$PORT" "$days"; then
		tests "+${days}d-regress" mk check-regress FAKETIME=1
		tests "+${days}d-isolation" mk check-isolation
	else
		tally "+${days}d: a server under faketime" 1
	fi
	cluster_stop "$WORK/faketime"
done

# 3. the TAP tests, one at a time: they start servers of their own, so they
#    run as the cluster user from a copy it owns
cp -a "$ROOT" "$WORK/tap"; chown -R "$CLUSTER_USER" "$WORK/tap"
tap() { (cd "$WORK/tap" && as_cluster_user env PATH="$PATH" make -s PG_CONFIG="$PG_CONFIG" check-tap PROVE_TESTS="$1"); }
for t in test/t/*.pl; do
	step "$t" tap "$t"
done

# 4. the suites that start clusters of their own (ports PORT+2 to PORT+23)
[ -n "$INSIDE" ] || step sanitize mk check-sanitize
# on 17 and 18 from 0.1.0 alone: 0.2.0's direct path does not build there
for from in $([ -n "$INSIDE" ] && echo 0.1.0 || echo 0.2.0 0.1.0); do
	UPGRADE_FROM=$from UPGRADE_DIR=$WORK/upgrade-$from UPGRADE_PORT=$((PORT + 2)) \
		step "upgrade from $from" mk check-upgrade
done
DUMP_DIR=$WORK/dump DUMP_PORT=$((PORT + 10)) step "dump and restore" mk check-dump
if [ -z "$INSIDE" ]; then
	PGBOUNCER_TEST_DIR=$WORK/pgbouncer PGBOUNCER_TEST_PORT=$((PORT + 12)) step pgbouncer mk check-pgbouncer
	GATEWAY_TEST_DIR=$WORK/gateway GATEWAY_TEST_PORT=$((PORT + 5)) step gateway mk check-gateway
	CITUS_DIR=$WORK/citus CITUS_PORT=$((PORT + 20)) step citus mk check-citus
fi

# 5. inside a chroot: a database made on 15 restored on this major, from the
#    dump the host made and from the host's server still running (the newer
#    pg_dump); and with pg_upgrade, from the host's 15 copied into the chroot
if [ -n "$INSIDE" ] && [ -f "$ROOT/../dump/source.dump" ]; then
	DUMP_DIR=$ROOT/../dump DUMP_PORT=$((PORT + 3)) DUMP_SOURCE_PORT=${BILLING_DUMP_SOURCE_PORT:-} \
		step "dumprestore 15 -> $INSIDE" bash test/dumprestore.sh target
fi
if [ -n "$INSIDE" ] && [ -n "${BILLING_OLD_PG_CONFIG:-}" ]; then
	DUMP_DIR=$WORK/pg_upgrade DUMP_PORT=$((PORT + 4)) OLD_PG_CONFIG=$BILLING_OLD_PG_CONFIG \
		LD_LIBRARY_PATH=$ROOT/../lib15 step "pg_upgrade 15 -> $INSIDE" bash test/dumprestore.sh upgrade
fi
if [ -n "$INSIDE" ]; then
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ]; exit
fi

# old_major_copy MAJOR DIR: for pg_upgrade in the chroot of MAJOR, a copy of
# the host's PostgreSQL (billing installed) in DIR/pg15 and, in DIR/lib15,
# the host's libraries its programs need that the chroot lacks (ICU 72...;
# only those, so the chroot's own programs keep theirs; not LLVM's: no JIT
# there). Prints the copy's pg_config as the chroot sees it.
old_major_copy() {
	local major=$1 dir=$2 copy bin missing name round
	copy=$(pg_private_copy "$PG_CONFIG" "$dir/pg15") || return 0
	bin=/billing/$(dirname "${copy#"$dir/"}")
	mkdir -p "$dir/lib15"
	for round in 1 2 3; do
		missing=$(bash test/pgchroot.sh run "$major" "$dir" env LD_LIBRARY_PATH=/billing/lib15 sh -c \
			"for f in $bin/* $bin/../lib/*.so; do case \$f in *llvmjit*) ;; *) ldd \$f;; esac; done 2>/dev/null" |
			sed -n 's/^[[:space:]]*\([^ ]*\) => not found.*/\1/p' | sort -u)
		[ -n "$missing" ] || break
		for name in $missing; do
			cp -L "$(ldconfig -p | awk -v n="$name" '$1 == n && /x86-64/ {print $NF; exit}')" "$dir/lib15/" 2>/dev/null
		done
	done
	echo "/billing/${copy#"$dir/"}"
}

# 6. the newer majors, each in its chroot, on ports PORT+30.. and PORT+40..;
#    the source of test/dumprestore.sh runs here on PORT+9 meanwhile
majors=$("$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
if [ -n "${BILLING_PG_MAJORS-17 18}" ]; then
	dump_port=$((PORT + 9))
	DUMP_DIR=$WORK/dump DUMP_PORT=$dump_port bash test/dumprestore.sh source >"$WORK/dump-source.log" 2>&1 ||
		{ cat "$WORK/dump-source.log"; tally "dumprestore: a database on 15 to dump" 1; }
	i=0
	for major in ${BILLING_PG_MAJORS-17 18}; do
		i=$((i + 1)); start=$(date +%s); dir=$WORK/pg$major
		bash test/pgchroot.sh create "$major" >"$WORK/pgchroot-$major.log" 2>&1 ||
			{ cat "$WORK/pgchroot-$major.log"; tally "pg$major: its chroot" 1; continue; }
		cat "$WORK/pgchroot-$major.log"
		mkdir -p "$dir/old/0.1.0" "$dir/dump"; tree_copy "$ROOT" "$dir/src"
		# the release test/upgrade.sh starts from there, whose history the chroot lacks
		git archive "$(release_commit 0.1.0)" 2>/dev/null | tar -C "$dir/old/0.1.0" -xf -
		cp "$WORK/dump/rows.txt" "$WORK/dump/source.dump" "$dir/dump/" 2>/dev/null
		# pg_upgrade to 17 only: Debian's 15.20 keeps a column option pg_attver
		# that 18.6's restore of the schema rejects ("unrecognized parameter")
		old_pg_config=""
		case " ${BILLING_PG_UPGRADE_MAJORS-17} " in *" $major "*) old_pg_config=$(old_major_copy "$major" "$dir") ;; esac
		bash test/pgchroot.sh run "$major" "$dir" env BILLING_RUN_MAJOR="$major" \
			BILLING_OLD_PG_CONFIG="$old_pg_config" \
			BILLING_TEST_DIR=/billing/run BILLING_TEST_PORT=$((PORT + 20 + 10 * i)) \
			UPGRADE_OLD_SRC=/billing/old BILLING_DUMP_SOURCE_PORT=$dump_port \
			bash /billing/src/test/run.sh >"$WORK/pg$major.log" 2>&1
		grep -vE '^[0-9]+ passed, [0-9]+ failed$' "$WORK/pg$major.log" | sed "/^pg$major: /! s/^/pg$major: /"
		counts=$(sed -nE 's/^([0-9]+) passed, ([0-9]+) failed$/\1 \2/p' "$WORK/pg$major.log" | tail -1)
		if [ -n "$counts" ]; then
			passed=$((passed + ${counts% *})); failed=$((failed + ${counts#* })); majors="$majors $major"
		else
			tally "pg$major: the suites in its chroot ended without their count" 1
		fi
		echo "pg$major: $(($(date +%s) - start)) s"
	done
	DUMP_DIR=$WORK/dump bash test/dumprestore.sh stop
fi

echo "PostgreSQL majors run: $majors"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
