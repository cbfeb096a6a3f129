#!/usr/bin/env bash
# Runs the regression and isolation suites against billing built with
# AddressSanitizer and UndefinedBehaviorSanitizer and with billing's own
# Asserts on (-DUSE_ASSERT_CHECKING: Debian's server is built without them,
# so a plain build compiles them out; a failed one aborts the backend), and
# fails on any sanitizer report, failed Assert or failed test.
#
# The instrumented billing.so goes into a private relocatable copy of the
# system PostgreSQL 15 (pg_config finds its directories relative to its own
# location, so copying the bin/lib/share trees is enough); the system
# installation is not touched. The server runs with libasan preloaded: the
# postgres binary itself is not instrumented, but the extension's code is,
# and the ASan runtime must be the first library loaded into the process.
#
# Needs root (or the cluster user) and gcc; takes a few minutes.
# Environment: SANITIZE_DIR (default /tmp/billing-sanitize), SANITIZE_PORT
# (default 55439), PG_CONFIG (the PostgreSQL to copy; default Debian's 15).
# Arguments go to make check-regress and check-isolation (e.g.
# REGRESS=security ISOLATION=).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SYS_PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
DIR=${SANITIZE_DIR:-/tmp/billing-sanitize}
PORT=${SANITIZE_PORT:-55439}
SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all -g -O1 -DUSE_ASSERT_CHECKING"

. test/cluster.sh

stop_cluster() {
	[ -f "$DIR/data/postmaster.pid" ] &&
		as_cluster_user "$BIN/pg_ctl" -D "$DIR/data" -m immediate -w stop >/dev/null 2>&1
	return 0
}

# 1. a private copy of PostgreSQL (test/cluster.sh)
PKGLIB=$("$SYS_PG_CONFIG" --pkglibdir)
PREFIX=$DIR/pg
rm -rf "$DIR"
PG_CONFIG=$(pg_private_copy "$SYS_PG_CONFIG" "$PREFIX")
BIN=$("$PG_CONFIG" --bindir)
export PATH="$BIN:$PATH"

# 2. build the extension instrumented, from a copy of the tree
tree_copy "$ROOT" "$DIR/src"
cd "$DIR/src"
extension_install . "$PG_CONFIG" COPT="$SAN"
nm -D "$PREFIX$PKGLIB/billing.so" >"$DIR/billing.syms"
grep -q __asan_ "$DIR/billing.syms" && grep -q ExceptionalCondition "$DIR/billing.syms" ||
	{ echo "sanitize: billing.so is not instrumented, or its Asserts are off"; exit 1; }
chmod -R a+rX "$DIR"

# 3. a cluster whose every process carries the sanitizer runtimes
LIBASAN=$(gcc -print-file-name=libasan.so)
LIBUBSAN=$(gcc -print-file-name=libubsan.so)
[ -f "$LIBASAN" ] && [ -f "$LIBUBSAN" ] || { echo "sanitize: gcc has no libasan/libubsan"; exit 1; }
# ASan initializes lazily, at the first malloc; in postgres that is inside
# the constructor of libgpg-error, which holds glibc's gettext lock while
# calling malloc. ASan's init then looks up swift_demangle with dlsym, the
# failure's message is translated under the same lock, and the lock is left
# broken: the process hangs in the next bindtextdomain(). Defining
# swift_demangle (never called for C symbols) makes the lookup succeed.
cat >"$DIR/swift_demangle.c" <<'CEOF'
#include <stddef.h>
#include <stdint.h>
char *swift_demangle(const char *name, size_t len, char *out, size_t *outlen, uint32_t flags);
char *
swift_demangle(const char *name, size_t len, char *out, size_t *outlen, uint32_t flags)
{
	(void) name; (void) len; (void) out; (void) outlen; (void) flags;
	return NULL;
}
CEOF
gcc -shared -fPIC -o "$DIR/swift_demangle.so" "$DIR/swift_demangle.c"
PRELOAD="$LIBASAN $LIBUBSAN $DIR/swift_demangle.so"
mkdir -p "$DIR/reports"
chown "$CLUSTER_USER" "$DIR" "$DIR/reports" 2>/dev/null || true
chmod 777 "$DIR/reports"
as_cluster_user "$BIN/initdb" -D "$DIR/data" -A trust -U postgres --no-sync -E UTF8 >"$DIR/initdb.log" 2>&1 ||
	{ cat "$DIR/initdb.log"; exit 1; }
cat >>"$DIR/data/postgresql.conf" <<EOF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$DIR'
max_connections = 60
max_prepared_transactions = 10
shared_buffers = 128MB
jit = off
EOF
trap stop_cluster EXIT
# detect_leaks=0: backends leave palloc'd memory to their contexts on exit.
# ASan reports go to files, one per process; UBSan's go to the server log.
as_cluster_user env LD_PRELOAD="$PRELOAD" \
	ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:log_path=$DIR/reports/asan:detect_stack_use_after_return=0:verify_asan_link_order=0" \
	UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$DIR/reports/ubsan" \
	"$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 120 start >/dev/null ||
	{ cat "$DIR/server.log"; exit 1; }

# 4. the suites
export PGHOST=$DIR PGPORT=$PORT PGUSER=postgres
rc=0
: >"$DIR/installcheck.log"
# regression and isolation suites apart, so that a failure in one does not
# keep the other from running (each prints its diffs when it fails)
for suite in check-regress check-isolation; do
	timeout 900 make -s PG_CONFIG="$PG_CONFIG" $suite "$@" >>"$DIR/installcheck.log" 2>&1 || rc=$?
done
grep -E '\.\.\. |tests (passed|failed)' "$DIR/installcheck.log" || true
if [ $rc -ne 0 ]; then
	echo "sanitize: the suites failed under the sanitizers"
	grep -vE '\.\.\. ' "$DIR/installcheck.log" | tail -c 20000
fi
# hostile input reaches code the suites do not: the bad-input generator on
# the same server (its own verdict is test/run.sh's "fuzz"; here only the
# sanitizer reports count)
if [ $# -eq 0 ] && make -s PG_CONFIG="$PG_CONFIG" test/fuzz >>"$DIR/installcheck.log" 2>&1; then
	# another seed than test/run.sh uses, to cover other inputs
	FUZZ_SEED=1 timeout 300 test/fuzz 5000 >"$DIR/fuzz.log" 2>&1 || true
	tail -3 "$DIR/fuzz.log"
fi
stop_cluster
trap - EXIT

# 5. any report is a failure
reports=$(find "$DIR/reports" -type f -size +0 | sort)
if [ -n "$reports" ] || grep -qE 'AddressSanitizer|runtime error:' "$DIR/server.log"; then
	echo "sanitize: sanitizer reports:"
	for f in $reports; do echo "== $f"; head -60 "$f"; done
	grep -E -A20 'AddressSanitizer|runtime error:' "$DIR/server.log" | head -60 || true
	rc=1
fi
# a backend that aborts (ASan) or exits on a UBSan report is a crash to the postmaster
grep -E 'terminated by signal|exited with exit code|PANIC' "$DIR/server.log" && rc=1
[ $rc -eq 0 ] && echo "sanitize: no sanitizer reports, all suites passed"
exit $rc
