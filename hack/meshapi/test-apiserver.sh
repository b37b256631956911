#!/usr/bin/env bash
# hack/meshapi/test-apiserver.sh: internal/meshtranslate's translations
# judged by real API machinery.
#   1. Istio: every Istio spec of the golden files unmarshals with protojson
#      into istio.io/api security/v1beta1 AuthorizationPolicy (this tools
#      module; the main module does not depend on istio.io/api).
#   2. A real kube-apiserver (hack/k8s/with-apiserver.sh) with gauntlet's
#      GEP-3779 CRDs (core-only, then extended) and Istio's real
#      AuthorizationPolicy CRD, read from istio.io/api in the Go module cache
#      (pinned in hack/meshapi/go.mod; never committed): TestRealAPIServer.
# Linkerd's CRDs have no offline source (see README.md): golden files only.
# Exit: non-zero when any step fails.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
GO=${GO:-go}
export GOWORK=off
t0=$SECONDS

"$root/hack/k8s/build.sh" kube-apiserver kubectl certs freeport >/dev/null

(cd "$here" && GOFLAGS=-mod=readonly timeout 900 nice -n 10 "$GO" test ./... -count=1)
echo "test-apiserver: Istio protojson round trip ok after $((SECONDS - t0)) s" >&2

dir=$(cd "$here" && GOFLAGS=-mod=readonly timeout 300 "$GO" mod download istio.io/api &&
	GOFLAGS=-mod=readonly "$GO" list -m -f '{{.Dir}}' istio.io/api)
crds=$dir/kubernetes/customresourcedefinitions.gen.yaml
if [[ ! -r $crds ]]; then
	echo "test-apiserver: $crds is not readable: is istio.io/api in hack/meshapi/go.mod downloadable?" >&2
	exit 1
fi
export GAUNTLET_ISTIO_CRDS=$crds

cd "$root"
"$root/hack/k8s/with-apiserver.sh" -- timeout 900 nice -n 10 "$GO" test ./internal/meshtranslate -run TestRealAPIServer -count=1 -v
echo "test-apiserver: ok in $((SECONDS - t0)) s" >&2
