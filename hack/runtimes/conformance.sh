#!/usr/bin/env bash
# hack/runtimes/conformance.sh NAME [gauntlet run flags...]: the streaming
# suite against one real runtime, the way a runtime's CI would run it:
#
#   NAME up -> gauntlet run streaming (expectations/<runtime>-<version>.yaml,
#   JUnit in $REPORTS/NAME) -> NAME down -> leftovers.sh
#
# NAME is containerd16, containerd2 or crio. The expectations file is chosen
# from the version the runtime reports over the CRI; a version without a file
# fails loudly. GAUNTLET_EXPECTATIONS=none runs without expectations, to see
# every real failure (docs/findings.md). The exit code is gauntlet's (0 green,
# 1 failed, 2 usage), or 1 when up, down or the leftovers check fails.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
name=${1:-}
case $name in
containerd16 | containerd2 | crio) shift ;;
*)
	echo "usage: $0 containerd16|containerd2|crio [gauntlet run streaming flags...]" >&2
	exit 2
	;;
esac

die() {
	printf '\nconformance %s: FAILED: %s\n\n' "$name" "$*" >&2
	exit 1
}

bin=${GAUNTLET_BIN:-$root/bin/gauntlet}
[[ -x $bin ]] || die "$bin missing: run 'make build' first"
reports=${REPORTS:-$root/reports}/$name
W=${GAUNTLET_RUNTIME_DIR:-/var/tmp/gauntlet-runtimes/$name}
W=${W%/}

rc=0
finish() {
	local status=$?
	trap - EXIT INT TERM
	((rc != 0)) || rc=$status
	"$here/$name" down >&2 || { echo "conformance $name: '$name down' failed" >&2; rc=1; }
	"$here/leftovers.sh" >&2 || { echo "conformance $name: the machine was not put back (leftovers above)" >&2; rc=1; }
	exit "$rc"
}
trap finish EXIT
trap 'rc=130; exit 130' INT TERM

t0=$(date +%s)
endpoint=$("$here/$name" up | tail -n 1) || die "'hack/runtimes/$name up' failed (messages above): the runtime could not be built or started on this machine"
[[ $endpoint == unix://* ]] || die "'$name up' printed no endpoint (got '$endpoint')"

crictl=$(GAUNTLET_CACHE_DIR=${GAUNTLET_CACHE_DIR:-/var/tmp/gauntlet-runtimes/.cache} "$root/hack/tools/build.sh" crictl)
ver=$("$crictl" --config /dev/null --runtime-endpoint "$endpoint" --timeout 10s version 2>/dev/null) ||
	die "crictl version against $endpoint failed"
rt=$(awk '/^RuntimeName:/ {print $2}' <<<"$ver")
rv=$(awk '/^RuntimeVersion:/ {print $2}' <<<"$ver")
# Debian's "1.6.20~ds1" and the module's "v2.2.9" both name upstream 1.6.20 / 2.2.9.
rv=${rv#v}
rv=${rv%%[~+-]*}
case $rt in
cri-o) rt=crio ;;
esac
echo "conformance $name: $rt $rv at $endpoint" >&2

flags=(--runtime-endpoint "$endpoint" --test-images-file "$W/images.yaml"
	--capabilities host-network,no-authorize-stream --runtime-pid "$(cat "$W/daemon.pid")")
case ${GAUNTLET_EXPECTATIONS:-} in
none) echo "conformance $name: GAUNTLET_EXPECTATIONS=none: every real failure fails the run" >&2 ;;
"")
	exp=$root/expectations/$rt-$rv.yaml
	[[ -f $exp ]] || die "no expectations file for $rt $rv ($exp): run with GAUNTLET_EXPECTATIONS=none to see its failures, then record them there"
	flags+=(--expectations "$exp")
	;;
*) flags+=(--expectations "$GAUNTLET_EXPECTATIONS") ;;
esac

mkdir -p "$reports"
if (($#)); then
	# The caller chose what to run (e.g. --focus): one pass, as asked.
	set +e
	"$bin" run streaming "${flags[@]}" --report-dir "$reports" "$@"
	rc=$?
	set -e
	echo "conformance $name: gauntlet exited $rc after $(($(date +%s) - t0)) s; JUnit in $reports" >&2
	exit "$rc"
fi

# Pass 1: everything but the hostile-peer checks. Pass 2: each hostile check
# against a freshly started daemon, so a runtime one of them crashes (G3 on
# containerd 1.6) does not take the other checks down with it.
mapfile -t hostile < <("$bin" run streaming --list --label-filter hostile | awk '{print $1}')
skip=$(IFS='|'; echo "\\[(${hostile[*]})\\]")
set +e
"$bin" run streaming "${flags[@]}" --report-dir "$reports" ${hostile[*]:+--skip "$skip"}
rc=$?
set -e
for id in "${hostile[@]}"; do
	echo "conformance $name: hostile check $id against a fresh $name" >&2
	"$here/$name" down >&2 || die "'$name down' before $id failed"
	endpoint=$("$here/$name" up | tail -n 1) || die "'$name up' before $id failed"
	flags[7]=$(cat "$W/daemon.pid") # --runtime-pid's value
	set +e
	"$bin" run streaming "${flags[@]}" --report-dir "$reports/hostile-$id" --focus "\\[$id\\]"
	r=$?
	set -e
	((r <= rc)) || rc=$r
done
echo "conformance $name: gauntlet exited $rc after $(($(date +%s) - t0)) s; JUnit in $reports" >&2
