#!/usr/bin/env bash
# Runs every billing test suite on real PostgreSQL 15 clusters:
# pg_regress + isolation specs (make installcheck), the libpq stress program,
# the bad-input generator, pg_regress + isolation specs again on servers whose
# clock is 40 and 400 days ahead (faketime), the TAP tests, the sanitizer run,
# the upgrades from 0.2.0 and 0.1.0, dump and restore, PgBouncer, the
# reference gateway over HTTP and the Citus suite
# (where Citus is installed, or built from the source tree CITUS_SRC names).
# Then, on PostgreSQL 17 and 18 (BILLING_PG_MAJORS; empty: none), each in
# its Debian chroot (test/pgchroot.sh, made once per machine): pg_regress +
# isolation specs, the TAP tests, the upgrade, and the move of a database
# made on 15 with pg_dump/pg_restore (test/dumprestore.sh).
# Installs what is missing first. Ends with the majors it ran and
# "N passed, N failed".
#
# BILLING_RUN_MAJOR=N is how it runs itself inside the chroot of N: the
# suites above that run on every major, on a private copy of N.
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
		# up to 15: "test name ... ok"; from 16 on, TAP: "ok 1 - name", "not ok 2 - name"
		grep -E '\.\.\. |^(not )?ok [0-9]+ |tests (passed|failed)' "$log" | sed "s/^/$label: /"
		ok=$(grep -cE '\.\.\. +ok|^ok [0-9]+ ' "$log")
		bad=$(grep -cE '\.\.\. +(FAILED|failed)|^not ok [0-9]+ ' "$log")
		passed=$((passed + ok)); failed=$((failed + bad))
		# a run that counted nothing, or failed without a failed test, is a failure of its own
		if [ $rc -ne 0 ] || [ $((ok + bad)) -eq 0 ]; then
			[ "$bad" -eq 0 ] && { tail -20 "$log"; tally "$label: make installcheck ($suite)" 1; }
			[ -f "$diffs" ] && head -c 20000 "$diffs"
		fi
	done
}

# 1. pg_regress and isolation specs on one cluster
PORT=${BILLING_TEST_PORT:-55440}
cluster_start "$WORK/main" "$PORT" || { echo "0 passed, 1 failed"; exit 1; }
installcheck "$([ -n "$INSIDE" ] && echo "pg$INSIDE" || echo today)"
[ -n "$INSIDE" ] && cluster_stop "$WORK/main"

# 2. libpq stress program and bad-input generator, on the same cluster
# (this and the other suites marked "15 only" run on the host's 15 alone)
if [ -z "$INSIDE" ] && [ -x test/stress ]; then
	timeout 300 test/stress >"$WORK/stress.log" 2>&1; rc=$?
	tail -5 "$WORK/stress.log"; tally "stress" $rc
fi
if [ -z "$INSIDE" ] && [ -x test/fuzz ]; then
	timeout 600 test/fuzz >"$WORK/fuzz.log" 2>&1; rc=$?
	tail -5 "$WORK/fuzz.log"; tally "fuzz" $rc
fi
cluster_stop "$WORK/main"

# 3. the same suites on a server whose clock runs 40 and 400 days ahead: no
#    test may depend on today's date (15 only; but for the Makefile's
#    REGRESS_TIMERS, which libfaketime's timers cannot run and which read no
#    date)
for days in $([ -n "$INSIDE" ] || echo 40 400); do
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

# 5. sanitizer run (test/sanitize.sh builds its own instrumented copy; 15 only)
if [ -z "$INSIDE" ] && [ -f test/sanitize.sh ]; then
	bash test/sanitize.sh >"$WORK/sanitize.log" 2>&1; rc=$?
	tail -5 "$WORK/sanitize.log"; tally "sanitize" $rc
fi

# 6. the upgrades from 0.2.0 and from 0.1.0 (test/upgrade.sh builds the
#    release and the current tree into a copy of PostgreSQL of its own). On
#    17 and 18 from 0.1.0 alone: 0.2.0's direct path does not build there
UPGRADE_FROMS=$([ -n "$INSIDE" ] && echo 0.1.0 || echo 0.2.0 0.1.0)
if [ -f test/upgrade.sh ]; then
	for from in $UPGRADE_FROMS; do
		UPGRADE_FROM=$from UPGRADE_DIR=${UPGRADE_DIR:-$WORK/upgrade}-$from UPGRADE_PORT=${UPGRADE_PORT:-$((PORT + 2))} \
			bash test/upgrade.sh >"$WORK/upgrade-$from.log" 2>&1; rc=$?
		tail -5 "$WORK/upgrade-$from.log"; tally "upgrade from $from" $rc
	done
fi

# 6b. backup and restore on a second server, and PgBouncer in transaction
#     pooling (15 only) (ports 10 to 13 above PORT)
if [ -f test/dump.sh ]; then
	DUMP_DIR=$WORK/dump DUMP_PORT=$((PORT + 10)) timeout 900 bash test/dump.sh >"$WORK/dump.log" 2>&1; rc=$?
	tail -5 "$WORK/dump.log"; tally "dump and restore" $rc
