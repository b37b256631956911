#!/usr/bin/env bash
# hack/tools/build.sh [crictl|critest]...: build CRI tools from this separate
# tools module (sigs.k8s.io/cri-tools, pinned in hack/tools/go.mod; never a
# dependency of the main module) into a cache dir, and print each binary's
# path, one per line. Idempotent: a binary built from the same go.mod/go.sum
# and Go version is reused.
#
# Cache dir: $GAUNTLET_TOOLS_DIR, else $GAUNTLET_CACHE_DIR/tools, else
# /var/tmp/gauntlet-runtimes/.cache/tools.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir=${GAUNTLET_TOOLS_DIR:-${GAUNTLET_CACHE_DIR:-/var/tmp/gauntlet-runtimes/.cache}/tools}
die() {
	printf 'hack/tools/build.sh: error: %s\n' "$*" >&2
	exit 1
}
command -v go >/dev/null || die "go not found in PATH: install Go 1.26"
(($#)) || set -- crictl
mkdir -p "$dir" || die "cannot create cache dir $dir: set GAUNTLET_TOOLS_DIR to a writable directory"

# cri-tools v1.34.0 is not in the checksum database mirror.
export GONOSUMDB=${GONOSUMDB:+$GONOSUMDB,}sigs.k8s.io/cri-tools
# This module's own settings, whatever the caller's (a -modfile meant for the
# main module, a go.work) would say.
export GOFLAGS="-mod=readonly -buildvcs=false" GOWORK=off
stamp=$({ cat "$here/go.mod" "$here/go.sum"; go env GOVERSION GOOS GOARCH; } | sha256sum | cut -c1-16)

for tool in "$@"; do
	out=$dir/$tool
	if [[ -x $out && $(cat "$out.stamp" 2>/dev/null) == "$stamp" ]]; then
		echo "$out"
		continue
	fi
	case $tool in
	crictl) cmd=(go build -trimpath -o "$out.tmp" sigs.k8s.io/cri-tools/cmd/crictl) ;;
	critest) cmd=(go test -c -trimpath -o "$out.tmp" sigs.k8s.io/cri-tools/cmd/critest) ;;
	*) die "unknown tool $tool: want crictl or critest" ;;
	esac
	echo "hack/tools/build.sh: building $tool into $out (${cmd[*]})" >&2
	(cd "$here" && "${cmd[@]}") >&2 || die "building $tool failed (command: cd hack/tools && ${cmd[*]}); check the Go module proxy access"
	mv -f "$out.tmp" "$out"
	echo "$stamp" >"$out.stamp"
	echo "$out"
done
