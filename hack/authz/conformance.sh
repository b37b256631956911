#!/usr/bin/env bash
# hack/authz/conformance.sh [gauntlet run authz flags...]: the authz suite
# against a real kube-apiserver, end to end:
#
#   gauntlet authz-webhooks --dir W/webhooks (probe webhooks + the
#   AuthorizationConfiguration) -> hack/k8s/apiserver up --authorization-config
#   -> gauntlet run authz against it (expectations/authz-kube-apiserver-<ver>.yaml,
#   JUnit in $REPORTS/authz-kube-apiserver) -> down -> leftovers check
#
# The chain checks (AZ06-AZ12) drive the apiserver's authorizer chain. The
# webhook checks (AZ01-AZ05) treat the same apiserver's SubjectAccessReview
# API as the webhook it is for the kubelet and aggregated API servers
# (--authorization-mode=Webhook / delegated authorization), called with the
# admin client certificate of the kubeconfig.
#
# GAUNTLET_EXPECTATIONS=none runs without expectations. The exit code is
# gauntlet's (0 green, 1 failed, 2 usage), or 1 when a step or the
# leftovers check fails. Each step prints its time.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${GAUNTLET_BIN:-$root/bin/gauntlet}
W=${GAUNTLET_AUTHZ_DIR:-/var/tmp/gauntlet-authz}
W=${W%/}
reports=${REPORTS:-$root/reports}/authz-kube-apiserver
export GAUNTLET_K8S_WORKDIR=$W/k8s

die() {
	printf '\nconformance authz: FAILED: %s\n\n' "$*" >&2
	exit 1
}
step() { printf 'conformance authz: %s (%d s)\n' "$1" $((SECONDS - t0)) >&2; }

[[ -x $bin ]] || die "$bin missing: run 'make build' first"
case $W in
/ | /var | /var/tmp | /tmp | /root | /home) die "GAUNTLET_AUTHZ_DIR=$W is not a dedicated directory" ;;
/*) ;;
*) die "GAUNTLET_AUTHZ_DIR=$W must be an absolute path" ;;
esac
[[ ! -e $W ]] || die "$W exists (a previous run left it?): remove it after checking nothing runs from it"

rc=0
daemon=
finish() {
	local status=$?
	trap - EXIT INT TERM
	((rc != 0)) || rc=$status
	"$root/hack/k8s/apiserver" down >&2 || { echo "conformance authz: 'hack/k8s/apiserver down' failed" >&2; rc=1; }
	if [[ -n $daemon ]] && kill -0 "$daemon" 2>/dev/null; then
		kill -TERM "$daemon" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$daemon" 2>/dev/null || true
	fi
	[[ -z $daemon ]] || wait "$daemon" 2>/dev/null || true
	# Leftovers: nothing may run from W, and W goes.
	local d cmd self=" $$ $BASHPID "
	for d in /proc/[0-9]*; do
		[[ $self == *" ${d#/proc/} "* ]] && continue
		cmd=$(tr '\0' ' ' 2>/dev/null <"$d/cmdline") || continue
		if [[ $cmd == *"$W/"* ]]; then
			echo "leftover: process ${d#/proc/} running from $W: $cmd" >&2
			rc=1
		fi
	done
	[[ ! -e $W/webhooks/state.json ]] || { echo "leftover: $W/webhooks/state.json (the webhooks did not stop cleanly)" >&2; rc=1; }
	rm -rf "$W"
	((rc != 0)) || echo "leftovers: none" >&2
	step "done, exit $rc"
	exit "$rc"
}
t0=$SECONDS
trap finish EXIT
trap 'rc=130; exit 130' INT TERM

mkdir -p "$W"
apiserver=$("$root/hack/k8s/build.sh" kube-apiserver) || die "building kube-apiserver failed (above)"
step "kube-apiserver binary: $apiserver"

"$bin" authz-webhooks --dir "$W/webhooks" >"$W/webhooks.env" 2>"$W/webhooks.log" &
daemon=$!
for _ in $(seq 300); do
	[[ -s $W/webhooks.env ]] && break
	kill -0 "$daemon" 2>/dev/null || die "gauntlet authz-webhooks exited: $(cat "$W/webhooks.log")"
	sleep 0.1
done
[[ -s $W/webhooks.env ]] || die "gauntlet authz-webhooks did not come up within 30 s"
# shellcheck disable=SC1091
source "$W/webhooks.env"
step "probe webhooks up (pid $daemon), configuration $GAUNTLET_AUTHZ_CONFIG"

"$root/hack/k8s/apiserver" up --authorization-config "$GAUNTLET_AUTHZ_CONFIG" >"$W/apiserver.env" ||
	die "'hack/k8s/apiserver up --authorization-config' failed (above)"
# shellcheck disable=SC1091
source "$W/apiserver.env"
step "kube-apiserver up at $GAUNTLET_APISERVER_URL"

ver=$("$apiserver" --version | awk '{print $2}')
ver=${ver#v}
exp=$root/expectations/authz-kube-apiserver-$ver.yaml
args=()
if [[ ${GAUNTLET_EXPECTATIONS:-} == none ]]; then
	args+=(--expectations none)
elif [[ -f $exp ]]; then
	args+=(--expectations "$exp")
else
	die "no expectations file for kube-apiserver $ver: write $exp (GAUNTLET_EXPECTATIONS=none shows every failure)"
fi
mkdir -p "$reports"
set +e
kc_value() { awk -v k="$1:" '$1 == k { print $2; exit }' "$GAUNTLET_KUBECONFIG"; }
"$bin" run authz --authorizer-chain-kubeconfig "$GAUNTLET_KUBECONFIG" --authorizer-webhooks-dir "$GAUNTLET_AUTHZ_WEBHOOKS_DIR" \
	--authorizer-apiserver-binary "$apiserver" \
	--authorizer-webhook "$GAUNTLET_APISERVER_URL/apis/authorization.k8s.io/v1/subjectaccessreviews" \
	--authorizer-client-cert "$(kc_value client-certificate)" --authorizer-client-key "$(kc_value client-key)" \
	--authorizer-ca "$(kc_value certificate-authority)" \
	--report-dir "$reports" "${args[@]}" "$@"
rc=$?
set -e
step "gauntlet run authz exit $rc (JUnit in $reports)"
exit "$rc"
