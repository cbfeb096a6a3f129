#!/usr/bin/env bash
# Throwaway PostgreSQL 15 clusters and private copies of PostgreSQL to build
# into, sourced by test and demo scripts. PostgreSQL refuses to run as root,
# so as root the server runs as postgres.

CLUSTER_USER=$(id -un)
[ "$(id -u)" -eq 0 ] && CLUSTER_USER=postgres
as_cluster_user() {
	if [ "$(id -un)" = "$CLUSTER_USER" ]; then "$@"; else runuser -u "$CLUSTER_USER" -- "$@"; fi
}

# cluster_init DIR PORT [extra postgresql.conf lines...]: a new, stopped cluster
cluster_init() {
	local dir=$1 port=$2; shift 2
	rm -rf "$dir"; mkdir -p "$dir"; chown "$CLUSTER_USER" "$dir" 2>/dev/null || true
	as_cluster_user initdb -D "$dir/data" -A trust -U postgres --no-sync -E UTF8 >"$dir/initdb.log" 2>&1 \
		|| { cat "$dir/initdb.log"; return 1; }
	{
		echo "port = $port"
		echo "listen_addresses = '127.0.0.1'"
		echo "unix_socket_directories = '$dir'"
		echo "max_connections = 120"
		echo "shared_buffers = 256MB"
		for line in "$@"; do echo "$line"; done
	} >>"$dir/data/postgresql.conf"
}

# cluster_start DIR PORT [extra postgresql.conf lines...]
cluster_start() {
	local dir=$1 port=$2
	cluster_init "$@" || return 1
	as_cluster_user pg_ctl -D "$dir/data" -l "$dir/server.log" -w start >/dev/null \
		|| { cat "$dir/server.log"; return 1; }
	export PGHOST=$dir PGPORT=$port PGUSER=postgres
}

# cluster_start_faketime DIR PORT DAYS [extra postgresql.conf lines...]: a
# cluster whose clock runs DAYS days ahead (libfaketime, Debian package
# faketime). pg_ctl -w can hang under libfaketime, so postgres starts
# directly and pg_isready waits for it; cluster_stop stops it. Fails unless
# the server's now() really is DAYS days ahead.
cluster_start_faketime() {
	local dir=$1 port=$2 days=$3 i ahead; shift 3
	command -v faketime >/dev/null || { echo "faketime is not installed"; return 1; }
	cluster_init "$dir" "$port" "$@" || return 1
	as_cluster_user faketime -f "+${days}d" "$(command -v postgres)" -D "$dir/data" >"$dir/server.log" 2>&1 &
	for i in $(seq 120); do
		pg_isready -q -h "$dir" -p "$port" && break
		sleep 0.5
	done
	export PGHOST=$dir PGPORT=$port PGUSER=postgres
	ahead=$(psql -X -d postgres -Atc \
		"SELECT round(extract(epoch FROM now() - to_timestamp($(date +%s))) / 86400) || ' days ahead: now() = ' || now()" 2>&1)
	if [ "${ahead%% *}" != "$days" ]; then
		echo "faketime: the server's clock is not $days days ahead: $ahead"
		cat "$dir/server.log"; cluster_stop "$dir"; return 1
	fi
	echo "faketime: the server's clock is $ahead"
}

cluster_stop() {
	as_cluster_user pg_ctl -D "$1/data" -m fast -w stop >/dev/null 2>&1 || true
}

# pg_private_copy PG_CONFIG PREFIX: copies that PostgreSQL under PREFIX, laid
# out like the original, and prints the copy's pg_config. Builds installed
# with it leave the original untouched: pg_config finds its directories
# relative to its own location, so copying the bin/lib/share trees is enough
# (headers are only read, so a link will do).
pg_private_copy() {
	local pgc=$1 prefix=$2 d bindir share include
	bindir=$("$pgc" --bindir); share=$("$pgc" --sharedir); include=$("$pgc" --includedir)
	for d in "$(dirname "$bindir")" "$share"; do	# e.g. /usr/lib/postgresql/15, /usr/share/postgresql/15
		mkdir -p "$prefix$(dirname "$d")"
		cp -a "$d" "$prefix$d" || return 1
	done
	mkdir -p "$prefix$(dirname "$include")"
	[ -e "$prefix$include" ] || ln -s "$include" "$prefix$include"
	[ "$("$prefix$bindir/pg_config" --pkglibdir)" = "$prefix$("$pgc" --pkglibdir)" ] ||
		{ echo "the copy of PostgreSQL in $prefix is not relocatable" >&2; return 1; }
	chmod -R a+rX "$prefix"
	echo "$prefix$bindir/pg_config"
}

# tree_copy SRC DEST: the source tree SRC without git metadata and build output
tree_copy() {
	mkdir -p "$2"
	tar -C "$1" --exclude=.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' -cf - . |
		tar -C "$2" -xf -
}

# extension_install SRC PG_CONFIG [make arguments...]: builds the extension
# of the tree SRC from scratch (not its libpq programs) and installs it there.
extension_install() {
	local src=$1 pgc=$2; shift 2
	local args=(-s -C "$src" PG_CONFIG="$pgc" with_llvm=no)
	make "${args[@]}" "$@" clean >/dev/null && make "${args[@]}" "$@" all &&
		make "${args[@]}" "$@" install
}

# rows_script [psql args]: a psql script, made from the billing tables of a
# database as they are now (their columns then), that prints every row of
# every billing table in a stable order and the state of every sequence; run
# on two databases, equal output means equal rows
rows_script() {
	psql -X -q -v ON_ERROR_STOP=1 -At "$@" <<'EOF'
SELECT pg_catalog.format(E'\\echo table %1$s\nCOPY (SELECT %2$s FROM billing.%1$I ORDER BY %2$s) TO STDOUT;',
                         c.relname, pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum))
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
 WHERE c.relnamespace = 'billing'::regnamespace AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
 GROUP BY c.relname
UNION ALL
SELECT pg_catalog.format(E'\\echo sequence %1$s\nSELECT last_value, is_called FROM billing.%1$I;', c.relname)
  FROM pg_catalog.pg_class c WHERE c.relnamespace = 'billing'::regnamespace AND c.relkind = 'S'
 ORDER BY 1;
EOF
}

# release_commit VERSION: the commit of a release in this repository's history
release_commit() {
	case $1 in
	0.1.0) echo 3403213 ;;
	0.2.0) echo ca2b76a ;;
	*) return 1 ;;
	esac
}