fi
if [ -z "$INSIDE" ] && [ -f test/pgbouncer.sh ]; then
	PGBOUNCER_TEST_DIR=$WORK/pgbouncer PGBOUNCER_TEST_PORT=$((PORT + 12)) timeout 900 bash test/pgbouncer.sh >"$WORK/pgbouncer.log" 2>&1; rc=$?
	grep -E '^(FAILED|ok)' "$WORK/pgbouncer.log"; tail -1 "$WORK/pgbouncer.log"; tally "pgbouncer" $rc
fi

# 7. the reference gateway (examples/gateway/) over real HTTP, on a cluster
#    of its own (its port and the two after it; 15 only)
if [ -z "$INSIDE" ] && [ -f test/gateway.sh ]; then
	GATEWAY_TEST_DIR=$WORK/gateway GATEWAY_TEST_PORT=${GATEWAY_TEST_PORT:-$((PORT + 5))} \
		bash test/gateway.sh >"$WORK/gateway.log" 2>&1; rc=$?
	grep FAILED -A1 "$WORK/gateway.log"; tail -1 "$WORK/gateway.log"; tally "gateway" $rc
fi

# 8. billing on a Citus cluster (test/citus.sh): one step; skipped, neither
#    passed nor failed, where Citus is not installed (15 only)
if [ -z "$INSIDE" ] && [ -f test/citus.sh ]; then
	CITUS_DIR=${CITUS_DIR:-$WORK/citus} CITUS_PORT=${CITUS_PORT:-$((PORT + 20))} \
		bash test/citus.sh >"$WORK/citus.log" 2>&1; rc=$?
	if [ $rc -eq 77 ]; then
		cat "$WORK/citus.log"
	else
		grep -E '^citus: (FAILED|ok: smoke)' "$WORK/citus.log"; tail -1 "$WORK/citus.log"; tally "citus" $rc
	fi
fi

# 9. a database made on 15 restored on a newer major (test/dumprestore.sh):
#    inside a chroot, the target half, from the dump the host made and from
#    the host's server still running (the newer pg_dump)
if [ -n "$INSIDE" ] && [ -f "$ROOT/../dump/source.dump" ]; then
	DUMP_DIR=$ROOT/../dump DUMP_PORT=$((PORT + 3)) DUMP_SOURCE_PORT=${BILLING_DUMP_SOURCE_PORT:-} \
		bash test/dumprestore.sh target >"$WORK/dumprestore.log" 2>&1; rc=$?
	tail -5 "$WORK/dumprestore.log"; tally "dumprestore 15 -> $INSIDE" $rc
fi
# 9a. and with pg_upgrade, from the host's 15 copied into the chroot
if [ -n "$INSIDE" ] && [ -n "${BILLING_OLD_PG_CONFIG:-}" ]; then
	DUMP_DIR=$WORK/pg_upgrade DUMP_PORT=$((PORT + 4)) OLD_PG_CONFIG=$BILLING_OLD_PG_CONFIG \
		LD_LIBRARY_PATH=$ROOT/../lib15 bash test/dumprestore.sh upgrade >"$WORK/pg_upgrade.log" 2>&1; rc=$?
	tail -5 "$WORK/pg_upgrade.log"; tally "pg_upgrade 15 -> $INSIDE" $rc
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

# 10. the same suites on the newer majors, each in its Debian chroot (made
#     once per machine, outside the clone), on ports PORT+30.. and PORT+40..
majors=$("$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
if [ -z "$INSIDE" ] && [ -n "${BILLING_PG_MAJORS-17 18}" ]; then
	dump_port=$((PORT + 9))
	DUMP_DIR=$WORK/dump DUMP_PORT=$dump_port bash test/dumprestore.sh source >"$WORK/dump-source.log" 2>&1 ||
		{ cat "$WORK/dump-source.log"; tally "dumprestore: a database on 15 to dump" 1; }
	i=0
	for major in ${BILLING_PG_MAJORS-17 18}; do
		i=$((i + 1)); start=$(date +%s); dir=$WORK/pg$major
		bash test/pgchroot.sh create "$major" >"$WORK/pgchroot-$major.log" 2>&1 ||
			{ cat "$WORK/pgchroot-$major.log"; tally "pg$major: its chroot" 1; continue; }
		cat "$WORK/pgchroot-$major.log"
		mkdir -p "$dir/old" "$dir/dump"; tree_copy "$ROOT" "$dir/src"
		# the releases test/upgrade.sh starts from there, whose history the chroot lacks
		for from in 0.1.0; do
			mkdir -p "$dir/old/$from"
			git archive "$(release_commit $from)" 2>/dev/null | tar -C "$dir/old/$from" -xf -
		done
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

[ -n "$INSIDE" ] || echo "PostgreSQL majors run: $majors"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
