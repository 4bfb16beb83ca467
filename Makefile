# outbox-cdc — see README.md.
#
#   make build      build bin/outbox-cdc
#   make demo       throwaway Postgres → outbox-cdc → stdout, then clean up
#   make test       install test servers if missing, vet, gofmt, go test -race
#                   on the default PostgreSQL (Debian's 15), then the core set
#                   (CORE_TESTS) on every other major in PG_MATRIX
#   make test-matrix  every test that starts PostgreSQL, on each major in PG_MATRIX
#   make bench      throughput, latency, CPU and memory beside pg_recvlogical
#   make fuzz       run every fuzz target for FUZZTIME each
#   make lint       go vet + gofmt check
#   make soak       long fault runs (SOAK_TIME, default 10m)

GO       ?= go
FUZZTIME ?= 30s
OUTBOX_CDC_CACHE ?= $(HOME)/.cache/outbox-cdc
CACHE_ENV = OUTBOX_CDC_CACHE="$(OUTBOX_CDC_CACHE)"

.PHONY: build test test-core test-matrix test-deps lint bench fuzz demo soak docs-build docs-serve clean

# PostgreSQL majors of the version matrix (docs/postgres-versions.md); the
# harness starts the one OUTBOX_CDC_PG_VERSION names. 15 is the default.
PG_MATRIX ?= 14 15 16 17 18
PG_DEFAULT ?= 15
# The short core set run on every other major by `make test`: kill under
# load, the outbox-lifecycle cases, idle WAL, bad setup, the message path,
# and what differs between versions (failover slots, standbys). The failover
# test runs on 17 and 18 in the default run already.
CORE_TESTS ?= ^(TestKillUnderLoadLosesNothing|TestIdleOutboxFollowsServerWAL|TestBadSetupIsNamed|TestPartitionedOutbox|TestRenamedOutbox|TestDDLGuardNeedsSuperuser|TestRestartAfterRenameIsNamed|TestOutboxLeavesPublication|TestUnconfiguredRelationInPublication|TestMessagePathIsOffByDefault|TestMessagePathOptInLocksEmitMessage|TestNonTransactionalMessageBlocks|TestNonTransactionalMessageDeadLettered|TestFailoverSlotSetup|TestStandbyIsRefusedByName)$$
# Packages whose tests start PostgreSQL (through internal/harness).
PG_PKGS = $$(grep -rl --include='*_test.go' -e 'StartPostgres(' . | xargs -r -n1 dirname | sort -u)

build:
	$(GO) build -o bin/outbox-cdc ./cmd/outbox-cdc

test-deps:
	$(CACHE_ENV) bash scripts/install-test-deps.sh

lint:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# -p 1: one test binary at a time, so servers started by different packages
# never race for the same free loopback port.
test: test-deps lint
	. "$(OUTBOX_CDC_CACHE)/env.sh" && $(GO) test -race -count=1 -p 1 -timeout 30m ./...
	$(MAKE) --no-print-directory test-core

# The core set on every major of PG_MATRIX but the default.
test-core: test-deps
	@. "$(OUTBOX_CDC_CACHE)/env.sh"; failed=; for v in $(filter-out $(PG_DEFAULT),$(PG_MATRIX)); do \
		echo "== core set on PostgreSQL $$v"; \
		OUTBOX_CDC_PG_VERSION=$$v $(GO) test -race -count=1 -timeout 15m -run '$(CORE_TESTS)' ./test/ || failed="$$failed $$v"; \
	done; \
	if [ -n "$$failed" ]; then echo "test-core: failed on PostgreSQL$$failed"; exit 1; fi

# Everything that starts PostgreSQL, on every major of PG_MATRIX; every
# major runs, and the failed ones are named at the end.
test-matrix: test-deps lint
	@. "$(OUTBOX_CDC_CACHE)/env.sh"; failed=; for v in $(PG_MATRIX); do \
		echo "== PostgreSQL $$v"; start=$$(date +%s); \
		OUTBOX_CDC_PG_VERSION=$$v $(GO) test -race -count=1 -p 1 -timeout 30m $(PG_PKGS) || failed="$$failed $$v"; \
		echo "== PostgreSQL $$v took $$(( $$(date +%s) - start ))s"; \
	done; \
	if [ -n "$$failed" ]; then echo "test-matrix: failed on PostgreSQL$$failed"; exit 1; fi; echo "test-matrix: green on PostgreSQL $(PG_MATRIX)"

bench: build test-deps
	. "$(OUTBOX_CDC_CACHE)/env.sh" && $(GO) run ./test/bench $(BENCHFLAGS)

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
	. "$(OUTBOX_CDC_CACHE)/env.sh" && OUTBOX_CDC_SOAK=$${SOAK_TIME:-10m} $(GO) test -count=1 -timeout 3h -run 'Soak' -v ./test/

docs-build:
	bash scripts/docs.sh build

docs-serve:
	bash scripts/docs.sh serve

clean:
	rm -rf bin site
