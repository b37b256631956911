#!/usr/bin/env bash
# hack/credprovider-kubelet/conformance-gcp.sh: the credprovider P checks
# against the kubelet's own e2e test plugin (k8s.io/kubernetes v1.37.2
# test/e2e_node/plugins/gcp-credential-provider, built by
# `build.sh gcp-credential-provider` from this tools module) and the suite's
# loopback fake GCE metadata server (--plugin-fake-gce), in three
# configurations: service-account mode (tokens from the in-process issuer,
# or a real API server's TokenRequest with KUBECONFIG=…), service account
# optional, and the node's identity. Reports in
# $REPORTS/credprovider-gcp{,-sa-optional,-node}/.
# GAUNTLET_EXPECTATIONS=none shows every real failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
REPORTS=${REPORTS:-reports}
GAUNTLET=${GAUNTLET:-bin/gauntlet}
[[ -x $GAUNTLET ]] || { echo "conformance-gcp.sh: $GAUNTLET not built: run make build" >&2; exit 2; }
t0=$SECONDS
bin=$(hack/credprovider-kubelet/build.sh gcp-credential-provider)
echo "credprovider-gcp: plugin $bin ready ($((SECONDS - t0)) s)"
# One expectations file for the service-account modes, one for the node
# mode (P08/P09 pass in service-account mode only for want of a token).
exp=${GAUNTLET_EXPECTATIONS:-expectations/credprovider-gcp-credential-provider-v1.37.2.yaml}
expnode=${GAUNTLET_EXPECTATIONS:-expectations/credprovider-gcp-credential-provider-v1.37.2-node.yaml}
kube=()
[[ -n ${KUBECONFIG:-} ]] && kube=(--kubeconfig "$KUBECONFIG")
rc=0
for mode in sa sa-optional node; do
	cfg=hack/credprovider-kubelet/gcp-credential-provider.yaml dir=$REPORTS/credprovider-gcp x=$exp
	if [[ $mode != sa ]]; then
		cfg=hack/credprovider-kubelet/gcp-credential-provider-$mode.yaml dir=$REPORTS/credprovider-gcp-$mode
	fi
	[[ $mode == node ]] && x=$expnode
	echo "credprovider-gcp: $mode mode"
	"$GAUNTLET" run credprovider --label-filter plugin --plugin "$bin" --plugin-config "$cfg" \
		--plugin-name "gcp-credential-provider (kubelet e2e test plugin, v1.37.2, $mode mode)" \
		--plugin-contract hack/credprovider-kubelet/gcp-credential-provider.contract.yaml --plugin-fake-gce \
		--expectations "$x" --report-dir "$dir" --timeout 5m "${kube[@]}" || rc=$?
done
echo "credprovider-gcp: exit $rc ($((SECONDS - t0)) s)"
exit "$rc"
