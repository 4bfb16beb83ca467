# outbox-cdc — see README.md.
#
#   make build      build bin/outbox-cdc
#   make demo       throwaway Postgres → outbox-cdc → stdout, then clean up
#   make test       install test servers if missing, vet, gofmt, go test -race
#   make bench      throughput, latency, CPU and memory beside pg_recvlogical
#   make fuzz       run every fuzz target for FUZZTIME each
#   make lint       go vet, gofmt check, go.mod/go.sum tidy check
#   make soak       long fault runs (SOAK_TIME, default 10m)

GO       ?= go
FUZZTIME ?= 30s
# The test harness's variables start with OUTBOX_CDC_TEST_ (outbox-cdc reads
# OUTBOX_CDC_* as config overrides); OUTBOX_CDC_CACHE is the older name.
OUTBOX_CDC_TEST_CACHE ?= $(or $(OUTBOX_CDC_CACHE),$(HOME)/.cache/outbox-cdc)
CACHE_ENV = OUTBOX_CDC_TEST_CACHE="$(OUTBOX_CDC_TEST_CACHE)"

.PHONY: build test test-deps lint bench fuzz demo soak docs-build docs-serve clean

build:
	$(GO) build -o bin/outbox-cdc ./cmd/outbox-cdc

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

bench: build test-deps
	. "$(OUTBOX_CDC_TEST_CACHE)/env.sh" && $(GO) run ./test/bench $(BENCHFLAGS)

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
	bash scripts/docs.sh serve

clean:
	rm -rf bin site
