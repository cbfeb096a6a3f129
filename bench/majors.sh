#!/usr/bin/env bash
# make bench on every PostgreSQL major (`make bench-majors`): 15 on the host
# (PG_CONFIG), 17 and 18 in their Debian chroots (test/pgchroot.sh), one
# after the other on the same machine, each with billing built into a
# private copy of its major. The BENCH_* settings of bench/run.sh pass
# through. Prints each major's summary, then the ratios side by side.
# Environment: BENCH_MAJORS (default "15 17 18"), BENCH_MAJORS_DIR (default
# /tmp/billing-bench-majors). Needs root for the chroots.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. test/cluster.sh
WORK=${BENCH_MAJORS_DIR:-/tmp/billing-bench-majors}
HOST_PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
rm -rf "$WORK"; mkdir -p "$WORK"; chmod 755 "$WORK"
settings=$(env | grep -E '^BENCH_[A-Z_]+=' | grep -vE '^BENCH_MAJORS' || true)

for major in ${BENCH_MAJORS:-15 17 18}; do
	log=$WORK/bench-$major.log
	if [ "$major" = "$("$HOST_PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')" ]; then
		make -s -C "$ROOT" bench PG_CONFIG="$HOST_PG_CONFIG" >"$log" 2>&1
	else
		dir=$WORK/pg$major
		mkdir -p "$dir"; tree_copy "$ROOT" "$dir/src"
		# billing and bench/cost built inside, into a copy of the chroot's major
		bash test/pgchroot.sh run "$major" "$dir" env $settings bash -c "
			set -e; cd /billing/src; . test/cluster.sh
			pgc=\$(pg_private_copy /usr/lib/postgresql/$major/bin/pg_config /billing/pg)
			make -s PG_CONFIG=\$pgc with_llvm=no all install bench/cost >/billing/build.log 2>&1
			make -s bench PG_CONFIG=\$pgc" >"$log" 2>&1
	fi
	echo "== PostgreSQL $major"
	sed -n '/^billing bench/,$p' "$log" | grep -E '^billing bench|\((1|1a|1b|2|3)\)|CPU|\(1\)/\(2\)' || { tail -20 "$log"; exit 1; }
done
echo "== (1)/(2), the charge against the plain-SQL floor, per major"
for major in ${BENCH_MAJORS:-15 17 18}; do
	printf '%s: %s\n' "$major" "$(sed -nE 's/^  \(1\)\/\(2\) = ([0-9.]+).*/\1/p' "$WORK/bench-$major.log" | head -1)"
done
