# gdpnet — the two commands a newcomer needs are `make demo` and `make test`.
GO       ?= go
PKGS     ?= ./...
FUZZTIME ?= 20s
BENCHTIME ?= 1s
BIN      := bin/gdp
# Stamped into the binary (gdp version, gdp_build_info) even where the Go
# toolchain's own VCS stamping is off (GOFLAGS=-buildvcs=false).
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo +dirty)
BUILDTIME ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS  ?= -X main.buildRevision=$(REVISION) -X main.buildTime=$(BUILDTIME)

.PHONY: all build deb demo test test-race bench fuzz fuzz-seeds soak soak-steady soak-life soak-memory lint clean handoff-data handoff-bench mutate

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/gdp

# dist/gdpnet_VERSION_ARCH.deb: the static binary, units, sysusers, configs
# (conffiles under /etc/gdp), completions and man pages (deploy/pkg, nfpm).
DEB_VERSION ?= 0.0.0+$(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
deb:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/gdp-static ./cmd/gdp
	$(GO) run ./deploy/pkg -bin bin/gdp-static -version $(DEB_VERSION) -out dist

# A multi-router overlay on loopback doing real work, narrated, with a
# summary table at the end. DEMO_FLAGS=--keep leaves it running to explore.
DEMO_FLAGS ?=
demo:
	@echo "building $(BIN) (the first build downloads modules and compiles: a few minutes)"
	@$(MAKE) --no-print-directory build
	./$(BIN) demo $(DEMO_FLAGS)

# Unit, integration and end-to-end tests (loopback only). Under ~15 min on 2 cores.
test:
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -timeout 20m $(PKGS)

test-race:
	$(GO) test -race -count=1 -timeout 30m $(PKGS)

# Benchmarks that report the figures the issues name, beside their baselines,
# then bench/REPORT.md and its plots (internal/benchreport; targets in
# internal/benchreport/targets.yaml). BENCH picks a subset (a -bench regexp,
# e.g. make bench BENCH=Forward); the full run also runs the 100 MB
# QUIC-over-names integrity test. The raw output and the load samples
# (every 5 s) stay in $(BENCHDIR)/out. A failed benchmark still gets its
# report (FAILED rows) and then fails the target.
BENCH    ?= .
BENCHDIR ?= bench
bench:
	@mkdir -p $(BENCHDIR)/out
	@rm -f $(BENCHDIR)/out/bench.json $(BENCHDIR)/out/loadavg.log
	@( while :; do echo "$$(date +%s) $$(cat /proc/loadavg)"; sleep 5; done ) >> $(BENCHDIR)/out/loadavg.log & sampler=$$!; \
	rc=0; \
	$(GO) test -run '^$$' -bench '$(value BENCH)' -benchtime $(BENCHTIME) -timeout 60m -json $(PKGS) > $(BENCHDIR)/out/bench.json 2>&1 || rc=$$?; \
	if [ '$(value BENCH)' = . ]; then \
		GDP_QUIC_BYTES=104857600 $(GO) test -count=1 -json -run TestQUICOverNamesIntact ./client >> $(BENCHDIR)/out/bench.json 2>&1 || rc=$$?; \
	fi; \
	kill $$sampler; \
	$(GO) run ./internal/benchreport -in $(BENCHDIR)/out/bench.json -out $(BENCHDIR) -load-log $(BENCHDIR)/out/loadavg.log \
		-commit '$(REVISION)' -filter '$(value BENCH)' -benchtime '$(BENCHTIME)' \
		-command "make bench BENCH='$(value BENCH)' BENCHTIME=$(BENCHTIME)$(if $(filter-out ./...,$(PKGS)), PKGS='$(PKGS)')" || rc=$$((rc ? rc : $$?)); \
	exit $$rc

# The VM handoff dataset (docs/HANDOFF.md §7): a debootstrap'd Debian ext4
# image before/after apt-get install, a booted guest's RAM before/after a
# workload, in $(HANDOFF_DATA). Needs root and a Debian mirror; idempotent.
HANDOFF_DATA ?= /var/tmp/gdpnet-handoff-data
handoff-data:
	GDP_HANDOFF_DATA=$(HANDOFF_DATA) ./scripts/handoff-data.sh

# The handoff benchmark on that dataset: emulated 5/10/25 Mbit/s links and a
# 25 -> 5 drop, beside zstd, xz -9 and QEMU's own live migration (~20 min).
handoff-bench: handoff-data
	GDP_HANDOFF_DATA=$(HANDOFF_DATA) $(GO) test -run '^$$' -bench HandoffDataset -benchtime 1x -timeout 90m ./handoffd

# The fault suite (test/e2e TestSoak): real daemons under kill -9, SIGSTOP
# partitions, clock skew (GDP_FAULT_CLOCK_OFFSET) and a full disk, each
# round's client history checked for linearizability with porcupine.
# SOAK_ROUNDS rounds, or SOAK_DURATION (e.g. 30m) of them; SOAK_OUT keeps
# histories and visualizations. Then, as root, cmd/gdp TestSoakNetns:
# SOAK_NETNS_ROUNDS rounds of link cuts, partitions and router SIGKILLs in
# network namespaces (the simulator's netns mode).
SOAK_ROUNDS ?= 10
SOAK_DURATION ?=
SOAK_OUT ?= soak-out
SOAK_NETNS_ROUNDS ?= 3
soak:
	GDP_SOAK=1 GDP_SOAK_ROUNDS=$(SOAK_ROUNDS) GDP_SOAK_DURATION=$(SOAK_DURATION) GDP_SOAK_OUT=$(abspath $(SOAK_OUT)) \
		$(GO) test -count=1 -v -run 'TestSoak$$' -timeout 3h ./test/e2e
	@if [ "$$(id -u)" = 0 ]; then GDP_SOAK=1 GDP_SOAK_NETNS_ROUNDS=$(SOAK_NETNS_ROUNDS) \
		$(GO) test -count=1 -v -run 'TestSoakNetns$$' -timeout 1h ./cmd/gdp; \
	else echo "soak: TestSoakNetns needs root (network namespaces); skipped"; fi

# The steady soak (test/e2e TestSoakSteady): the same cluster without
# faults, held at half its measured capacity for SOAK_STEADY; RSS,
# goroutines, open files and errors sampled every 30 s into SOAK_OUT
# (steady.csv, steady-rss.png, steady-goroutines.png).
SOAK_STEADY ?= 30m
soak-steady:
	GDP_SOAK=1 GDP_SOAK_STEADY=$(SOAK_STEADY) GDP_SOAK_OUT=$(abspath $(SOAK_OUT)) \
		$(GO) test -count=1 -v -run 'TestSoakSteady$$' -timeout 3h ./test/e2e

# The life soak (test/e2e TestSoakLife, Session 20): the same cluster and a
# gateway under a light load for SOAK_LIFE, memberships of a few minutes
# renewed by `gdp cert renew`, a SIGHUP to every daemon and a kill -9 and
# restart of one neighbour in turn every few minutes; recovery times, log
# lines per event and each daemon's footprint into SOAK_OUT (events.csv,
# life.csv, life-rss.png, life-goroutines.png).
SOAK_LIFE ?= 30m
soak-life:
	GDP_SOAK=1 GDP_SOAK_LIFE=$(SOAK_LIFE) GDP_SOAK_OUT=$(abspath $(SOAK_OUT)) \
		$(GO) test -count=1 -v -run 'TestSoakLife$$' -timeout 3h ./test/e2e

# A capsule server's memory outside Go while its store takes 400 MiB of
# records (GDP_SOAK_STORE_MIB) at full speed: pebble's memtables warm up,
# then flat (OPERATIONS §6.11 Session 21) → SOAK_OUT/store-memory.csv.
soak-memory:
	mkdir -p $(SOAK_OUT)
	GDP_SOAK=1 GDP_SOAK_OUT=$(abspath $(SOAK_OUT)) \
		$(GO) test -count=1 -v -run 'TestSoakStoreMemory$$' -timeout 20m ./capsuled/store

# Every Fuzz target, each for FUZZTIME (scripts/fuzz.sh: FUZZ_KEEP=1 keeps
# the inputs found, FUZZ_ONLY=regexp picks targets). Crashers land in
# <pkg>/testdata/fuzz/<target>/ and `make test` reruns them once committed.
fuzz:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

# Mutation sweep of the trust checks (docs/SECURITY.md, "Mutation sweep"):
# for each package, every guard skipped, operand dropped, limit moved by one,
# check forced true or error dropped is compiled into one test binary
# (go test -overlay: the tree is not edited) and the package's tests run
# once per mutant; the survivors are the checks no test exercises. Results
# (tab-separated, resumable) go to $(MUTDIR)/<pkg>.tsv. MUT_ARGS adds
# flags, e.g. MUT_ARGS="-funcs Verify -run TestVerify".
MUTPKGS ?= ./certs ./caapi/seal ./advert ./pdu ./capsuled/wire ./capsule
MUTDIR  ?= /tmp/gdp-mutate
MUT_ARGS ?=
mutate:
	$(GO) build -o $(MUTDIR)/mutsweep ./internal/mutsweep
	for p in $(MUTPKGS); do t=$$(echo $$p | sed 's#^\./##; s#/#_#g'); \
		$(MUTDIR)/mutsweep -pkg $$p -work $(MUTDIR)/work-$$t -results $(MUTDIR)/$$t.tsv $(MUT_ARGS) || exit 1; done

# Rewrites the seed corpora (<pkg>/testdata/fuzz/<target>/seed-*) from the
# seeds each target adds (internal/fuzzseed): golden vectors and fixtures.
fuzz-seeds:
	find . -path '*/testdata/fuzz/Fuzz*/seed-*' -delete
	GDP_FUZZ_WRITE_SEEDS=1 $(GO) test -count=1 -run '^Fuzz' $$(git ls-files '*_test.go' | xargs grep -l '^func Fuzz' | xargs -n1 dirname | sort -u | sed 's|^|./|')

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

clean:
	rm -rf bin
