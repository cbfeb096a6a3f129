#!/usr/bin/env bash
# The upgrade from an earlier release (UPGRADE_FROM: 0.2.0, the default, or
# 0.1.0, which PostgreSQL takes through 0.2.0 by the scripts as released):
# builds that release from this repository's git history into a private
# copy of PostgreSQL, fills a database through its API (test/fill.sql),
# installs the current build over it, runs ALTER EXTENSION billing UPDATE
# and checks that
#   a) the schema equals a fresh install's (pg_dump --schema-only),
#   b) every row of 0.1.0 is kept, and every identity sequence,
#   c) requests left open by 0.1.0 still settle and new work is charged,
#   d) billing.verify() returns no rows,
#   e) the update script run a second time changes nothing,
#   f) the upgraded database dumps and restores whole (pg_dump -Fc, pg_restore).
# Ends with a line of what it showed, or "upgrade: FAILED: why" (exit status 1).
#
# Needs root (or the cluster user), git and the PostgreSQL to copy.
# Environment: UPGRADE_DIR (default /tmp/billing-upgrade), UPGRADE_PORT
# (default 55438), PG_CONFIG (the PostgreSQL to copy; default Debian's 15),
# UPGRADE_OLD_SRC (a folder with each release's tree under its version,
# e.g. UPGRADE_OLD_SRC/0.1.0, where the clone's history is not at hand, as
# in test/pgchroot.sh's chroots).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. test/cluster.sh
SYS_PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
DIR=${UPGRADE_DIR:-/tmp/billing-upgrade}
PORT=${UPGRADE_PORT:-55438}
FROM=${UPGRADE_FROM:-0.2.0}
RELEASE=$(release_commit "$FROM") || { echo "upgrade: FAILED: no release $FROM"; exit 1; }

fail() { echo "upgrade: FAILED: $*"; exit 1; }
# psql that stops at the first error and prints bare values
q() { psql -X -q -v ON_ERROR_STOP=1 -At "$@"; }

[ -n "${UPGRADE_OLD_SRC:-}" ] || git -C "$ROOT" cat-file -e "$RELEASE^{commit}" 2>/dev/null ||
	fail "commit $RELEASE (release $FROM) is not in this clone's history (shallow? git fetch --unshallow)"

# 1. a private PostgreSQL with 0.1.0 installed, as released
cluster_stop "$DIR/cluster"
rm -rf "$DIR"; mkdir -p "$DIR/old"
PG_CONFIG=$(pg_private_copy "$SYS_PG_CONFIG" "$DIR/pg")
export PATH="$("$PG_CONFIG" --bindir):$PATH"
# whatever billing the copied PostgreSQL had installed is not under test
rm -f "$("$PG_CONFIG" --pkglibdir)/billing.so" "$("$PG_CONFIG" --sharedir)"/extension/billing[.-]*
if [ -n "${UPGRADE_OLD_SRC:-}" ]; then tree_copy "$UPGRADE_OLD_SRC/$FROM" "$DIR/old"
else git -C "$ROOT" archive "$RELEASE" | tar -C "$DIR/old" -xf -; fi
# built as released, but what newer compilers warn of (GCC 15 in the chroot
# of 18) is no error of its: -Wno-error after its own -Werror (CPPFLAGS
# follows its PG_CPPFLAGS)
extension_install "$DIR/old" "$PG_CONFIG" "CPPFLAGS=-D_GNU_SOURCE -Wno-error" >"$DIR/build-old.log" 2>&1 ||
	{ tail -20 "$DIR/build-old.log"; fail "release $FROM does not build"; }
tree_copy "$ROOT" "$DIR/new"
trap 'cluster_stop "$DIR/cluster"' EXIT
cluster_start "$DIR/cluster" "$PORT" || fail "the cluster does not start"
export PGDATABASE=upgraded

# 2. a database filled through the API of the release. Usage of March 2025
# is invoiced: its settled requests are re-dated there (as superuser, past
# the triggers), so nothing depends on today's date.
createdb upgraded
q -c "CREATE EXTENSION billing VERSION '$FROM'" -f test/fill.sql >"$DIR/fill.log" 2>&1 ||
	{ cat "$DIR/fill.log"; fail "the $FROM database cannot be filled"; }

