#!/usr/bin/env bash
# Throwaway PostgreSQL 15 cluster helpers, sourced by test and demo scripts.
# PostgreSQL refuses to run as root, so as root the server runs as postgres.

CLUSTER_USER=$(id -un)
[ "$(id -u)" -eq 0 ] && CLUSTER_USER=postgres
as_cluster_user() {
	if [ "$(id -un)" = "$CLUSTER_USER" ]; then "$@"; else runuser -u "$CLUSTER_USER" -- "$@"; fi
}

# cluster_start DIR PORT [extra postgresql.conf lines...]
cluster_start() {
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
	as_cluster_user pg_ctl -D "$dir/data" -l "$dir/server.log" -w start >/dev/null \
		|| { cat "$dir/server.log"; return 1; }
	export PGHOST=$dir PGPORT=$port PGUSER=postgres
}

cluster_stop() {
	as_cluster_user pg_ctl -D "$1/data" -m fast -w stop >/dev/null 2>&1 || true
}
