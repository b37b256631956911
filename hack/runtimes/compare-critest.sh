#!/usr/bin/env bash
# hack/runtimes/compare-critest.sh NAME: on one fresh runtime, time critest's
# streaming specs and gauntlet's streaming suite (non-Slow, then everything
# but the hostile checks, which conformance.sh runs on fresh daemons), in one
# sitting. Prints the wall times; leaves nothing behind (down + leftovers).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
name=${1:?usage: $0 containerd16|containerd2|crio}
W=${GAUNTLET_RUNTIME_DIR:-/var/tmp/gauntlet-runtimes/$name}
bin=${GAUNTLET_BIN:-$root/bin/gauntlet}
[[ -x $bin ]] || { echo "$bin missing: make build" >&2; exit 2; }
trap '"$here/$name" down >&2; "$here/leftovers.sh" >&2' EXIT
endpoint=$("$here/$name" up | tail -n 1)
critest=$(GAUNTLET_CACHE_DIR=${GAUNTLET_CACHE_DIR:-/var/tmp/gauntlet-runtimes/.cache} "$root/hack/tools/build.sh" critest)
out=$(mktemp -d)
# t LABEL CMD...: run CMD, print LABEL, its wall time, exit code and log.
t() {
	local label=$1 s rc=0 log
	shift
	log=$out/$(tr -c 'a-z0-9\n' - <<<"$label").log
	s=$(date +%s.%N)
	"$@" >"$log" 2>&1 || rc=$?
	printf '%-26s %.1f s (exit %d, log %s)\n' "$label:" "$(echo "$(date +%s.%N) - $s" | bc)" "$rc" "$log"
}
t "critest streaming specs" "$critest" --runtime-endpoint "$endpoint" --test-images-file "$W/images.yaml" --ginkgo.focus '\[k8s.io\] Streaming'

# Timing only: the verdicts are conformance.sh's business.
flags=(--runtime-endpoint "$endpoint" --test-images-file "$W/images.yaml" --capabilities host-network,no-authorize-stream
	--expectations none --report-dir "$out")
t "gauntlet non-Slow" "$bin" run streaming "${flags[@]}" --label-filter '!Slow && !hostile'
t "gauntlet all but hostile" "$bin" run streaming "${flags[@]}" --label-filter '!hostile'
t "gauntlet serial (--parallel 1)" "$bin" run streaming "${flags[@]}" --label-filter '!hostile' --parallel 1
