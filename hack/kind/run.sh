#!/usr/bin/env bash
# hack/kind/run.sh istio|linkerd [gauntlet run flags...]: the meshauthz suite
# against a real mesh in a throw-away kind cluster (needs Docker).
#
#   1. kind create cluster (hack/kind/cluster.yaml; node image: $KIND_NODE_IMAGE
#      or kind's default), kubeconfig in a temp dir (yours is not touched);
#   2. installs the mesh: Istio with istioctl (profile $ISTIO_PROFILE, default
#      "default"), or Linkerd with the linkerd CLI (CRDs, control plane,
#      `linkerd check`);
#   3. builds gauntlet and its echo image (go run ./hack/images --mesh-echo)
#      and loads the image into the nodes (kind load image-archive);
#   4. gauntlet run meshauthz --mesh-kubeconfig ... --mesh-api MESH
#      --features $FEATURES (a per-mesh default below) plus your flags, with
#      the certification report's --implementation-* for the mesh;
#   5. deletes the cluster: always, also on failure and Ctrl-C
#      (KEEP_CLUSTER=1 keeps it and prints how to delete it).
#
# Environment: REPORTS (default reports/kind-MESH), FEATURES, EXPECTATIONS
# (a gauntlet expectations file), KIND_CLUSTER_NAME (default gauntlet-MESH),
# MESH_VERSION (default: what the CLI reports). Exit: gauntlet's status
# (0 green, 1 failures, 2 usage, 3 interrupted), 2 for a missing tool, 1
# when a set-up step fails.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

usage() {
	echo "usage: hack/kind/run.sh istio|linkerd [gauntlet run meshauthz flags...]" >&2
	exit 2
}
log() { printf 'hack/kind: %s\n' "$*" >&2; }
need() {
	command -v "$1" >/dev/null 2>&1 || { log "error: $1 not found in PATH: $2"; exit 2; }
}

(($#)) || usage
mesh=$1
shift
case $mesh in
istio)
	need istioctl "install it from https://istio.io/latest/docs/setup/getting-started/#download"
	default_features=AuthorizationPolicySPIFFE,AuthorizationPolicyHTTP403,AuthorizationPolicyGRPC,AuthorizationPolicyDeny,AuthorizationPolicyClusterScope
	;;
linkerd)
	need linkerd "install it from https://linkerd.io/2/getting-started/"
	default_features=AuthorizationPolicyHTTP403,AuthorizationPolicyGRPC
	;;
-h | --help) usage ;;
*)
	log "error: unknown mesh '$mesh': want istio or linkerd"
	exit 2
	;;
esac
need docker "kind runs its nodes as Docker containers"
need kind "https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
need kubectl "https://kubernetes.io/docs/tasks/tools/"
need go "Go 1.26 builds gauntlet and its echo image"

cluster=${KIND_CLUSTER_NAME:-gauntlet-$mesh}
features=${FEATURES:-$default_features}
reports=${REPORTS:-$root/reports/kind-$mesh}
work=$(mktemp -d "${TMPDIR:-/tmp}/gauntlet-kind.XXXXXX")
kubeconfig=$work/kubeconfig
created=0
rc=0
t0=$SECONDS

# shellcheck disable=SC2317 # run by the EXIT trap
finish() {
	trap - EXIT INT TERM
	if ((created)); then
		if [[ ${KEEP_CLUSTER:-} == 1 ]]; then
			log "keeping cluster $cluster (KUBECONFIG=$kubeconfig); delete it with: kind delete cluster --name $cluster"
		else
			log "deleting cluster $cluster"
			kind delete cluster --name "$cluster" --kubeconfig "$kubeconfig" || rc=1
			rm -rf "$work"
		fi
	else
		rm -rf "$work"
	fi
	log "$mesh: exit $rc after $((SECONDS - t0)) s"
	exit "$rc"
}
trap finish EXIT
trap 'rc=130; exit 130' INT TERM

if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
	log "error: a kind cluster named $cluster exists: delete it (kind delete cluster --name $cluster) or set KIND_CLUSTER_NAME"
	rc=2
	exit 2
fi

step() { log "$* ($((SECONDS - t0)) s)"; }
fail() {
	log "error: $*"
	rc=1
	exit 1
}

step "creating kind cluster $cluster"
node_image=()
[[ -n ${KIND_NODE_IMAGE:-} ]] && node_image=(--image "$KIND_NODE_IMAGE")
created=1
kind create cluster --name "$cluster" --config "$here/cluster.yaml" --kubeconfig "$kubeconfig" \
	"${node_image[@]}" --wait 180s || fail "kind create cluster failed"
export KUBECONFIG=$kubeconfig

case $mesh in
istio)
	step "installing Istio (profile ${ISTIO_PROFILE:-default})"
	timeout 600 istioctl install -y --set profile="${ISTIO_PROFILE:-default}" --set meshConfig.trustDomain=cluster.local ||
		fail "istioctl install failed"
	kubectl -n istio-system rollout status deployment/istiod --timeout=300s || fail "istiod did not become ready"
	version=${MESH_VERSION:-$(istioctl version --remote=false 2>/dev/null | awk 'NF { v = $NF } END { print v }')}
	impl=(--implementation-organization "Istio" --implementation-project "Istio"
		--implementation-url "https://istio.io" --implementation-contact "https://github.com/istio/istio/issues")
	;;
linkerd)
	step "installing Linkerd"
	timeout 300 linkerd check --pre || fail "linkerd check --pre failed"
	linkerd install --crds | kubectl apply -f - || fail "linkerd install --crds failed"
	linkerd install | kubectl apply -f - || fail "linkerd install failed"
	timeout 600 linkerd check --wait 5m || fail "linkerd check failed"
	version=${MESH_VERSION:-$(linkerd version --client --short 2>/dev/null | tail -n 1)}
	impl=(--implementation-organization "Linkerd" --implementation-project "Linkerd"
		--implementation-url "https://linkerd.io" --implementation-contact "https://github.com/linkerd/linkerd2/issues")
	;;
esac
[[ -n $version ]] || fail "cannot tell the $mesh version: set MESH_VERSION"

step "building gauntlet and its echo image"
(cd "$root" && go build -o "$work/gauntlet" ./cmd/gauntlet) || fail "go build ./cmd/gauntlet failed"
(cd "$root" && go run ./hack/images --out "$work/images" --mesh-echo) || fail "building the echo image failed"
kind load image-archive "$work/images/mesh-echo.oci.tar" --name "$cluster" || fail "kind load image-archive failed"

exp=()
[[ -n ${EXPECTATIONS:-} ]] && exp=(--expectations "$EXPECTATIONS")
mkdir -p "$reports"
step "gauntlet run meshauthz against $mesh $version (features $features)"
"$work/gauntlet" run meshauthz --mesh-kubeconfig "$kubeconfig" --mesh-api "$mesh" --features "$features" \
	"${impl[@]}" --implementation-version "$version" --report-dir "$reports" "${exp[@]}" "$@" || rc=$?
log "reports in $reports"
exit "$rc"
