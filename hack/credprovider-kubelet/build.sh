#!/usr/bin/env bash
# hack/credprovider-kubelet/build.sh: build the kubelet credential provider
# consumer wrapper (main.go, this tools module, k8s.io/kubernetes v1.37.2)
# into a cache dir and print the binary's path. Niced; ~3 min cold, ~1 s
# warm (the stamp next to the binary covers go.mod, go.sum, main.go, the Go
# version and the build flags). Cache dir: $GAUNTLET_CREDPROVIDER_CACHE,
# default /var/tmp/gauntlet-credprovider/bin.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${GAUNTLET_CREDPROVIDER_CACHE:-/var/tmp/gauntlet-credprovider/bin}
bin=$cache/credprovider-kubelet
command -v go >/dev/null || { echo "hack/credprovider-kubelet/build.sh: go not found in PATH: install Go 1.26" >&2; exit 1; }
mkdir -p "$cache"
export GOFLAGS="-mod=readonly -buildvcs=false" GOWORK=off
ldflags="-X k8s.io/component-base/version.gitVersion=v1.37.2 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37"
stamp=$(cd "$here" && { cat go.mod go.sum main.go; go version; go env GOOS GOARCH; echo "$ldflags"; } | sha256sum | cut -d' ' -f1)
exec 9>"$cache/.credprovider-kubelet.lock"
flock 9
if [[ -x $bin && -f $bin.stamp && $(cat "$bin.stamp") == "$stamp" ]]; then
	echo "$bin"
	exit 0
fi
start=$SECONDS
(cd "$here" && nice -n 10 go build -trimpath -ldflags "$ldflags" -o "$bin.tmp" .)
mv "$bin.tmp" "$bin"
echo "$stamp" >"$bin.stamp"
echo "hack/credprovider-kubelet/build.sh: built $bin in $((SECONDS - start)) s" >&2
echo "$bin"
