# outbox-cdc — see README.md.
#
#   make build        build bin/outbox-cdc
#   make demo         throwaway Postgres → outbox-cdc → stdout, then clean up
#   make test         install test servers if missing, vet, gofmt, go test -race
#                     on the default PostgreSQL (Debian's 15), then the core set
#                     (CORE_TESTS) on every other major in PG_MATRIX
#   make test-matrix  every test that starts PostgreSQL, on each major in PG_MATRIX
#   make test-deps    only install the test servers and the examples' drivers
#   make lint         go vet, gofmt check, go.mod/go.sum tidy check
#   make bench        throughput, latency, CPU and memory beside pg_recvlogical;
#                     the admin console's search on 1,000,000 rows;
#                     handler throughput per broker beside a bare client
#   make fuzz         run every fuzz target for FUZZTIME each
#   make soak         long fault runs (SOAK_TIME, default 10m)
#   make release      dist/: static linux/amd64 and linux/arm64 binaries + SHA256SUMS
#                     (VERSION, default from git describe; stamped with commit and date)
#   make image        docker build -t outbox-cdc:$(VERSION) . (needs a container engine)
#   make docs-build   the documentation site into site/, strict (MkDocs, from PyPI)
#   make docs-serve   serve it on http://localhost:8080 (DOCS_ADDR) with live reload
#   make docs-config  regenerate docs/reference/configuration.md from package config
#   make docs-cli     regenerate docs/reference/cli.md from the command tree
#   make docs-bench   make bench, saved as docs/benchmarks/run.txt, then the plots
#   make bench-plots  redraw docs/benchmarks/*.svg from run.txt (or BENCH_RUN=file)
#   make clean        remove bin/, dist/ and site/

GO       ?= go
FUZZTIME ?= 30s
# The test harness's variables start with OUTBOX_CDC_TEST_ (outbox-cdc reads
# OUTBOX_CDC_* as config overrides); OUTBOX_CDC_CACHE is the older name.
OUTBOX_CDC_TEST_CACHE ?= $(or $(OUTBOX_CDC_CACHE),$(HOME)/.cache/outbox-cdc)
CACHE_ENV = OUTBOX_CDC_TEST_CACHE="$(OUTBOX_CDC_TEST_CACHE)"

# Release stamping (outbox-cdc version prints them).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
DATE    ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS  = -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)
PLATFORMS ?= linux/amd64 linux/arm64

.PHONY: build test test-core test-matrix test-deps lint bench fuzz demo soak docs-build docs-serve docs-config docs-cli docs-bench bench-plots release image clean

# PostgreSQL majors of the version matrix (docs/postgres-versions.md); the
# harness starts the one OUTBOX_CDC_TEST_PG_VERSION names. 15 is the default.
PG_MATRIX ?= 14 15 16 17 18
PG_DEFAULT ?= 15
# The short core set run on every other major by `make test`: kill under
# load, the outbox-lifecycle cases, idle WAL, bad setup, the message path,
# and what differs between versions (failover slots, standbys). The failover
# test runs on 17 and 18 in the default run already.
CORE_TESTS ?= ^(TestKillUnderLoadLosesNothing|TestIdleOutboxFollowsServerWAL|TestBadSetupIsNamed|TestPartitionedOutbox|TestRenamedOutbox|TestDDLGuardNeedsSuperuser|TestRestartAfterRenameIsNamed|TestOutboxLeavesPublication|TestUnconfiguredRelationInPublication|TestMessagePathIsOffByDefault|TestMessagePathOptInLocksEmitMessage|TestNonTransactionalMessageBlocks|TestNonTransactionalMessageDeadLettered|TestFailoverSlotSetup|TestStandbyIsRefusedByName)$$
# Packages whose tests start PostgreSQL (through internal/harness).
PG_PKGS = $$(grep -rl --include='*_test.go' -e 'StartPostgres(' . | xargs -r -n1 dirname | sort -u)

# The binary as release and the image build it: static, trimmed, no
# symbol table. make bench measures this one.
build:
	CGO_ENABLED=0 GOFLAGS=-buildvcs=false $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/outbox-cdc ./cmd/outbox-cdc

test-deps:
	$(CACHE_ENV) bash scripts/install-test-deps.sh

