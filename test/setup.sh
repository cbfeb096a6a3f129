#!/usr/bin/env bash
# Installs what billing needs on Debian 12 (when missing), then builds and
# installs the extension and builds its libpq programs (make programs), with
# warnings as errors (COPT=-Werror, for CI; a plain make does not). Sourced
# by test/run.sh and demo/run.sh; needs root (or sudo) for apt-get and make
# install.
set -euo pipefail

PKGS="postgresql-15 postgresql-server-dev-15 postgresql-client-15 libpq-dev libipc-run-perl
      postgresql-15-cron faketime make gcc libc6-dev python3-psycopg pgbouncer"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "installing:$missing"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PG_BIN=$("$PG_CONFIG" --bindir)
export PATH="$PG_BIN:$PATH"

make -s PG_CONFIG="$PG_CONFIG" COPT=-Werror all programs
$SUDO make -s PG_CONFIG="$PG_CONFIG" install
