# Gauntlet. `make conformance` runs every suite against the embedded defaults
# and writes reports/; `make test` is the test suite CI runs.
GO        ?= go
REPORTS   ?= reports
FUZZTIME  ?= 30s
BIN       := bin/gauntlet

.PHONY: all build test conformance conformance-real conformance-containerd16 conformance-containerd2 conformance-crio fuzz bench vet fmt clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/gauntlet

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }

# The unit tests plus the proofs: every check passes on the reference runtime
# (or fails as reference.yaml says) and fails under each fault it names.
test: vet
	$(GO) test -count=1 -timeout 15m ./...

conformance: build
	@mkdir -p $(REPORTS)
	./$(BIN) run streaming --report-dir $(REPORTS)

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
