# Gauntlet. `make conformance` runs every suite against the embedded defaults
# and writes reports/; `make test` is the test suite CI runs.
GO        ?= go
REPORTS   ?= reports
FUZZTIME  ?= 30s
BIN       := bin/gauntlet

.PHONY: all build test docs conformance conformance-real conformance-containerd16 conformance-containerd2 conformance-crio fuzz bench vet fmt clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/gauntlet

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }

# The unit tests plus the proofs: every check passes on the reference runtime
# (or fails as reference.yaml says) and fails under each fault it names.
# Proofs mostly wait on their reference targets, so many run at once.
test: vet
	@start=$$(date +%s); \
	$(GO) test -count=1 -parallel 24 -timeout 12m ./... ; rc=$$?; \
	echo "make test took $$(( $$(date +%s) - start )) s"; exit $$rc

# Every suite against its embedded reference target; one JUnit (and JSON)
# per suite in $(REPORTS). Each suite runs even when another fails.
conformance: build
	@mkdir -p $(REPORTS)
	@rc=0; for s in $$(./$(BIN) suites); do \
		start=$$(date +%s); \
		./$(BIN) run $$s --report-dir $(REPORTS) || rc=1; \
		echo "gauntlet run $$s took $$(( $$(date +%s) - start )) s"; \
	done; exit $$rc

# docs/checks/SUITE.md, generated from the check tables.
docs: build
	@mkdir -p docs/checks
	@for s in $$(./$(BIN) suites); do ./$(BIN) catalogue $$s > docs/checks/$$s.md; done

# The streaming suite against real runtimes (root; installs what it needs):
# up -> run with expectations/<runtime>-<version>.yaml -> down -> leftovers
# check; JUnit in reports/<runtime>/. GAUNTLET_EXPECTATIONS=none shows every
# real failure.
conformance-containerd16 conformance-containerd2 conformance-crio: conformance-%: build
	REPORTS=$(abspath $(REPORTS)) hack/runtimes/conformance.sh $*

conformance-real: conformance-containerd16 conformance-containerd2 conformance-crio

# Every native fuzz target for FUZZTIME each, with execs/s per target.
fuzz:
	FUZZTIME=$(FUZZTIME) fuzz/run.sh

bench:
	@start=$$(date +%s); \
	$(GO) test -run '^$$' -bench . -benchmem ./internal/... ; \
	echo "make bench took $$(( $$(date +%s) - start )) s"

clean:
	rm -rf bin $(REPORTS)

# The credprovider P checks against a real third-party plugin:
# ecr-credential-provider (cloud-provider-aws v1.37.1, a tools module in
# hack/credprovider, cached in /var/tmp/gauntlet-credprovider/bin) with a
# loopback fake ECR/STS: service account required, optional, and none.
.PHONY: conformance-credprovider-ecr
conformance-credprovider-ecr: build
	REPORTS=$(abspath $(REPORTS)) hack/credprovider/conformance-ecr.sh

# The credprovider P checks against the kubelet's own e2e test plugin
# (k8s.io/kubernetes v1.37.2 test/e2e_node/plugins/gcp-credential-provider,
# built from the tools module hack/credprovider-kubelet, cached in
# /var/tmp/gauntlet-credprovider/bin) with a loopback fake GCE metadata
# server: service account required, optional, and none. ~15 s warm.
.PHONY: conformance-credprovider-gcp
conformance-credprovider-gcp: build
	REPORTS=$(abspath $(REPORTS)) hack/credprovider-kubelet/conformance-gcp.sh

# The credprovider K and S checks against the real kubelet's credential
# provider code (k8s.io/kubernetes v1.37.2 pkg/credentialprovider/plugin via
# the wrapper in hack/credprovider-kubelet, cached in
# /var/tmp/gauntlet-credprovider/bin); ~65 s warm (K16 waits the kubelet's
# 60 s plugin deadline). JUnit in reports/credprovider-kubelet/.
.PHONY: conformance-credprovider-kubelet
conformance-credprovider-kubelet: build
	REPORTS=$(abspath $(REPORTS)) hack/credprovider-kubelet/conformance.sh

# The authz suite against a real kube-apiserver (root): its chain (AZ06-AZ12)
# and its SubjectAccessReview API as a webhook (AZ01-AZ05):
# gauntlet authz-webhooks -> hack/k8s/apiserver up --authorization-config ->
# gauntlet run authz (expectations/authz-kube-apiserver-<ver>.yaml) -> down
# -> leftovers. ~35 s warm (kube-apiserver from hack/k8s/build.sh's cache;
# cold build ~5 min). JUnit in reports/authz-kube-apiserver/.
.PHONY: conformance-authz-real
conformance-authz-real: build
	REPORTS=$(abspath $(REPORTS)) hack/authz/conformance.sh

# A real control plane for the tests that need one: etcd (Debian etcd-server)
# + kube-apiserver v1.37.2 built from the tools module hack/k8s (cached in
# /var/tmp/gauntlet-k8s/bin), on loopback; see hack/k8s/README.md. Root (the
# first up installs etcd-server). K8S_UP_FLAGS goes to `hack/k8s/apiserver up`.
K8S_UP_FLAGS ?=

.PHONY: k8s-build k8s-up k8s-down test-k8s

k8s-build:
	hack/k8s/build.sh kube-apiserver kubectl certs freeport >/dev/null

# Prints the KEY=value lines to eval (GAUNTLET_KUBECONFIG, ...).
k8s-up: k8s-build
	hack/k8s/apiserver up $(K8S_UP_FLAGS)

