#!/usr/bin/env bash
# hack/runtimes/smoke.sh NAME: end-to-end check of one real runtime with crictl:
#   NAME up -> crictl runp (pause image) -> create+start busybox running
#   `nc -ll -p 7777 -e cat` -> crictl exec `echo hi` -> crictl port-forward to
#   7777, bytes through and back -> stop/rm -> NAME down -> leftovers.sh.
# Prints one "timing:" line per step. Exits non-zero at the first failure,
# after running NAME down (set SMOKE_KEEP=1 to leave the runtime up instead).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
name=${1:-}
case $name in
containerd16 | containerd2 | crio) ;;
*)
	echo "usage: $0 containerd16|containerd2|crio" >&2
	exit 2
	;;
esac

die() {
	printf 'smoke %s: error: %s\n' "$name" "$*" >&2
	exit 1
}
now_ms() { date +%s%3N; }
timing() { printf 'timing: %s %s %d ms\n' "$name" "$1" "$(($(now_ms) - $2))"; }

tmp=$(mktemp -d /tmp/gauntlet-smoke.XXXXXX)
pf_pid=
finish() {
	local rc=$?
	[[ -z $pf_pid ]] || kill -KILL "$pf_pid" 2>/dev/null || true
	if ((rc != 0)); then
		echo "smoke $name: FAILED (exit $rc)" >&2
		[[ -n ${SMOKE_KEEP:-} ]] || "$here/$name" down >&2 || true
	fi
	rm -rf "$tmp"
}
trap finish EXIT

t=$(now_ms)
endpoint=$("$here/$name" up | tail -n 1)
timing up "$t"
[[ $endpoint == unix://* ]] || die "up printed '$endpoint' as its last line, not a unix:// endpoint"
echo "endpoint: $endpoint"

crictl=$("$here/../tools/build.sh" crictl)
cri() { timeout 60 "$crictl" --config /dev/null --runtime-endpoint "$endpoint" --image-endpoint "$endpoint" --timeout 30s "$@"; }

mkdir -p "$tmp/logs"
cat >"$tmp/pod.json" <<EOF
{
  "metadata": {"name": "gauntlet-smoke", "namespace": "default", "uid": "gauntlet-smoke-$$", "attempt": 0},
  "log_directory": "$tmp/logs",
  "linux": {}
}
EOF
cat >"$tmp/ctr.json" <<EOF
{
  "metadata": {"name": "echo"},
  "image": {"image": "localhost/gauntlet/busybox:1.35"},
  "command": ["sh", "-c", "nc -ll -p 7777 -e cat & exec sleep 3600"],
  "log_path": "echo.log",
  "linux": {}
}
EOF

t=$(now_ms)
pod=$(cri runp "$tmp/pod.json") || die "crictl runp failed"
timing runp "$t"
t=$(now_ms)
ctr=$(cri create "$pod" "$tmp/ctr.json" "$tmp/pod.json") || die "crictl create failed"
cri start "$ctr" >/dev/null || die "crictl start failed"
timing create+start "$t"

t=$(now_ms)
out=$(cri exec "$ctr" echo hi) || die "crictl exec failed"
[[ $out == hi ]] || die "crictl exec echo hi printed '$out'"
timing exec "$t"
echo "exec: $out"

# The nc server starts in the background of the container's shell: wait for it.
deadline=$((SECONDS + 20))
until cri exec "$ctr" sh -c 'netstat -ltn | grep -q ":7777 "' >/dev/null 2>&1; do
	((SECONDS < deadline)) || die "nothing listens on 7777 in the container after 20s"
	sleep 0.2
done

t=$(now_ms)
"$crictl" --config /dev/null --runtime-endpoint "$endpoint" --image-endpoint "$endpoint" port-forward "$pod" :7777 >"$tmp/pf.log" 2>&1 &
pf_pid=$!
disown "$pf_pid" # no "Killed" job notice when it is killed below
port=
deadline=$((SECONDS + 20))
while [[ -z $port ]]; do
	port=$(sed -n 's/^Forwarding from 127\.0\.0\.1:\([0-9]*\) -> 7777$/\1/p' "$tmp/pf.log" | head -n 1)
	[[ -n $port ]] && break
	kill -0 "$pf_pid" 2>/dev/null || die "crictl port-forward exited: $(cat "$tmp/pf.log")"
	((SECONDS < deadline)) || die "crictl port-forward did not listen after 20s: $(cat "$tmp/pf.log")"
	sleep 0.1
done
msg="gauntlet-smoke-$$"
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf '%s\n' "$msg" >&3
reply=
read -r -t 10 reply <&3 || true
exec 3>&-
[[ $reply == "$msg" ]] || die "port-forward: sent '$msg', got back '$reply' (crictl log: $(cat "$tmp/pf.log"))"
timing port-forward "$t"
echo "port-forward: sent and got back '$reply' through 127.0.0.1:$port"
kill -KILL "$pf_pid" 2>/dev/null || true
pf_pid=

t=$(now_ms)
cri stop "$ctr" >/dev/null || die "crictl stop failed"
cri rm "$ctr" >/dev/null || die "crictl rm failed"
cri stopp "$pod" >/dev/null || die "crictl stopp failed"
cri rmp "$pod" >/dev/null || die "crictl rmp failed"
timing stop+rm "$t"

t=$(now_ms)
"$here/$name" down
timing down "$t"
"$here/leftovers.sh" || die "leftovers after down (listed above)"
echo "smoke $name: OK"
