#!/usr/bin/env bash
# hack/runtimes/leftovers.sh: list what remains on this machine from any
# hack/runtimes runtime (containerd16, containerd2, crio): processes, mounts,
# gauntlet-* bridges, CNI-* iptables chains, netns, cgroups and files.
# Prints one "leftover: KIND: WHAT" line each and exits 1 if anything
# remains; prints "leftovers: none" and exits 0 otherwise. Run it after
# `hack/runtimes/NAME down` to prove that down put the machine back.
#
# Not counted: installed apt packages and the build cache
# (/var/tmp/gauntlet-runtimes/.cache), which are meant to stay.
set -euo pipefail

base=/var/tmp/gauntlet-runtimes
dirs=("$base")
[[ -n ${GAUNTLET_RUNTIME_DIR:-} ]] && dirs+=("${GAUNTLET_RUNTIME_DIR%/}")
found=0
report() {
	printf 'leftover: %s: %s\n' "$1" "$2"
	found=1
}

# Processes: the daemons and their helpers, and anything run from a work dir.
self=" $$ $BASHPID $PPID "
for d in /proc/[0-9]*; do
	pid=${d#/proc/}
	[[ $self == *" $pid "* ]] && continue
	comm=$(cat "$d/comm" 2>/dev/null) || continue
	# A zombie is already dead; init reaps it (here with some delay).
	stat=$(cat "$d/stat" 2>/dev/null) || continue
	stat=${stat##*) }
	[[ ${stat:0:1} == Z ]] && continue
	cmd=$(tr '\0' ' ' <"$d/cmdline" 2>/dev/null) || continue
	case $comm in
	containerd | containerd-shim* | crio | conmon | pinns | runc)
		report process "$pid $cmd"
		continue
		;;
	esac
	for w in "${dirs[@]}"; do
		if [[ $cmd == *"$w/"* ]]; then
			report process "$pid $cmd"
			break
		fi
	done
done

# Mounts: anything under a work dir or the runtimes' fixed run dirs, and
# network namespace bind mounts anywhere.
while read -r _ _ _ _ mp _ _ fstype _; do
	[[ $fstype == - ]] && continue
	for w in "${dirs[@]}" /run/containerd /run/crio /var/run/crio /run/netns /var/run/netns; do
		if [[ $mp == "$w" || $mp == "$w/"* ]]; then
			report mount "$mp"
			continue 2
		fi
	done
done </proc/self/mountinfo
# The fs type follows the " - " separator, at a variable position.
awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { if ($(i + 1) == "nsfs") print $5; break } }' /proc/self/mountinfo |
	while read -r mp; do report mount "nsfs $mp"; done

# Network: bridges and the veths on them, netns names, iptables chains.
if command -v ip >/dev/null; then
	while read -r link; do
		[[ -n $link ]] && report link "$link"
	done < <(ip -o link show 2>/dev/null | awk -F': ' '$2 ~ /^gauntlet-/ || $0 ~ /master gauntlet-/ { print $2 }')
	while read -r ns; do
		[[ -n $ns ]] && report netns "$ns"
	done < <(ip netns list 2>/dev/null | awk '{ print $1 }')
fi
for save in iptables-save iptables-legacy-save ip6tables-save ip6tables-legacy-save; do
	command -v "$save" >/dev/null || continue
	while read -r line; do
		[[ -n $line ]] && report iptables "$save: $line"
	done < <("$save" 2>/dev/null | grep -E '^:(CNI-|KUBE-HOSTPORTS|KUBE-HP-|CRIO-)|^-A .*(CNI-|gauntlet-|KUBE-HOSTPORTS|CRIO-)' || true)
done
if command -v nft >/dev/null; then
	while read -r line; do
		[[ -n $line ]] && report nftables "$line"
	done < <(nft list tables 2>/dev/null | grep -E 'crio|cni' || true)
fi

# Files and directories.
for w in "${dirs[@]}"; do
	[[ -d $w ]] || continue
	if [[ $w == "$base" ]]; then
		while read -r f; do report file "$f"; done < <(find "$base" -mindepth 1 -maxdepth 1 ! -name .cache)
	else
		report file "$w"
	fi
done
shopt -s nullglob
for f in /var/lib/cni/networks/gauntlet-* /var/lib/cni/results/gauntlet-* /var/lib/cni/cache/results/gauntlet-* \
	/run/containerd/s/* /run/containerd/runc /run/containerd/io.containerd.* \
	/run/crio /var/lib/crio /var/log/crio /run/containers/storage /var/lib/containers/storage \
	/var/lib/containerd /opt/containerd /run/netns/cni-* /var/run/netns/cni-* \
	/sys/fs/cgroup/k8s.io /sys/fs/cgroup/*/k8s.io /sys/fs/cgroup/kubepods* /sys/fs/cgroup/*/kubepods* \
	/sys/fs/cgroup/pod_* /sys/fs/cgroup/*/pod_* /sys/fs/cgroup/crio* /sys/fs/cgroup/*/crio*; do
	[[ -e $f || -L $f ]] && report file "$f"
done

if ((found)); then
	exit 1
fi
echo "leftovers: none"
