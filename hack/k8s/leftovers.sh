#!/usr/bin/env bash
# hack/k8s/leftovers.sh [PORT]...: list what remains on this machine from
# hack/k8s/apiserver: processes run from its work dir or its binary cache
# (etcd, kube-apiserver, kubectl), their listening ports, any listener on
# the given PORTs (pass the ports `up` printed), and files. Prints one
# "leftover: KIND: WHAT" line each and exits 1 if anything remains; prints
# "leftovers: none" and exits 0 otherwise. Run it after
# `hack/k8s/apiserver down` to prove that down put the machine back.
#
# Not counted: the etcd-server package and the binary cache
# ($GAUNTLET_K8S_CACHE, default /var/tmp/gauntlet-k8s/bin), meant to stay.
set -euo pipefail

base=/var/tmp/gauntlet-k8s
cache=${GAUNTLET_K8S_CACHE:-$base/bin}
cache=${cache%/}
dirs=("$base/run")
[[ -n ${GAUNTLET_K8S_WORKDIR:-} ]] && dirs+=("${GAUNTLET_K8S_WORKDIR%/}")
found=0
report() {
	printf 'leftover: %s: %s\n' "$1" "$2"
	found=1
}
for p in "$@"; do
	if ! [[ $p =~ ^[0-9]+$ ]] || ((p < 1 || p > 65535)); then
		echo "hack/k8s/leftovers.sh: error: '$p' is not a TCP port: pass the ports up printed, e.g. 6443" >&2
		exit 2
	fi
done

# Processes: anything run from a work dir or from the binary cache. One
# grep over /proc (a fork per process takes seconds on a busy machine).
self=" $$ $BASHPID $PPID "
pids=()
patterns=()
# The last character bracketed, so that grep's own command line (also in
# /proc) does not match: "/a/b/" -> "/a/[b]/".
# shellcheck disable=SC2001 # a character class, which ${//} cannot do
for w in "${dirs[@]}" "$cache"; do patterns+=(-e "$(sed 's/[][\.*^$]/\\&/g' <<<"${w%?}")[${w: -1}]/"); done
while read -r f; do
	d=${f%/cmdline}
	pid=${d#/proc/}
	[[ $self == *" $pid "* ]] && continue
	# A zombie is already dead; its parent or init reaps it (here with some delay).
	stat=$(cat "$d/stat" 2>/dev/null) || continue
	stat=${stat##*) }
	[[ ${stat:0:1} == Z ]] && continue
	cmd=$(tr '\0' ' ' 2>/dev/null <"$d/cmdline") || continue
	report process "$pid $cmd"
	pids+=("$pid")
done < <(grep -la "${patterns[@]}" /proc/[0-9]*/cmdline 2>/dev/null || true)

# Listening ports: those of the processes above, and the given ones.
if command -v ss >/dev/null; then
	listeners=$(ss -Hltnp 2>/dev/null || true)
	for pid in "${pids[@]}"; do
		while read -r line; do
			[[ -n $line ]] && report port "$(awk '{ print $4 }' <<<"$line") (pid $pid)"
		done < <(grep -F "pid=$pid," <<<"$listeners" || true)
	done
	# A freed port may be taken at once by an unrelated process on a busy
	# machine: only etcd and kube-apiserver listeners on it count.
	for p in "$@"; do
		while read -r line; do
			[[ -n $line ]] || continue
			if [[ $line == *'(("etcd",'* || $line == *'(("kube-apiserver",'* ]]; then
				report port "$p: $line"
			else
				echo "hack/k8s/leftovers.sh: note: port $p is in use again, by another program (not counted): $line" >&2
			fi
		done < <(awk -v p="$p" '{ n = split($4, a, ":"); if (a[n] == p) print }' <<<"$listeners")
	done
elif (($#)); then
	echo "hack/k8s/leftovers.sh: error: ss (iproute2) not found, cannot check ports $*: apt-get install iproute2" >&2
	exit 2
fi

# Files: the work dirs, anything in the base dir but the cache, and what an
# apiserver without --tls-cert-file would write.
for w in "${dirs[@]}"; do
	[[ -e $w ]] && report file "$w"
done
if [[ -d $base ]]; then
	while read -r f; do
		[[ $f == "$cache" || $f == "$base/bin" || " ${dirs[*]} " == *" $f "* ]] && continue
		report file "$f"
	done < <(find "$base" -mindepth 1 -maxdepth 1)
fi
# (/var/run is /run on Debian.)
[[ -e /run/kubernetes ]] && report file /run/kubernetes

if ((found)); then
	exit 1
fi
echo "leftovers: none"
