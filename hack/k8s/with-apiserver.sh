#!/usr/bin/env bash
# hack/k8s/with-apiserver.sh [apiserver up flags...] -- CMD [ARGS...]: bring a
# real kube-apiserver + etcd up (hack/k8s/apiserver up), run CMD with up's
# KEY=value lines in its environment (GAUNTLET_KUBECONFIG, ...; KUBECONFIG
# too), then take it down (also on failure or interrupt) and prove with
# hack/k8s/leftovers.sh that nothing is left. Exit: CMD's status, or 1 when
# up, down or the leftovers check fails.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
up=()
while (($#)) && [[ $1 != -- ]]; do
	up+=("$1")
	shift
done
(($#)) && shift
(($#)) || { echo "usage: $0 [up flags...] -- CMD [ARGS...]" >&2; exit 2; }
t0=$SECONDS
env=$("$here/apiserver" up "${up[@]}") || { echo "with-apiserver: 'hack/k8s/apiserver up' failed (messages above)" >&2; exit 1; }
rc=0
finish() {
	trap - EXIT INT TERM
	"$here/apiserver" down || rc=1
	"$here/leftovers.sh" "${GAUNTLET_APISERVER_URL##*:}" "${GAUNTLET_ETCD_URL##*:}" || rc=1
	echo "with-apiserver: $* exit $rc after $((SECONDS - t0)) s (up, run, down, leftovers)" >&2
	exit "$rc"
}
trap finish EXIT
trap 'rc=130; exit 130' INT TERM
set -a
eval "$env"
set +a
export KUBECONFIG=$GAUNTLET_KUBECONFIG
echo "with-apiserver: API server up at $GAUNTLET_APISERVER_URL after $((SECONDS - t0)) s" >&2
"$@" || rc=$?