# every row of every 0.1.0 table, by the 0.1.0 columns (0.2.0 may add some),
# and the state of every sequence
rows_script >"$DIR/snapshot.sql"
q -f "$DIR/snapshot.sql" >"$DIR/rows-before.txt" || fail "the rows of $FROM cannot be read"
rows=$(grep -cvE '^(table|sequence) ' "$DIR/rows-before.txt")

# 3. the current build over it, and the update
extension_install "$DIR/new" "$PG_CONFIG" >"$DIR/build-new.log" 2>&1 ||
	{ tail -20 "$DIR/build-new.log"; fail "the current tree does not build"; }
as_cluster_user pg_ctl -D "$DIR/cluster/data" -l "$DIR/cluster/server.log" -w restart >/dev/null ||
	fail "the cluster does not restart"
q -c 'ALTER EXTENSION billing UPDATE' >"$DIR/update.log" 2>&1 ||
	{ cat "$DIR/update.log"; fail "ALTER EXTENSION billing UPDATE failed"; }
version=$(q -c "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'billing'")
built=$(q -c "SELECT default_version FROM pg_catalog.pg_available_extensions WHERE name = 'billing'")
[ "$version" = "$built" ] && [ "$version" != "$FROM" ] ||
	fail "the update left version $version, the build is $built"

# a) the schema equals a fresh install's. pg_dump shows an extension's
# objects only in binary-upgrade mode, which adds what pg_upgrade keeps of the
# storage: OIDs, file numbers, frozen transaction ids, the stored default of
# an added column, sequence positions (data, compared in b). Those are masked;
# everything else must be equal (and the names of the relations marked for
# pg_dump, whose OIDs the extension's line lists).
schema() {
	pg_dump --schema-only --binary-upgrade -d "$1" | sed -E \
		-e '/^SELECT pg_catalog\.binary_upgrade_set_(next_|missing_value)/d' \
		-e '/^-- set missing value\.$/d' \
		-e '/^\\(un)?restrict /d' \
		-e "s/^(SET relfrozenxid = )'[0-9]+', relminmxid = '[0-9]+'/\1N, relminmxid = N/" \
		-e "s/^(WHERE oid = )'[0-9]+';/\1N;/" \
		-e "s/^(SELECT pg_catalog\.setval\('[^']+', )[0-9]+, (true|false)\);/\1N);/" \
		-e "s/^(SELECT pg_catalog\.binary_upgrade_create_empty_extension\('billing', 'billing', false, '[^']+', )'\{[0-9,]+\}'/\1'{OIDs}'/" |
		cat -s	# and the blank lines around what was deleted
	# the tables and sequences marked for pg_dump, by name (their OIDs are masked above)
	q -d "$1" -c "SELECT 'marked for pg_dump: ' || pg_catalog.string_agg(c::pg_catalog.regclass::text, ' ' ORDER BY c::pg_catalog.regclass::text)
	                FROM pg_catalog.pg_extension e, pg_catalog.unnest(e.extconfig) c WHERE e.extname = 'billing'"
}
createdb fresh
q -d fresh -c 'CREATE EXTENSION billing' || fail "a fresh CREATE EXTENSION billing failed"
schema upgraded >"$DIR/schema-upgraded.sql"
schema fresh >"$DIR/schema-fresh.sql"
grep -q 'CREATE TABLE billing.ledger' "$DIR/schema-fresh.sql" ||
	fail "the schema dump does not show the extension's objects"
diff -u "$DIR/schema-fresh.sql" "$DIR/schema-upgraded.sql" >"$DIR/schema.diff" ||
	{ head -200 "$DIR/schema.diff"; fail "the upgraded schema differs from a fresh $version install's (diff above)"; }

# b) every row kept
q -f "$DIR/snapshot.sql" >"$DIR/rows-after.txt" || fail "the rows cannot be read after the update"
diff -u "$DIR/rows-before.txt" "$DIR/rows-after.txt" >"$DIR/rows.diff" ||
	{ head -100 "$DIR/rows.diff"; fail "the update changed rows (diff above)"; }

# c) open requests settle, new work is charged; d) the invariants hold
q >"$DIR/after.log" 2>&1 <<'EOF' || { cat "$DIR/after.log"; fail "the upgraded database does not work (above)"; }
\i test/expect.sql
SELECT pg_temp.expect(NOT EXISTS (SELECT FROM billing.verify()), 'verify() finds problems');
SELECT pg_temp.expect(NOT EXISTS (SELECT FROM billing.requests r
                                   WHERE r.status IN ('queued', 'in_progress') AND r.price_id IS NULL),
                      'an open request has no price version');
