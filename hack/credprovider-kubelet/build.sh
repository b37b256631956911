#!/usr/bin/env bash
# hack/credprovider-kubelet/build.sh [credprovider-kubelet|gcp-credential-provider]:
# build one binary of this tools module (k8s.io/kubernetes v1.37.2) into a
# cache dir and print its path:
#   credprovider-kubelet (default): the kubelet credential provider consumer
#     wrapper (main.go);
#   gcp-credential-provider: the kubelet's e2e test plugin
#     (test/e2e_node/plugins/gcp-credential-provider), a real plugin for the
#     P checks (conformance-gcp.sh).
# Niced; ~3 min cold, ~1 s warm (the stamp next to the binary covers go.mod,
# go.sum, the wrapper's sources, the Go version and the build flags). Cache
# dir: $GAUNTLET_CREDPROVIDER_CACHE, default /var/tmp/gauntlet-credprovider/bin.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${GAUNTLET_CREDPROVIDER_CACHE:-/var/tmp/gauntlet-credprovider/bin}
what=${1:-credprovider-kubelet}
case $what in
credprovider-kubelet) pkg=. ;;
gcp-credential-provider) pkg=k8s.io/kubernetes/test/e2e_node/plugins/gcp-credential-provider ;;
*) echo "hack/credprovider-kubelet/build.sh: unknown binary '$what': name credprovider-kubelet or gcp-credential-provider" >&2; exit 2 ;;
esac
bin=$cache/$what
command -v go >/dev/null || { echo "hack/credprovider-kubelet/build.sh: go not found in PATH: install Go 1.26" >&2; exit 1; }
mkdir -p "$cache"
export GOFLAGS="-mod=readonly -buildvcs=false" GOWORK=off
ldflags="-X k8s.io/component-base/version.gitVersion=v1.37.2 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37"
# The wrapper's own sources: main.go and the main module's packages it
# imports through the replace directive (the consumer wire types).
srcs=("$here/main.go")
[[ $what == credprovider-kubelet ]] && srcs+=("$here/../../internal/credwire/go.mod" "$here"/../../internal/credwire/*.go)
stamp=$(cd "$here" && { echo "$what"; cat go.mod go.sum "${srcs[@]}"; go version; go env GOOS GOARCH; echo "$ldflags"; } | sha256sum | cut -d' ' -f1)
exec 9>"$cache/.$what.lock"
flock 9
if [[ -x $bin && -f $bin.stamp && $(cat "$bin.stamp") == "$stamp" ]]; then
	echo "$bin"
	exit 0
fi
start=$SECONDS
(cd "$here" && nice -n 10 go build -trimpath -ldflags "$ldflags" -o "$bin.tmp" "$pkg")
mv "$bin.tmp" "$bin"
echo "$stamp" >"$bin.stamp"
echo "hack/credprovider-kubelet/build.sh: built $bin in $((SECONDS - start)) s" >&2
echo "$bin"