k8s-down:
	hack/k8s/apiserver down

# build -> up -> TestRealAPIServer with up's env -> down (also on failure or
# interrupt) -> leftovers check.
test-k8s: k8s-build
	@t0=$$(date +%s); \
	env=$$(hack/k8s/apiserver up $(K8S_UP_FLAGS)) || exit 1; \
	trap 'hack/k8s/apiserver down' EXIT; trap 'exit 130' INT TERM; \
	set -a; eval "$$env"; set +a; \
	rc=0; $(GO) test ./internal/kubeapi -run TestRealAPIServer -count=1 -v || rc=1; \
	trap - EXIT; hack/k8s/apiserver down || rc=1; \
	hack/k8s/leftovers.sh "$${GAUNTLET_APISERVER_URL##*:}" "$${GAUNTLET_ETCD_URL##*:}" || rc=1; \
	echo "make test-k8s: $$([ $$rc = 0 ] && echo ok || echo FAILED) in $$(( $$(date +%s) - t0 )) s (after k8s-build)"; \
	exit $$rc

# One real API server for everything that consumes its tokens: TokenRequest
# and TokenReview through internal/kubeapi, then the credprovider P checks
# with real TokenRequest tokens against the reference plugin and against
# ecr-credential-provider (whose fake STS verifies them with TokenReview),
# the S checks (the K/S checks that issue tokens) against the reference
# consumer and the real kubelet with their pods and service accounts created
# in the API server, and the P checks against the kubelet's e2e test plugin.
# Down and a leftovers check follow, also on failure (hack/k8s/with-apiserver.sh).
.PHONY: test-k8s-tokens
test-k8s-tokens: build k8s-build
	hack/k8s/with-apiserver.sh --extra-audiences sts.amazonaws.com -- sh -c '\
		rc=0; \
		$(GO) test ./internal/kubeapi ./internal/satoken/kubesource -run TestRealAPIServer -count=1 -v || rc=1; \
		./$(BIN) run credprovider --label-filter plugin --kubeconfig "$$KUBECONFIG" --report-dir $(REPORTS)/credprovider-realtokens || rc=1; \
		KUBECONFIG="$$KUBECONFIG" REPORTS=$(abspath $(REPORTS)) hack/credprovider/conformance-ecr.sh || rc=1; \
		./$(BIN) run credprovider --focus "\[S[0-9]+\]" --kubeconfig "$$KUBECONFIG" --report-dir $(REPORTS)/credprovider-reference-realtokens || rc=1; \
		KUBECONFIG="$$KUBECONFIG" FOCUS="\[S[0-9]+\]" REPORTS=$(abspath $(REPORTS)) hack/credprovider-kubelet/conformance.sh || rc=1; \
		KUBECONFIG="$$KUBECONFIG" REPORTS=$(abspath $(REPORTS)) hack/credprovider-kubelet/conformance-gcp.sh || rc=1; \
		exit $$rc'

# internal/meshtranslate's translations judged by real API machinery: Istio
# specs through istio.io/api's protojson types, then a real API server with
# gauntlet's GEP-3779 CRDs (core-only and extended) and Istio's real CRD from
# the Go module cache: valid policies accepted, MX29's invalid ones rejected
# by the server (hack/meshapi/README.md). Build, up, test, down, leftovers.
.PHONY: test-k8s-meshapi
test-k8s-meshapi:
	hack/meshapi/test-apiserver.sh

# The Kubernetes mesh driver (internal/meshkube) against a real API server
# (no scheduler, controllers or kubelet): the fixture's objects as stored,
# convergence reported as not reached within a 3 s bound (and why), an exec
# through the real pods/exec endpoint, policies through gauntlet's GEP-3779
# CRDs (accepted, rejected by the server itself, status, delete), Cleanup
# leaving no namespace or policy. Up, test, down, leftovers
# (hack/k8s/with-apiserver.sh). Then hack/kind's config parsed by kind's
# own types and run.sh driven through stub tools (no Docker needed).
.PHONY: test-k8s-meshdriver test-kind-config
test-k8s-meshdriver: k8s-build test-kind-config
	hack/k8s/with-apiserver.sh -- $(GO) test -p 1 ./internal/meshkube ./cmd/gauntlet -run '^(TestRealAPIServer|TestMeshKubeRealAPIServer)$$' -count=1 -v

test-kind-config:
	cd hack/kind && GOWORK=off GOFLAGS=-mod=readonly $(GO) test -count=1 ./...

# The meshauthz suite against a real enforcement engine: Istio's proxyless
# gRPC generator (istio.io/istio, tools module hack/istio-grpc) builds each
# workload's listener from the Istio translation of every policy, a
# go-control-plane xDS server serves it to grpc-go v1.85.0 xDS servers that
# enforce the RBAC filters (PermissionDenied). gRPC only: MA checks, MA09,
# MX25, MX27, MX28; deviations in expectations/meshauthz-istio-grpc.yaml.
# Driver cached in /var/tmp/gauntlet-istio/bin (cold ~12-20 min, ~2 GB RAM;
# warm ~10 s in all). JUnit + certification report in
# reports/meshauthz-istio-grpc/. Then a leftovers check (driver processes,
# SVID files).
.PHONY: conformance-meshauthz-istio
conformance-meshauthz-istio: build
	REPORTS=$(abspath $(REPORTS)) hack/istio-grpc/conformance.sh
