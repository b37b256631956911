#!/usr/bin/env bash
# The credprovider P checks against ecr-credential-provider (built by
# build.sh) and the suite's loopback fake ECR/STS, in three configurations:
# service-account mode (KEP-4412, tokens from the in-process issuer, or a
# real API server's TokenRequest with KUBECONFIG=…), service account
# optional, and the node's credentials only. The
# kubelet's environment carries AWS_REGION, as on a node with a default
# region. Reports in $REPORTS/credprovider-ecr{,-sa-optional,-node}/.
# GAUNTLET_EXPECTATIONS=none shows every real failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPORTS=${REPORTS:-reports}
GAUNTLET=${GAUNTLET:-bin/gauntlet}
bin=$(hack/credprovider/build.sh)
exp=${GAUNTLET_EXPECTATIONS:-expectations/credprovider-ecr-credential-provider-1.37.1.yaml}
kube=()
[[ -n ${KUBECONFIG:-} ]] && kube=(--kubeconfig "$KUBECONFIG")
rc=0
for mode in sa sa-optional node; do
	cfg=hack/credprovider/ecr-credential-provider.yaml dir=$REPORTS/credprovider-ecr
	if [[ $mode != sa ]]; then
		cfg=hack/credprovider/ecr-credential-provider-$mode.yaml dir=$REPORTS/credprovider-ecr-$mode
	fi
	echo "credprovider-ecr: $mode mode"
	AWS_REGION=us-east-1 "$GAUNTLET" run credprovider --label-filter plugin --plugin "$bin" --plugin-config "$cfg" \
		--plugin-name "ecr-credential-provider 1.37.1 ($mode mode)" \
		--plugin-contract hack/credprovider/ecr-credential-provider.contract.yaml --plugin-fake-aws \
		--expectations "$exp" --report-dir "$dir" --timeout 5m "${kube[@]}" || rc=$?
done
exit "$rc"
