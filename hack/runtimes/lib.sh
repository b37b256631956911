# shellcheck shell=bash
# lib.sh: shared code of hack/runtimes/{containerd16,containerd2,crio}. Sourced, not run.
#
# A runtime script sets RT_NAME, RT_BRIDGE, RT_SUBNET and RT_SOCK_NAME, defines
#   rt_packages        apt packages it needs (printed one per line)
#   rt_prepare         build or find its binaries (may use $RT_CACHE)
#   rt_write_config    write its config under $W
#   rt_start           start the daemon in the background, set DAEMON_PID
#   rt_import DIR      import DIR/{pause,busybox}.oci.tar
#   rt_host_cleanup    (optional) remove what it made outside $W, at down
# and then calls rt_main "$@".
#
# Layout: everything of a running runtime lives in $W (GAUNTLET_RUNTIME_DIR,
# default /var/tmp/gauntlet-runtimes/$RT_NAME): daemon root and state, runc
# root, sockets, CNI config and IPAM data, netns mounts, logs. Built binaries
# are cached in $GAUNTLET_CACHE_DIR (default /var/tmp/gauntlet-runtimes/.cache),
# which `down` keeps so that the next `up` does not rebuild.

GAUNTLET_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RT_BASE=/var/tmp/gauntlet-runtimes
W=${GAUNTLET_RUNTIME_DIR:-$RT_BASE/$RT_NAME}
W=${W%/}
RT_CACHE=${GAUNTLET_CACHE_DIR:-$RT_BASE/.cache}
RT_TIMEOUT=${GAUNTLET_RUNTIME_TIMEOUT:-60}
RT_SOCK=$W/$RT_SOCK_NAME
RT_ENDPOINT=unix://$RT_SOCK
RT_MARKER=.gauntlet-runtime
HOST_STATE=$RT_BASE/.host
# shellcheck disable=SC2034 # used by the runtime scripts
CNI_BIN_DIR=/usr/lib/cni
CNI_VAR=/var/lib/cni
CRICTL=
DAEMON_PID=

log() { printf '%s: %s\n' "$RT_NAME" "$*" >&2; }
die() {
	printf '%s: error: %s\n' "$RT_NAME" "$*" >&2
	exit 1
}

now_ms() { date +%s%3N; }

need_root() {
	[[ $(id -u) == 0 ]] || die "must run as root (mounts, netns, iptables): rerun with sudo"
}