SELECT pg_temp.expect(billing.complete_request(r.request_id, '{"duration_seconds":7.2}') ->> 'status' = 'completed',
                      'the request in progress does not complete')
  FROM billing.requests r WHERE r.idempotency_key = 'fill-running';
SELECT pg_temp.expect(billing.cancel_request(r.request_id) ->> 'status' = 'cancelled',
                      'the queued request is not cancelled')
  FROM billing.requests r WHERE r.idempotency_key = 'fill-queued';
SELECT pg_temp.expect(billing.fail_request(r.request_id, 'upstream gone') ->> 'status' = 'failed',
                      'the postpaid request does not fail')
  FROM billing.requests r WHERE r.idempotency_key = 'fill-post-open';
SELECT pg_temp.expect(NOT EXISTS (SELECT FROM billing.requests r WHERE r.status IN ('queued', 'in_progress')),
                      'requests are still open');
SELECT pg_temp.expect((billing.balance(a) ->> 'held_micros')::bigint = 0, 'money is still held')
  FROM (VALUES (:pre), (:post)) v(a);
SELECT pg_temp.expect((billing.charge(:pre, 'fill-img', '{"n":1}', '{"images":[{}]}') ->> 'cost_micros')::bigint = 40000,
                      'a new prepaid charge is not billed 40000');
SELECT pg_temp.expect((billing.charge(:post, 'fill-vid', '{"duration_seconds":1}', '{"duration_seconds":1}')
                       ->> 'cost_micros')::bigint = 50000, 'a new postpaid charge is not billed 50000');
SELECT pg_temp.expect(billing.add_funds(:pre, 1000000, 'pay-2') > 0, 'funds cannot be added');
SELECT pg_temp.expect(NOT EXISTS (SELECT FROM billing.verify()), 'verify() finds problems');
EOF

# e) the update once more where everything it creates exists (as on a node
# that has the objects already): its script again, as the update to a
# version of its own, leaves the schema as it was
share=$("$PG_CONFIG" --sharedir)/extension
cp "$share/billing--0.2.0--$version.sql" "$share/billing--$version--$version-again.sql"
q -c "ALTER EXTENSION billing UPDATE TO '$version-again'" >"$DIR/again.log" 2>&1 ||
	{ cat "$DIR/again.log"; fail "the update script does not run a second time"; }
schema upgraded | sed "s/'$version-again'/'$version'/" >"$DIR/schema-again.sql"
diff -u "$DIR/schema-fresh.sql" "$DIR/schema-again.sql" >"$DIR/schema-again.diff" ||
	{ head -200 "$DIR/schema-again.diff"; fail "the update script run twice changes the schema (diff above)"; }
[ -z "$(q -c 'SELECT * FROM billing.verify()')" ] || fail "verify() finds problems after the second run"


# f) the upgraded database dumps and restores whole
rows_script >"$DIR/snapshot-upgraded.sql"
q -f "$DIR/snapshot-upgraded.sql" >"$DIR/rows-upgraded.txt"
pg_dump -Fc -d upgraded -f "$DIR/upgraded.dump" || fail "pg_dump of the upgraded database failed"
createdb restored
pg_restore -d restored --exit-on-error "$DIR/upgraded.dump" >"$DIR/restore.log" 2>&1 ||
	{ cat "$DIR/restore.log"; fail "pg_restore of the upgraded database failed"; }
q -d restored -f "$DIR/snapshot-upgraded.sql" >"$DIR/rows-restored.txt"
diff -u "$DIR/rows-upgraded.txt" "$DIR/rows-restored.txt" >"$DIR/rows-restored.diff" ||
	{ head -60 "$DIR/rows-restored.diff"; fail "the restore of the upgraded database differs (diff above)"; }
[ -z "$(q -d restored -c 'SELECT * FROM billing.verify()')" ] || fail "verify() finds problems after the restore"

echo "upgrade: $FROM -> $version: the schema equals a fresh install's, $rows rows kept, open requests settled, verify() clean, the script runs twice, the upgraded database dumps and restores whole"
