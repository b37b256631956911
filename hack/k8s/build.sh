#!/usr/bin/env bash
# hack/k8s/build.sh [NAME]...: build Kubernetes binaries (and this module's
# own helpers) from the tools module hack/k8s (k8s.io/kubernetes pinned in
# hack/k8s/go.mod; never a dependency of gauntlet's main module) into a cache
# dir, and print each binary's path, one per line. Default NAMEs:
# kube-apiserver kubectl. A NAME is either a known upstream command (below)
# or a directory hack/k8s/cmd/NAME of this module, so a new main package
# there needs no change here.
#
# Cache dir: $GAUNTLET_K8S_CACHE, default /var/tmp/gauntlet-k8s/bin. A binary
# is reused while the stamp next to it matches: go.mod, go.sum, Go version,
# GOOS/GOARCH, build flags and, for this module's own commands, their sources.
# Builds run niced; one build at a time per cache dir (flock).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${GAUNTLET_K8S_CACHE:-/var/tmp/gauntlet-k8s/bin}
cache=${cache%/}
build_timeout=${GAUNTLET_K8S_BUILD_TIMEOUT:-3600}
die() {
	printf 'hack/k8s/build.sh: error: %s\n' "$1" >&2
	exit "${2:-1}"
}
log() { printf 'hack/k8s/build.sh: %s\n' "$*" >&2; }

command -v go >/dev/null || die "go not found in PATH: install Go 1.26"
(($#)) || set -- kube-apiserver kubectl
mkdir -p "$cache" || die "cannot create cache dir $cache: set GAUNTLET_K8S_CACHE to a writable directory"

# This module's own settings, whatever the caller's (a -modfile meant for the
# main module, a go.work) would say.
export GOFLAGS="-mod=readonly -buildvcs=false" GOWORK=off

# pkg_of NAME: the import path that builds NAME (its last element is NAME,
# which `go build -o DIR/` names the binary after).
pkg_of() {
	case $1 in
	kube-apiserver | kubectl | kubelet | kube-controller-manager | kube-scheduler | kube-proxy)
		echo "k8s.io/kubernetes/cmd/$1"
		;;
	*)
		[[ $1 =~ ^[a-z0-9][a-z0-9-]*$ && -d $here/cmd/$1 ]] ||
			die "unknown binary '$1': want kube-apiserver, kubectl, kubelet, kube-controller-manager, kube-scheduler, kube-proxy or a directory under hack/k8s/cmd" 2
		echo "./cmd/$1"
		;;
	esac
}

# The version the upstream binaries report: client-go's and component-base's
# version packages are stamped, else kubectl cannot parse the server version
# ("v0.0.0-master+$Format:%H$").
kver=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2; exit }' "$here/go.mod")
[[ $kver =~ ^v([0-9]+)\.([0-9]+)\. ]] || die "cannot read the k8s.io/kubernetes version from hack/k8s/go.mod"
major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]}
ldflags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags+=" -X $p.gitVersion=$kver -X $p.gitMajor=$major -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
done
buildflags=(-trimpath -ldflags "$ldflags")

base_stamp=$({
	cat "$here/go.mod" "$here/go.sum"
	go env GOVERSION GOOS GOARCH CGO_ENABLED
	echo "${buildflags[*]}"
} | sha256sum | cut -c1-16)
# Local commands may share packages of this module: any .go file counts.
local_stamp=$({
	echo "$base_stamp"
	cd "$here" && find . -name '*.go' -print0 | sort -z | xargs -0 -r sha256sum
} | sha256sum | cut -c1-16)

stamp_of() { [[ $(pkg_of "$1") == ./* ]] && echo "$local_stamp" || echo "$base_stamp"; }
fresh() { [[ -x $cache/$1 && $(cat "$cache/$1.stamp" 2>/dev/null) == "$(stamp_of "$1")" ]]; }

# Validate every name before taking the lock or building anything.
for name in "$@"; do pkg_of "$name" >/dev/null; done

stale=()
for name in "$@"; do fresh "$name" || stale+=("$name"); done
if ((${#stale[@]})); then
	exec 9>"$cache/.lock"
	flock -w "$build_timeout" 9 || die "another build holds $cache/.lock for more than ${build_timeout}s: wait for it or remove the lock holder"
	# Another build.sh may have built them while we waited for the lock.
	todo=() pkgs=()
	for name in "${stale[@]}"; do
		fresh "$name" && continue
		todo+=("$name")
		pkgs+=("$(pkg_of "$name")")
	done
	if ((${#todo[@]})); then
		tmp=$(mktemp -d "$cache/.build.XXXXXX")
		trap 'rm -rf "$tmp"' EXIT
		# One `go build` for all of them: they share most packages, and the
		# go command compiles those once and in parallel.
		cmd=(go build "${buildflags[@]}" -o "$tmp/" "${pkgs[@]}")
		log "building ${todo[*]} ($kver) into $cache, niced, up to ${build_timeout}s (cold: several minutes, ~3 GB RAM)"
		t0=$SECONDS
		(cd "$here" && timeout "$build_timeout" nice -n 10 "${cmd[@]}") >&2 ||
			die "building ${todo[*]} failed (command: cd hack/k8s && GOFLAGS='$GOFLAGS' ${cmd[*]}); check the Go module proxy access and free memory"
		for name in "${todo[@]}"; do
			mv -f "$tmp/$name" "$cache/$name"
			stamp_of "$name" >"$cache/$name.stamp"
		done
		log "built ${todo[*]} in $((SECONDS - t0)) s"
	fi
fi
for name in "$@"; do echo "$cache/$name"; done