# check_workdir refuses a work dir that is not ours, so that `down` never
# removes a directory that GAUNTLET_RUNTIME_DIR points at by mistake.
check_workdir() {
	case $W in
	/ | /var | /var/tmp | /tmp | /root | /home | /usr | /etc | /run | /var/lib | "$RT_BASE" | "$RT_CACHE")
		die "GAUNTLET_RUNTIME_DIR=$W is not a dedicated directory: point it at a new directory"
		;;
	/*) ;;
	*) die "GAUNTLET_RUNTIME_DIR=$W must be an absolute path" ;;
	esac
	if [[ -d $W && ! -e $W/$RT_MARKER ]] && [[ -n $(ls -A "$W") ]]; then
		die "$W exists, is not empty and was not made by hack/runtimes: remove it or set GAUNTLET_RUNTIME_DIR to a new directory"
	fi
	if [[ -e $W/$RT_MARKER && $(cat "$W/$RT_MARKER") != "$RT_NAME" ]]; then
		die "$W belongs to runtime $(cat "$W/$RT_MARKER"): run hack/runtimes/$(cat "$W/$RT_MARKER") down, or set GAUNTLET_RUNTIME_DIR"
	fi
}

# ---------------------------------------------------------------- packages

APT_UPDATED=
ensure_packages() {
	local missing=() p
	for p in "$@"; do
		if [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) != "install ok installed" ]]; then
			missing+=("$p")
		fi
	done
	((${#missing[@]})) || return 0
	log "installing ${missing[*]} (apt)"
	if [[ -z $APT_UPDATED ]]; then
		apt-get update -qq >&2 || die "apt-get update failed: check access to the Debian mirror"
		APT_UPDATED=1
	fi
	# policy-rc.d exit 101: installing must not start a system-wide daemon
	# (Debian's containerd would, on a machine with an init system).
	local policy=/usr/sbin/policy-rc.d created_policy='' rc=0
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		created_policy=1
	fi
	local aptlog
	aptlog=$(mktemp /tmp/gauntlet-apt.XXXXXX)
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$aptlog" 2>&1 || rc=$?
	[[ -z $created_policy ]] || rm -f "$policy"
	if ((rc != 0)); then
		tail -n 20 "$aptlog" >&2
		die "apt-get install ${missing[*]} failed (exit $rc, output above, full in $aptlog): fix apt, then rerun"
	fi
	rm -f "$aptlog"
}

# ---------------------------------------------------------------- CRI client

# ensure_crictl [soft]: build (or find in the cache) crictl. With "soft", a
# failure leaves CRICTL empty instead of exiting: `down` then skips the CRI
# cleanup and kills what is left.
ensure_crictl() {
	[[ -n $CRICTL ]] && return 0
	if CRICTL=$(GAUNTLET_CACHE_DIR=$RT_CACHE "$GAUNTLET_ROOT/hack/tools/build.sh" crictl); then return 0; fi
	CRICTL=
	[[ ${1:-} == soft ]] || die "building crictl failed: run hack/tools/build.sh crictl to see why"
	log "no crictl (hack/tools/build.sh crictl failed): skipping the CRI cleanup"
}

# crictl_rt ARGS: crictl against this runtime; every call has a deadline.
crictl_rt() {
	timeout 150 "$CRICTL" --config /dev/null --runtime-endpoint "$RT_ENDPOINT" --image-endpoint "$RT_ENDPOINT" --timeout 30s "$@"
}

socket_answers() {
	[[ -S $RT_SOCK && -n $CRICTL ]] || return 1
	timeout 15 "$CRICTL" --config /dev/null --runtime-endpoint "$RT_ENDPOINT" --image-endpoint "$RT_ENDPOINT" --timeout 3s version >/dev/null 2>&1
}

# runtime_ready: the CRI answers and reports RuntimeReady and NetworkReady.
runtime_ready() {
	local info
	[[ -S $RT_SOCK ]] || return 1
	info=$(timeout 15 "$CRICTL" --config /dev/null --runtime-endpoint "$RT_ENDPOINT" --image-endpoint "$RT_ENDPOINT" --timeout 3s \
		info -o go-template --template '{{range .status.conditions}}{{.type}}={{.status}} {{end}}' 2>/dev/null) || return 1
	[[ " $info " == *" RuntimeReady=true "* && " $info " == *" NetworkReady=true "* ]]
}

daemon_pid() {
	local pid
	[[ -f $W/daemon.pid ]] || return 1
	pid=$(cat "$W/daemon.pid")
	[[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
	echo "$pid"
}

# ---------------------------------------------------------------- CNI

write_cni_config() {
	mkdir -p "$W/cni/net.d" "$W/cni/ipam"
	cat >"$W/cni/net.d/10-$RT_BRIDGE.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$RT_BRIDGE",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$RT_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$W/cni/ipam",
        "ranges": [[{"subnet": "$RT_SUBNET"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

# ---------------------------------------------------------------- up

rt_up() {
	need_root
	check_workdir
	local t0 pid deadline ref
	t0=$(now_ms)
	ensure_crictl
	if daemon_pid >/dev/null && socket_answers; then
		log "already up (pid $(daemon_pid)); run '$0 down' first to restart it"
		echo "$RT_ENDPOINT"
		return 0
	fi
	if [[ -e $W ]]; then
		log "stale work dir $W from an earlier run: cleaning it up first"
		rt_down
	fi
	# shellcheck disable=SC2046 # one package per word
	ensure_packages $(rt_packages)
	rt_prepare

	mkdir -p "$W"
	echo "$RT_NAME" >"$W/$RT_MARKER"
	record_host_state
	write_cni_config
	rt_write_config

	log "building test images (go run ./hack/images)"
	(cd "$GAUNTLET_ROOT" && go run ./hack/images --out "$W/images") >"$W/images.log" 2>&1 || {
		tail -n 5 "$W/images.log" >&2
		die "building the test images failed (above; full log $W/images.log): needs busybox-static and the Go modules of the main module"
	}

	rt_start
	pid=$DAEMON_PID
	echo "$pid" >"$W/daemon.pid"
	log "started daemon pid $pid (log $W/daemon.log); waiting up to ${RT_TIMEOUT}s for $RT_SOCK to be ready"
	deadline=$((SECONDS + RT_TIMEOUT))
	until runtime_ready; do
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 25 "$W/daemon.log" >&2 || true
			die "the daemon exited during startup (last log lines above, full log $W/daemon.log); fix the cause, then run '$0 down'"
		fi
		if ((SECONDS >= deadline)); then
			tail -n 25 "$W/daemon.log" >&2 || true
			die "$RT_SOCK not ready (RuntimeReady and NetworkReady) after ${RT_TIMEOUT}s (last log lines above); raise GAUNTLET_RUNTIME_TIMEOUT or run '$0 down'"
		fi
		sleep 0.2
	done
	log "daemon ready $(($(now_ms) - t0)) ms after up started; importing images"
	rt_import "$W/images"
	for ref in localhost/gauntlet/pause:1.0 localhost/gauntlet/busybox:1.35; do
		crictl_rt inspecti "$ref" >/dev/null 2>&1 ||
			die "image $ref is not visible through the CRI after the import: see $W/daemon.log"
	done
	cp "$W/images/images.yaml" "$W/images.yaml"
	printf '%s\n' "$RT_ENDPOINT" >"$W/endpoint"
	cat >"$W/crictl.yaml" <<EOF
runtime-endpoint: $RT_ENDPOINT
image-endpoint: $RT_ENDPOINT
timeout: 30
EOF
	log "up in $(($(now_ms) - t0)) ms; files: $W/endpoint $W/images.yaml $W/crictl.yaml"
	echo "$RT_ENDPOINT"
}

# record_host_state notes how the host was before the first runtime came
# up, in $HOST_STATE, shared by all runtimes: the last `down` (no other
# runtime daemon alive) puts it back and removes $HOST_STATE.
record_host_state() {
	mkdir -p "$HOST_STATE"
	[[ -e $HOST_STATE/ip_forward ]] || cat /proc/sys/net/ipv4/ip_forward >"$HOST_STATE/ip_forward"
	[[ -e $HOST_STATE/run-containerd ]] || { [[ -d /run/containerd ]] && echo existed || echo created; } >"$HOST_STATE/run-containerd"
	[[ -e $HOST_STATE/var-lib-cni ]] || { [[ -d $CNI_VAR ]] && echo existed || echo created; } >"$HOST_STATE/var-lib-cni"
}

# restore_host_state: see record_host_state. Bridge plugins set ip_forward=1.
restore_host_state() {
	[[ -d $HOST_STATE ]] || return 0
	other_runtimes_up && return 0
	if [[ -s $HOST_STATE/ip_forward ]]; then
		cat "$HOST_STATE/ip_forward" >/proc/sys/net/ipv4/ip_forward 2>/dev/null || log "could not restore net.ipv4.ip_forward"
	fi
	if [[ $(cat "$HOST_STATE/run-containerd" 2>/dev/null) == created ]]; then
		rmdir /run/containerd/s /run/containerd 2>/dev/null || true
	fi
	if [[ $(cat "$HOST_STATE/var-lib-cni" 2>/dev/null) == created ]]; then
		find "$CNI_VAR" -depth -type d -empty -delete 2>/dev/null || true
	fi
	rm -rf "$HOST_STATE"
}

# ---------------------------------------------------------------- down

# other_runtimes_up: a containerd or crio daemon other than this work dir's
# is alive (another hack/runtimes runtime, or a system one): shared host
# state (portmap chains, ip_forward, /run/containerd, cgroup parents) stays.
other_runtimes_up() {
	local d comm cmd stat
	for d in /proc/[0-9]*; do
		comm=$(cat "$d/comm" 2>/dev/null) || continue
		[[ $comm == containerd || $comm == crio ]] || continue
		stat=$(cat "$d/stat" 2>/dev/null) || continue
		stat=${stat##*) }
		[[ ${stat:0:1} == Z ]] && continue
		cmd=$(tr '\0' ' ' 2>/dev/null <"$d/cmdline") || continue
		[[ $cmd == *"$W/"* ]] || return 0
	done
	return 1
}

# remove_cgroup_parents NAME: remove the cgroup NAME (and empty children) in
# every hierarchy, once no other runtime is up. The runtimes create pod
# cgroups below a parent (containerd: k8s.io, CRI-O with cgroupfs: crio)
# when the pod config names none, and leave the parent behind.
remove_cgroup_parents() {
	local d
	other_runtimes_up && return 0
	for d in "/sys/fs/cgroup/$1" /sys/fs/cgroup/*/"$1"; do
		[[ -d $d ]] || continue
		find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || log "cgroup $d not empty: a container of this runtime survived (see leftovers.sh)"
	done
	return 0
}

