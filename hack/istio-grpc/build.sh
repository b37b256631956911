#!/usr/bin/env bash
# hack/istio-grpc/build.sh: build istio-grpc-mesh (this tools module:
# istio.io/istio's authz translation + go-control-plane + grpc-go's xDS
# server, never a dependency of gauntlet's main module) into a cache dir and
# print the binary's path.
#
# Cache dir: $GAUNTLET_ISTIO_CACHE, default /var/tmp/gauntlet-istio/bin. The
# binary is reused while the stamp next to it matches: this module's go.mod,
# go.sum and .go files, the main module's go.mod/go.sum and the .go files of
# its packages the binary links (internal/meshpolicy, meshexec,
# meshtranslate, ...), the Go version, GOOS/GOARCH and the build flags.
# Builds run niced, one at a time per cache dir (flock). Cold: ~12 min and
# ~2 GB RAM on 2 cores (Istio's dependency tree); warm: seconds.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${GAUNTLET_ISTIO_CACHE:-/var/tmp/gauntlet-istio/bin}
cache=${cache%/}
build_timeout=${GAUNTLET_ISTIO_BUILD_TIMEOUT:-3600}
bin=$cache/istio-grpc-mesh
die() {
	printf 'hack/istio-grpc/build.sh: error: %s\n' "$1" >&2
	exit "${2:-1}"
}
command -v go >/dev/null || die "go not found in PATH: install Go 1.26"
command -v flock >/dev/null || die "flock not found in PATH: install util-linux"
mkdir -p "$cache" || die "cannot create cache dir $cache: set GAUNTLET_ISTIO_CACHE to a writable directory"
# This module's own settings, whatever the caller's (a -modfile meant for
# the main module, a go.work) would say.
export GOFLAGS="-mod=readonly -buildvcs=false" GOWORK=off
# No -trimpath: it keys the build cache apart from `go build`/`go test` in
# this module, which would make the first build.sh after them cold again.
buildflags=(-ldflags "-s -w")
# The main module's packages linked in (through the replace directive).
ours=$(cd "$here" && go list -deps -f '{{with .Module}}{{if eq .Path "github.com/gauntlet-conformance/gauntlet"}}{{$.Dir}}{{end}}{{end}}' ./cmd/istio-grpc-mesh) ||
	die "go list failed in hack/istio-grpc (see above): fix the module or the Go module proxy access"
stamp=$({
	cd "$here"
	cat go.mod go.sum "$root/go.mod" "$root/go.sum"
	find . -name '*.go' -print0 | sort -z | xargs -0 sha256sum
	for d in $ours; do find "$d" -maxdepth 1 -name '*.go' ! -name '*_test.go' -print0 | sort -z | xargs -0 -r sha256sum; done
	go env GOVERSION GOOS GOARCH CGO_ENABLED
	echo "${buildflags[*]}"
} | sha256sum | cut -c1-16)
fresh() { [[ -x $bin && $(cat "$bin.stamp" 2>/dev/null) == "$stamp" ]]; }
if ! fresh; then
	exec 9>"$cache/.lock"
	flock -w "$build_timeout" 9 || die "another build holds $cache/.lock for more than ${build_timeout}s"
	if ! fresh; then
		t0=$SECONDS
		echo "hack/istio-grpc/build.sh: building istio-grpc-mesh into $cache, niced (cold: ~12 min, ~2 GB RAM)" >&2
		(cd "$here" && timeout "$build_timeout" nice -n 10 go build "${buildflags[@]}" -o "$bin.tmp" ./cmd/istio-grpc-mesh) >&2 ||
			die "building istio-grpc-mesh failed (command: cd hack/istio-grpc && GOFLAGS='$GOFLAGS' go build ${buildflags[*]} ./cmd/istio-grpc-mesh)"
		mv -f "$bin.tmp" "$bin"
		echo "$stamp" >"$bin.stamp"
		echo "hack/istio-grpc/build.sh: built $bin in $((SECONDS - t0)) s" >&2
	fi
fi
echo "$bin"
