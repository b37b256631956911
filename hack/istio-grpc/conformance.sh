#!/usr/bin/env bash
# hack/istio-grpc/conformance.sh: the meshauthz suite against a real
# enforcement engine — Istio's authorization translation (istio.io/istio's
# pilot authz model, its policy selection and the calls of its proxyless
# gRPC generator) served over xDS to grpc-go xDS servers that enforce the
# RBAC filters — through the out-of-process driver istio-grpc-mesh
# (hack/istio-grpc, built and cached by build.sh). gRPC only: the MA checks
# over gRPC, MX25 (PermissionDenied), MX27 (DENY), MX28 (cluster scope via
# Istio's root namespace), MA09 (SPIFFE). Expectations:
# expectations/meshauthz-istio-grpc.yaml (GAUNTLET_EXPECTATIONS=none shows
# every real failure; docs/findings.md writes them up). JUnit and the
# certification report in $REPORTS/meshauthz-istio-grpc/. Then checks that
# no driver process and no SVID directory is left behind.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
reports=${REPORTS:-reports}/meshauthz-istio-grpc
gauntlet=${GAUNTLET:-bin/gauntlet}
exp=${GAUNTLET_EXPECTATIONS:-expectations/meshauthz-istio-grpc.yaml}
features=AuthorizationPolicySPIFFE,AuthorizationPolicyGRPC,AuthorizationPolicyDeny,AuthorizationPolicyClusterScope
t0=$SECONDS
[[ -x $gauntlet ]] || { echo "conformance.sh: $gauntlet not built: run make build" >&2; exit 2; }
bin=$(hack/istio-grpc/build.sh)
echo "meshauthz-istio-grpc: driver $bin ready ($((SECONDS - t0)) s)"
istio=$(awk '$1 == "istio.io/istio" { print $2; exit }' hack/istio-grpc/go.mod)
grpcv=$(awk '$1 == "google.golang.org/grpc" { print $2; exit }' hack/istio-grpc/go.mod)
# The driver writes its SVIDs under $TMPDIR: a private one shows leftovers.
work=$(mktemp -d /tmp/gauntlet-istio-grpc.XXXXXX)
trap 'rm -rf "$work"' EXIT
expflags=(--expectations "$exp")
[[ $exp == none ]] && expflags=()
rc=0
TMPDIR=$work "$gauntlet" run meshauthz --mesh-driver "$bin" --features "$features" \
	--implementation-organization gauntlet-conformance \
	--implementation-project "Istio proxyless gRPC authorization (pilot authz + grpc-go xDS RBAC, hack/istio-grpc)" \
	--implementation-url https://github.com/istio/istio \
	--implementation-version "istio.io/istio $istio, grpc-go $grpcv" \
	--implementation-contact https://github.com/gauntlet-conformance/gauntlet/issues \
	"${expflags[@]}" --report-dir "$reports" || rc=$?
echo "meshauthz-istio-grpc: suite exit $rc ($((SECONDS - t0)) s)"
left=$(pgrep -a -f "^$bin( |\$)" || true)
if [[ -n $left ]]; then
	echo "meshauthz-istio-grpc: driver processes left behind:" >&2
	echo "$left" >&2
	rc=1
fi
if [[ -n $(ls -A "$work") ]]; then
	echo "meshauthz-istio-grpc: files left in $work:" >&2
	ls -A "$work" >&2
	rc=1
fi
exit "$rc"