# ancestors prints the PIDs of this shell and of its parents.
ancestors() {
	local pid=$BASHPID stat
	while [[ $pid =~ ^[0-9]+$ ]] && ((pid > 1)); do
		echo "$pid"
		stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 0
		stat=${stat##*) }
		pid=$(cut -d' ' -f2 <<<"$stat")
	done
}

# pids_matching STRING: PIDs, other than ours and our parents', whose
# command line contains STRING.
pids_matching() {
	local d pid cmd skip
	skip=" $(ancestors | tr '\n' ' ') $$ "
	for d in /proc/[0-9]*; do
		pid=${d#/proc/}
		[[ $skip == *" $pid "* ]] && continue
		cmd=$(tr '\0' ' ' 2>/dev/null <"$d/cmdline") || continue
		[[ $cmd == *"$1"* ]] && echo "$pid"
	done
	return 0
}

# stop_pids TIMEOUT PID...: TERM, wait up to TIMEOUT seconds, then KILL.
stop_pids() {
	local timeout=$1 pid deadline left
	shift
	(($#)) || return 0
	kill -TERM "$@" 2>/dev/null || true
	deadline=$((SECONDS + timeout))
	while :; do
		left=()
		for pid in "$@"; do
			if kill -0 "$pid" 2>/dev/null && [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]]; then
				left+=("$pid")
			fi
		done
		((${#left[@]})) || return 0
		if ((SECONDS >= deadline)); then
			log "still running after ${timeout}s, sending KILL: ${left[*]}"
			kill -KILL "${left[@]}" 2>/dev/null || true
			sleep 0.5
			return 0
		fi
		sleep 0.2
	done
}

# kill_containers force-deletes every container that runc knows under $W:
# their processes outlive a killed shim or conmon. runc kills them through
# their cgroup and removes the cgroup.
kill_containers() {
	local state root id
	[[ -d $W ]] || return 0
	while IFS= read -r state; do
		root=$(dirname "$(dirname "$state")")
		id=$(basename "$(dirname "$state")")
		timeout 30 runc --root "$root" delete --force "$id" >/dev/null 2>&1 ||
			log "runc --root $root delete --force $id failed (continuing)"
	done < <(find "$W" -name state.json -path '*/runc/*' 2>/dev/null)
}

mounts_under_w() {
	awk -v w="$W" '$5 == w || index($5, w "/") == 1 { print $5 }' /proc/self/mountinfo
}

# unmount_all unmounts every mount at or below $W, deepest first, lazily
# when a plain umount fails (busy overlay or netns bind mount).
unmount_all() {
	local i mp mps
	for i in 1 2 3 4 5; do
		mps=$(mounts_under_w | awk '{ print length($0) " " $0 }' | sort -rn | cut -d' ' -f2-)
		[[ -n $mps ]] || return 0
		((i == 1)) || log "unmount pass $i: $(wc -l <<<"$mps") mounts left"
		while IFS= read -r mp; do
			mp=$(printf '%b' "${mp//\\/\\0}") # mountinfo escapes space etc. as \040
			umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || true
		done <<<"$mps"
	done
	mps=$(mounts_under_w)
	[[ -z $mps ]] || die "could not unmount: $(tr '\n' ' ' <<<"$mps")- see who holds them (fuser -vm PATH), then run '$0 down' again"
}

# cleanup_network removes the bridge, CNI state and the iptables rules and
# chains that the CNI plugins made for this runtime's network.
cleanup_network() {
	local ipt
	if ip link show "$RT_BRIDGE" >/dev/null 2>&1; then
		ip link del "$RT_BRIDGE" || log "ip link del $RT_BRIDGE failed"
	fi
	rm -rf "${CNI_VAR:?}/networks/$RT_BRIDGE"
	rm -f "$CNI_VAR/results/$RT_BRIDGE-"* "$CNI_VAR/cache/results/$RT_BRIDGE-"*
	for ipt in iptables iptables-legacy ip6tables ip6tables-legacy; do
		command -v "$ipt" >/dev/null 2>&1 || continue
		cleanup_chains "$ipt"
	done
}

# delete_rules IPTABLES TABLE: delete each iptables-save rule line (-A ...)
# read from stdin.
delete_rules() {
	local ipt=$1 table=$2 rule
	while IFS= read -r rule; do
		[[ $rule == "-A "* ]] || continue
		eval "set -- -D ${rule#-A }" # iptables-save quotes comments for a shell
		"$ipt" -w 5 -t "$table" "$@" 2>/dev/null || true
	done
}

# cleanup_chains IPTABLES: remove the rules whose comment names this network
# (bridge and portmap write `name: "NET" id: "..."`), the per-pod CNI-*
# chains that nothing jumps to any more, and, when no other runtime is up
# and no pod of any network uses portmap, its shared CNI-HOSTPORT-* chains.
cleanup_chains() {
	local ipt=$1 table chain rules names
	for table in nat filter mangle; do
		# `-t TABLE` would instantiate an absent legacy table: only read
		# the legacy tables that exist.
		case $ipt in
		iptables-legacy) names=/proc/net/ip_tables_names ;;
		ip6tables-legacy) names=/proc/net/ip6_tables_names ;;
		*) names= ;;
		esac
		if [[ -n $names ]] && ! grep -qx "$table" "$names" 2>/dev/null; then continue; fi
		rules=$("$ipt-save" -t "$table" 2>/dev/null) || continue
		grep -q -- "CNI-" <<<"$rules" || continue
		{ grep -E '^-A .*name: \\?"'"$RT_BRIDGE"'\\?"' <<<"$rules" || true; } | delete_rules "$ipt" "$table"
		rules=$("$ipt-save" -t "$table" 2>/dev/null)
		while IFS= read -r chain; do
			case $chain in "" | CNI-HOSTPORT-* | CNI-FORWARD | CNI-ADMIN) continue ;; esac
			if ! grep -qE -- "-j $chain( |\$)" <<<"$rules"; then
				"$ipt" -w 5 -t "$table" -F "$chain" 2>/dev/null || true
				"$ipt" -w 5 -t "$table" -X "$chain" 2>/dev/null || true
			fi
		done < <(sed -n 's/^:\(CNI-[^ ]*\) .*/\1/p' <<<"$rules")
		other_runtimes_up && continue
		rules=$("$ipt-save" -t "$table" 2>/dev/null)
		if grep -q '^:CNI-HOSTPORT-' <<<"$rules" && ! grep -q -- '-j CNI-DN-' <<<"$rules"; then
			{ grep -E '^-A [A-Z]+ .*-j CNI-HOSTPORT-' <<<"$rules" || true; } | delete_rules "$ipt" "$table"
			local hostport_chains
			mapfile -t hostport_chains < <(sed -n 's/^:\(CNI-HOSTPORT-[^ ]*\) .*/\1/p' <<<"$rules")
			for chain in "${hostport_chains[@]}"; do
				"$ipt" -w 5 -t "$table" -F "$chain" 2>/dev/null || true
			done
			for chain in "${hostport_chains[@]}"; do
				"$ipt" -w 5 -t "$table" -X "$chain" 2>/dev/null || true
			done
		fi
	done
}

# cleanup_run_containerd removes the shim sockets under /run/containerd/s
# that nothing listens on any more (containerd puts them there whatever its
# state dir). restore_host_state removes /run/containerd if up created it.
cleanup_run_containerd() {
	local s listening
	if [[ -d /run/containerd/s ]]; then
		listening=$(awk 'NR > 1 && $8 != "" { print $8 }' /proc/net/unix | sort -u)
		for s in /run/containerd/s/*; do
			[[ -S $s ]] || continue
			grep -qxF "$s" <<<"$listening" || rm -f "$s"
		done
	fi
}

rt_down() {
	need_root
	check_workdir
	local pid t0 pids
	t0=$(now_ms)
	if pid=$(daemon_pid); then
		ensure_crictl soft
		if socket_answers; then
			log "removing all pods and containers through the CRI"
			crictl_rt rm --all --force >/dev/null 2>&1 || log "crictl rm --all --force failed (continuing)"
			crictl_rt rmp --all --force >/dev/null 2>&1 || log "crictl rmp --all --force failed (continuing)"
		fi
		log "stopping daemon pid $pid"
		stop_pids 20 "$pid"
	fi
	# Whatever survived: shims, conmon, pinns, runc started for this work
	# dir, then the containers themselves.
	mapfile -t pids < <(pids_matching "$W/")
	if ((${#pids[@]})); then
		log "stopping leftover processes of $W: ${pids[*]}"
		stop_pids 10 "${pids[@]}"
	fi
	kill_containers
	unmount_all
	cleanup_network
	if declare -F rt_host_cleanup >/dev/null; then rt_host_cleanup; fi
	restore_host_state
	if [[ -e $W ]]; then
		rm -rf --one-file-system "$W" || die "could not remove $W (messages above): check for mounts under it (grep $W /proc/self/mountinfo)"
	fi
	log "down in $(($(now_ms) - t0)) ms"
}

rt_main() {
	case ${1:-} in
	up) rt_up ;;
	down) rt_down ;;
	*)
		echo "usage: $0 up|down   (work dir: \$GAUNTLET_RUNTIME_DIR, default $RT_BASE/$RT_NAME)" >&2
		exit 2
		;;
	esac
}
