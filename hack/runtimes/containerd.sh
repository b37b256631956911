# shellcheck shell=bash
# containerd.sh: what hack/runtimes/containerd16 and containerd2 share.
# Sourced after lib.sh; the runtime script sets CONTAINERD_BIN (the
# directory holding containerd, containerd-shim-runc-v2 and ctr).

rt_start() {
	# Its own shim first in PATH: containerd starts containerd-shim-runc-v2
	# from PATH. setsid: the daemon outlives this script and its session.
	PATH=$CONTAINERD_BIN:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		setsid "$CONTAINERD_BIN/containerd" --config "$W/config.toml" --log-level info \
		>"$W/daemon.log" 2>&1 </dev/null &
	# shellcheck disable=SC2034 # read by lib.sh
	DAEMON_PID=$!
}

rt_import() {
	local f
	for f in "$1/pause.oci.tar" "$1/busybox.oci.tar"; do
		timeout 120 "$CONTAINERD_BIN/ctr" --address "$RT_SOCK" --namespace k8s.io images import "$f" >>"$W/import.log" 2>&1 ||
			die "ctr images import $f failed: see $W/import.log and $W/daemon.log"
	done
}

rt_host_cleanup() {
	cleanup_run_containerd
	remove_cgroup_parents k8s.io
}