# go mod tidy -diff prints what tidy would change and fails when that is
# anything, so CI (.ci/run → make test → lint) fails on an untidy go.mod.
lint:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run 'go mod tidy' and commit the result"; exit 1; }

# Packages test in parallel (go test's default -p, one test binary per CPU):
# the harness gives every server a port no other test process picks and
# starts a server again on a new port when someone else took its port
# (internal/harness, "Ports"). ./test/ comes first: go test starts test
# binaries in the order of the packages, and the end-to-end tests take longer
# than all the others together, so they set the wall time when they start at
# once (their results are printed first, the others' after them).
test: test-deps lint
	. "$(OUTBOX_CDC_TEST_CACHE)/env.sh" && $(GO) test -race -count=1 -timeout 30m ./test/ ./...
	$(MAKE) --no-print-directory test-core

# The core set on every major of PG_MATRIX but the default.
test-core: test-deps
	@. "$(OUTBOX_CDC_TEST_CACHE)/env.sh"; failed=; for v in $(filter-out $(PG_DEFAULT),$(PG_MATRIX)); do \
		echo "== core set on PostgreSQL $$v"; \
		OUTBOX_CDC_TEST_PG_VERSION=$$v $(GO) test -race -count=1 -timeout 15m -run '$(CORE_TESTS)' ./test/ || failed="$$failed $$v"; \
	done; \
	if [ -n "$$failed" ]; then echo "test-core: failed on PostgreSQL$$failed"; exit 1; fi

# Everything that starts PostgreSQL, on every major of PG_MATRIX; every
# major runs, and the failed ones are named at the end.
test-matrix: test-deps lint
	@. "$(OUTBOX_CDC_TEST_CACHE)/env.sh"; failed=; for v in $(PG_MATRIX); do \
		echo "== PostgreSQL $$v"; start=$$(date +%s); \
		OUTBOX_CDC_TEST_PG_VERSION=$$v $(GO) test -race -count=1 -timeout 30m $(PG_PKGS) || failed="$$failed $$v"; \
		echo "== PostgreSQL $$v took $$(( $$(date +%s) - start ))s"; \
	done; \
	if [ -n "$$failed" ]; then echo "test-matrix: failed on PostgreSQL$$failed"; exit 1; fi; echo "test-matrix: green on PostgreSQL $(PG_MATRIX)"

bench: build test-deps
	. "$(OUTBOX_CDC_TEST_CACHE)/env.sh" && $(GO) run ./test/bench $(BENCHFLAGS)
	. "$(OUTBOX_CDC_TEST_CACHE)/env.sh" && $(GO) run ./test/bench/handlers $(HANDLERBENCHFLAGS)

# Every fuzz target of every package, FUZZTIME each.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "fuzz $$pkg $$target"; \
			$(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

demo: build
	bash scripts/demo.sh

soak: build test-deps
	. "$(OUTBOX_CDC_TEST_CACHE)/env.sh" && OUTBOX_CDC_TEST_SOAK=$${SOAK_TIME:-10m} $(GO) test -count=1 -timeout 3h -run 'Soak' -v ./test/

docs-build:
	bash scripts/docs.sh build

docs-serve:
	DOCS_ADDR=$${DOCS_ADDR:-localhost:8080} bash scripts/docs.sh serve

docs-config:
	$(GO) generate ./config/

docs-cli:
	$(GO) generate ./cmd/outbox-cdc/

bench-plots:
	bash scripts/docs.sh plots

docs-bench: build test-deps
	. "$(OUTBOX_CDC_TEST_CACHE)/env.sh" && $(GO) run ./test/bench $(BENCHFLAGS) | tee docs/benchmarks/run.txt.new
	mv docs/benchmarks/run.txt.new docs/benchmarks/run.txt
	bash scripts/docs.sh plots

# Static binaries (the Dockerfile builds the same way) and their checksums.
release:
	rm -rf dist && mkdir -p dist
	@set -e; for p in $(PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; out=dist/outbox-cdc-$(VERSION)-$$os-$$arch; \
		echo "build $$out"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch GOFLAGS=-buildvcs=false $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $$out ./cmd/outbox-cdc; \
	done
	cd dist && sha256sum outbox-cdc-* > SHA256SUMS && cat SHA256SUMS

image:
	docker build --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) --build-arg DATE=$(DATE) -t outbox-cdc:$(VERSION) .

clean:
	rm -rf bin dist site
