#!/usr/bin/env bash
# PostgreSQL majors that Debian 12 does not ship, each in a Debian chroot of
# the suite that does (17: trixie, 18: forky), kept outside the clone and
# reused while the machine lives. Adding those suites to the host's apt
# sources would replace its libc, so they live only in their chroot.
#
#   bash test/pgchroot.sh create MAJOR       make the chroot once (a no-op when it is there)
#   bash test/pgchroot.sh run MAJOR DIR CMD...
#       CMD, as root, inside that chroot with the host directory DIR mounted
#       at /billing (read-write; put a copy of the source tree there, and
#       logs). It runs in a mount and PID namespace of its own (unshare):
#       /proc, /dev and the bind mount vanish with it, and so does every
#       process it leaves behind (a server not stopped).
#
# Environment: BILLING_CHROOT_BASE (default /var/lib/billing-test). Needs
# root; installs debootstrap on the host when missing. Creating one takes a
# few minutes and about 1.4 GB.
set -euo pipefail

BASE=${BILLING_CHROOT_BASE:-/var/lib/billing-test}
MIRROR=${BILLING_CHROOT_MIRROR:-http://deb.debian.org/debian}

suite_of() {
	case $1 in
	17) echo trixie ;;
	18) echo forky ;;
	*) echo "pgchroot: no Debian suite known for PostgreSQL $1" >&2; return 1 ;;
	esac
}

# what the suites need inside: the server and its headers, a compiler, the
# TAP tests' IPC::Run and pg_cron
packages() {
	echo "postgresql-$1 postgresql-server-dev-$1 postgresql-client-$1 postgresql-$1-cron
	      make gcc libc6-dev libipc-run-perl faketime" | tr -s ' \n\t' ' '
}

# apt-get install inside ROOT, when its list of packages is not the one installed
install_packages() {
	local root=$1 major=$2 log=$3
	[ "$(cat "$root/.packages" 2>/dev/null)" = "$(packages "$major")" ] && return 0
	in_ns "$root" sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends \
		-o Dpkg::Options::=--force-confold $(packages "$major") && apt-get clean" \
		>>"$log" 2>&1 || { tail -20 "$log"; return 1; }
	packages "$major" >"$root/.packages"
}

# in_ns ROOT CMD...: CMD chrooted into ROOT in new mount and PID namespaces
in_ns() {
	local root=$1; shift
	unshare --mount --pid --fork --propagation private /bin/sh -c '
		root=$1; shift
		mount -t proc proc "$root/proc" &&
		mount --rbind /dev "$root/dev" &&
		mount -t tmpfs tmpfs "$root/dev/shm" &&
		if [ -n "${BIND:-}" ]; then
			mkdir -p "$root/billing" && mount --bind "$BIND" "$root/billing" &&
			# every clone on the machine shares the chroot: a run cannot change its PostgreSQL
			mount --bind "$root/usr" "$root/usr" && mount -o remount,bind,ro "$root/usr" &&
			mount -t tmpfs tmpfs "$root/tmp"
		fi &&
		exec chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
			TERM=dumb DEBIAN_FRONTEND=noninteractive "$@"' sh "$root" "$@"
}

create() {
	local major=$1 suite root tmp start
	suite=$(suite_of "$major")
	root=$BASE/chroot-$major
	[ -f "$root/.complete" ] && [ "$(cat "$root/.packages" 2>/dev/null)" = "$(packages "$major")" ] &&
		return 0
	[ "$(id -u)" -eq 0 ] || { echo "pgchroot: needs root" >&2; return 1; }
	command -v debootstrap >/dev/null || {
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
	}
	mkdir -p "$BASE"
	# one creator at a time; a second caller waits, then finds it complete
	exec 9>"$BASE/chroot-$major.lock"
	flock 9
	# made before, by an older list of packages
	[ -f "$root/.complete" ] && { install_packages "$root" "$major" "$BASE/chroot-$major.log"; return; }
	start=$(date +%s)
	tmp=$root.partial
	rm -rf "$tmp"
	echo "pgchroot: creating $root (Debian $suite) for PostgreSQL $major"
	# bookworm's debootstrap has no script named forky; sid's fits any testing suite
	debootstrap --variant=minbase "$suite" "$tmp" "$MIRROR" /usr/share/debootstrap/scripts/sid \
		>"$BASE/chroot-$major.log" 2>&1 || { tail -20 "$BASE/chroot-$major.log"; return 1; }
	cp /etc/resolv.conf "$tmp/etc/resolv.conf"
	# testing's Release file is served past its Valid-Until date
	echo 'Acquire::Check-Valid-Until "false";' >"$tmp/etc/apt/apt.conf.d/99billing"
	# no service starts inside, and no default cluster is made
	printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"; chmod 755 "$tmp/usr/sbin/policy-rc.d"
	mkdir -p "$tmp/etc/postgresql-common"
	echo 'create_main_cluster = false' >"$tmp/etc/postgresql-common/createcluster.conf"
	install_packages "$tmp" "$major" "$BASE/chroot-$major.log" || return 1
	touch "$tmp/.complete"
	mv "$tmp" "$root"
	echo "pgchroot: $root created in $(($(date +%s) - start)) s"
}

case ${1:-} in
create)
	create "$2" ;;
run)
	major=$2 dir=$3; shift 3
	create "$major" >&2
	BIND=$(cd "$dir" && pwd) in_ns "$BASE/chroot-$major" "$@" ;;
*)
	echo "usage: $0 create MAJOR | run MAJOR DIR CMD..." >&2; exit 2 ;;
esac
