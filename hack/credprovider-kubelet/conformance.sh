#!/usr/bin/env bash
# hack/credprovider-kubelet/conformance.sh: the credprovider K and S checks
# against the real kubelet's credential provider code (k8s.io/kubernetes
# v1.37.2 pkg/credentialprovider/plugin, wrapped by main.go here): build the
# wrapper (cached; ~70 s cold with the module cache warm, ~3 min fully cold),
# run `gauntlet run credprovider --consumer kubelet` with
# expectations/credprovider-kubelet-v1.37.2.yaml (GAUNTLET_EXPECTATIONS=none
# shows every failure), JUnit in $REPORTS/credprovider-kubelet/, then check
# nothing is left behind (probe plugins, scenario dirs). The run takes ~65 s:
# K16 waits the kubelet's fixed 60 s plugin deadline.
# With KUBECONFIG=… (hack/k8s/with-apiserver.sh) the checks' pods and service
# accounts are created in that API server and every token is a real
# TokenRequest bound to them (reports in credprovider-kubelet-realtokens/);
# FOCUS narrows the checks (default '\[[KS][0-9]+\]'; only S checks ask
# for tokens).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
reports=${REPORTS:-reports}/credprovider-kubelet
focus=${FOCUS:-'\[[KS][0-9]+\]'}
kube=()
if [[ -n ${KUBECONFIG:-} ]]; then
	kube=(--kubeconfig "$KUBECONFIG")
	reports+=-realtokens
fi
gauntlet=${GAUNTLET:-bin/gauntlet}
exp=${GAUNTLET_EXPECTATIONS:-expectations/credprovider-kubelet-v1.37.2.yaml}
t0=$SECONDS
[[ -x $gauntlet ]] || { echo "conformance.sh: $gauntlet not built: run make build" >&2; exit 2; }
bin=$(hack/credprovider-kubelet/build.sh)
echo "credprovider-kubelet: wrapper $bin ready ($((SECONDS - t0)) s)"
work=$(mktemp -d /tmp/gauntlet-credprovider-kubelet.XXXXXX)
trap 'rm -rf "$work"' EXIT
rc=0
GAUNTLET_CREDPROVIDER_KUBELET=$bin TMPDIR=$work "$gauntlet" run credprovider --consumer kubelet \
	--focus "$focus" --expectations "$exp" --report-dir "$reports" "${kube[@]}" || rc=$?
echo "credprovider-kubelet: suite exit $rc ($((SECONDS - t0)) s)"
# Leftovers: a probe plugin still running (a consumer that does not kill at
# its deadline) or a scenario directory the suite did not remove.
left=$(pgrep -f -a "^$bin\$" || true)
for p in /proc/[0-9]*; do
	if { tr '\0' '\n' <"$p/environ"; } 2>/dev/null | grep -q "^GAUNTLET_CREDPROVIDER_PROBE=$work"; then
		left+=$'\n'"probe plugin pid ${p#/proc/}: $(tr '\0' ' ' <"$p/cmdline" 2>/dev/null)"
	fi
done
left=${left#$'\n'}
if [[ -n $left ]]; then
	echo "credprovider-kubelet: processes left behind:" >&2
	echo "$left" >&2
	rc=1
fi
if [[ -n $(ls -A "$work") ]]; then
	echo "credprovider-kubelet: files left in $work:" >&2
	ls -A "$work" >&2
	rc=1
fi
exit "$rc"
