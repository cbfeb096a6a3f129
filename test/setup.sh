#!/usr/bin/env bash
# Installs what billing needs on Debian 12 (when missing), then builds and
# installs the extension and builds its libpq programs (make programs), with
# warnings as errors (COPT=-Werror, for CI; a plain make does not). Sourced
# by test/run.sh and demo/run.sh; needs root (or sudo) for apt-get and make
# install.
set -euo pipefail

# BILLING_PG_MAJOR: the host's is 15 (Debian 12); test/run.sh runs this
# inside the chroots of 17 and 18 (test/pgchroot.sh) with theirs
MAJOR=${BILLING_PG_MAJOR:-15}
PKGS="postgresql-$MAJOR postgresql-server-dev-$MAJOR postgresql-client-$MAJOR libpq-dev libipc-run-perl
      postgresql-$MAJOR-cron faketime make gcc libc6-dev"
# the gateway and PgBouncer tests run on 15 only
[ "$MAJOR" != 15 ] || PKGS="$PKGS python3-psycopg pgbouncer"
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

export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/$MAJOR/bin/pg_config}
PG_BIN=$("$PG_CONFIG" --bindir)
export PATH="$PG_BIN:$PATH"

# JIT bitcode only where the clang that PostgreSQL was built with is there
# (the chroots have none)
clang=$(sed -n 's/^CLANG[[:space:]]*=[[:space:]]*//p' "$(dirname "$("$PG_CONFIG" --pgxs)")/../Makefile.global")
llvm=""; [ -x "$clang" ] || llvm="with_llvm=no"
make -s PG_CONFIG="$PG_CONFIG" $llvm COPT=-Werror all programs
$SUDO make -s PG_CONFIG="$PG_CONFIG" $llvm install
