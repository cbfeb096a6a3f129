#!/usr/bin/env bash
# A billing database moves from one PostgreSQL major to another with
# pg_dump/pg_restore (README.md, Installation). Two halves, run by the two servers:
#
#   bash test/dumprestore.sh source
#       On the old major: a cluster (left running) with a database filled
#       through the API; writes DUMP_DIR/rows.txt (every row of every billing
#       table, and every sequence) and DUMP_DIR/source.dump (pg_dump -Fc of
#       the old major).
#   bash test/dumprestore.sh target
#       On the new major, with billing installed: restores into a cluster of
#       its own both DUMP_DIR/source.dump and, where the source still runs
#       (DUMP_SOURCE_PORT on 127.0.0.1), a dump taken with this major's
#       pg_dump (as PostgreSQL advises); then checks every row equal,
#       billing.verify() clean, the API working (a replayed key, a charge,
#       its balance, new ids after the old ones).
#   bash test/dumprestore.sh upgrade
#       pg_upgrade instead: the source half run with OLD_PG_CONFIG's binaries
#       (billing installed there too), the cluster upgraded to this major
#       (copy mode), then the same checks. The old binaries may need
#       LD_LIBRARY_PATH where they run on another Debian release.
#   bash test/dumprestore.sh stop      stops the source's cluster
#
# Ends with a line of what it showed, or "dumprestore: FAILED: why" (status 1).
# Environment: DUMP_DIR (default /tmp/billing-dump), DUMP_PORT (the cluster's
# port; default 55450), DUMP_SOURCE_PORT (target: the running source's
# port), PG_CONFIG (the PostgreSQL that runs it, with billing installed).
set -euo pipefail
cd "$(dirname "$0")/.."
. test/cluster.sh
export PATH="$("${PG_CONFIG:-pg_config}" --bindir):$PATH"
DIR=${DUMP_DIR:-/tmp/billing-dump}
PORT=${DUMP_PORT:-55450}
# timestamps are compared as text: one zone on both sides
export PGTZ=UTC
major=$(pg_config --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')

fail() { echo "dumprestore: FAILED: $*"; exit 1; }
q() { psql -X -q -v ON_ERROR_STOP=1 -At "$@"; }

# rows DB: every row of every billing table, ordered, then every sequence
rows() {
	rows_script -d "$1" >"$DIR/rows-query.sql"
	q -d "$1" -f "$DIR/rows-query.sql"
}

source_half() {
	cluster_stop "$DIR/cluster"
	rm -rf "$DIR"; mkdir -p "$DIR"; chmod 755 "$DIR"
	# no JIT: for pg_upgrade the old major runs where its LLVM is not
	cluster_start "$DIR/cluster" "$PORT" "jit = off" || fail "the $major cluster does not start"
	createdb billing_src
	# a day of billing through the API (test/fill.sql)
	q -d billing_src -c 'CREATE EXTENSION billing' -f test/fill.sql >"$DIR/fill.log" 2>&1 ||
		{ cat "$DIR/fill.log"; fail "the database cannot be filled"; }
	rows billing_src >"$DIR/rows.txt"
	pg_dump -Fc -d billing_src -f "$DIR/source.dump" || fail "pg_dump $major fails"
	echo "dumprestore: a database filled on $major, $(grep -vc '^table\|^sequence' "$DIR/rows.txt") rows and sequences, dumped"
}

# check DUMPFILE LABEL: restore into a new database and check it
check() {
	local dump=$1 label=$2 db=restored_$2
	createdb "$db"
	pg_restore --exit-on-error -d "$db" "$dump" >"$DIR/restore-$label.log" 2>&1 ||
		{ cat "$DIR/restore-$label.log"; fail "$label: pg_restore fails"; }
	check_db "$db" "$label"
}

# check_db DB LABEL: every row as dumped, verify() clean, the API working
check_db() {
	local db=$1 label=$2
	rows "$db" >"$DIR/rows-$label.txt"
	diff -u "$DIR/rows.txt" "$DIR/rows-$label.txt" >"$DIR/rows-$label.diff" ||
		{ head -60 "$DIR/rows-$label.diff"; fail "$label: the restored rows differ from the dumped ones (diff above)"; }
	[ -z "$(q -d "$db" -c 'SELECT * FROM billing.verify()')" ] || fail "$label: verify() finds problems"
	q -d "$db" <<'EOF' >"$DIR/api-$label.log" 2>&1 || { cat "$DIR/api-$label.log"; fail "$label: the API does not work after the restore"; }
SET client_min_messages = warning;
DO $$
DECLARE
    pre bigint := (SELECT account_id FROM billing.accounts WHERE external_id = 'fill-pre');
    last_request bigint := (SELECT pg_catalog.max(request_id) FROM billing.requests);
    last_entry bigint := (SELECT pg_catalog.max(entry_id) FROM billing.ledger);
    before jsonb := billing.balance(pre);
    fresh jsonb;
BEGIN
    -- a key used before the dump replays: nothing is charged again
    PERFORM billing.charge(pre, 'fill-img', '{"n":2}', '{"images":[{},{}]}', '{}', 'fill-c-1');
    IF billing.balance(pre) <> before THEN
        RAISE EXCEPTION 'a replayed key charged again: % then %', before, billing.balance(pre);
    END IF;
    fresh := billing.charge(pre, 'fill-img', '{"n":1}', '{"images":[{}]}', '{}', 'after-restore');
    IF (fresh ->> 'request_id')::bigint <= last_request
       OR (SELECT pg_catalog.min(entry_id) FROM billing.ledger WHERE request_id = (fresh ->> 'request_id')::bigint)
          <= last_entry THEN
        RAISE EXCEPTION 'new ids do not come after the old ones: %', fresh;
    END IF;
    IF (before ->> 'available_micros')::bigint - (billing.balance(pre) ->> 'available_micros')::bigint <> 40000 THEN
        RAISE EXCEPTION 'a charge of 40000 moved the balance from % to %', before, billing.balance(pre);
    END IF;
    -- the request left open settles
    PERFORM billing.complete_request((SELECT request_id FROM billing.requests WHERE idempotency_key = 'fill-queued'),
                                     '{"duration_seconds":5}');
    IF EXISTS (SELECT FROM billing.verify()) THEN
        RAISE EXCEPTION 'verify() finds problems after new work';
    END IF;
END $$;
EOF
}

target_half() {
	[ -f "$DIR/source.dump" ] || fail "no dump in $DIR (run the source half first)"
	cluster_stop "$DIR/cluster-$major"
	cluster_start "$DIR/cluster-$major" "$PORT" || fail "the $major cluster does not start"
	trap 'cluster_stop "$DIR/cluster-$major"' EXIT
	local src_major checked="the source's pg_dump"
	src_major=$(pg_restore -l "$DIR/source.dump" | sed -nE 's/^;[[:space:]]+Dumped from database version: ([0-9]+).*/\1/p')
	check "$DIR/source.dump" "pg_dump$src_major"
	if [ -n "${DUMP_SOURCE_PORT:-}" ]; then
		pg_dump -Fc -h 127.0.0.1 -p "$DUMP_SOURCE_PORT" -U postgres -d billing_src -f "$DIR/target.dump" ||
			fail "pg_dump $major of the $src_major server fails"
		check "$DIR/target.dump" "pg_dump$major"
		checked="$checked and pg_dump $major"
	fi
	echo "dumprestore: $src_major -> $major with $checked: every row and sequence kept, verify() clean, the API works"
}

upgrade() {
	local old_bin new_bin old_major
	old_bin=$("${OLD_PG_CONFIG:?OLD_PG_CONFIG: the old pg_config}" --bindir); new_bin=$(pg_config --bindir)
	PG_CONFIG=$OLD_PG_CONFIG bash "$0" source || fail "the old major's cluster cannot be filled"
	PG_CONFIG=$OLD_PG_CONFIG bash "$0" stop
	old_major=$("$OLD_PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
	cluster_init "$DIR/upgraded" "$PORT" || fail "initdb $major fails"
	# initdb turns data checksums on from 18, as the old cluster has them not
	as_cluster_user pg_checksums --disable -D "$DIR/upgraded/data" >/dev/null 2>&1 || true
	# pg_upgrade writes its logs and sockets where it runs
	(cd "$DIR/upgraded" && as_cluster_user "$new_bin/pg_upgrade" -b "$old_bin" -B "$new_bin" \
		-d "$DIR/cluster/data" -D "$DIR/upgraded/data" -p "$PORT" -P "$PORT") >"$DIR/pg_upgrade.log" 2>&1 ||
		{ tail -30 "$DIR/pg_upgrade.log"; cat "$DIR"/upgraded/data/pg_upgrade_output.d/*/log/pg_upgrade_server.log 2>/dev/null | tail -20
		  fail "pg_upgrade $old_major -> $major fails"; }
	as_cluster_user pg_ctl -D "$DIR/upgraded/data" -l "$DIR/upgraded/server.log" -w start >/dev/null ||
		{ cat "$DIR/upgraded/server.log"; fail "the upgraded cluster does not start"; }
	trap 'cluster_stop "$DIR/upgraded"' EXIT
	export PGHOST=$DIR/upgraded PGPORT=$PORT PGUSER=postgres
	check_db billing_src pg_upgrade
	echo "dumprestore: pg_upgrade $old_major -> $major: every row and sequence kept, verify() clean, the API works"
}

case ${1:-} in
source) source_half ;;
target) target_half ;;
upgrade) upgrade ;;
stop) cluster_stop "$DIR/cluster" ;;
*) echo "usage: $0 source|target|stop" >&2; exit 2 ;;
esac
