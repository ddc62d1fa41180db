# wecomsync: see README.md. Everything runs on a machine with Go; Postgres binaries
# (initdb/pg_ctl, Debian's postgresql package) are needed only by the tests and the demo
# when TEST_DATABASE_URL / DATABASE_URL are not set.

GO        ?= go
BIN       := bin
CMDS      := callback worker wecom-emulator demo
FUZZTIME  ?= 10s
BENCHTIME ?= 1s

.PHONY: pg chromium all build demo test test-go fuzz-short bench bench-1m bench-e2e lint clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ $(addprefix ./cmd/,$(CMDS))

## demo: the whole pipeline against the emulator (Ctrl-C stops it).
demo: build pg
	$(BIN)/demo

## test: vet, every test (real NATS in-process, real Postgres), and a short fuzz run.
test: lint pg chromium test-go fuzz-short

test-go:
	$(GO) test -count=1 -timeout 8m ./...

fuzz-short:
	$(GO) test -run='^$$' -fuzz='^FuzzDecrypt$$' -fuzztime=$(FUZZTIME) ./internal/crypto
	$(GO) test -run='^$$' -fuzz='^FuzzEnvelope$$' -fuzztime=$(FUZZTIME) ./internal/crypto
	$(GO) test -run='^$$' -fuzz='^FuzzFileDecrypter$$' -fuzztime=$(FUZZTIME) ./internal/crypto
	$(GO) test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) ./internal/event
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeMessage$$' -fuzztime=$(FUZZTIME) ./internal/event
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeData$$' -fuzztime=$(FUZZTIME) ./internal/event

## bench: every component's benchmarks with allocation figures (about 10 minutes).
bench:
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) ./internal/crypto ./internal/event
	$(GO) test -run='^$$' -bench=VerifyDecryptParse -benchmem -cpu=1 -benchtime=$(BENCHTIME) ./internal/callback
	$(GO) test -run='^$$' -bench='EndToEnd|LatencyAt2000' -benchtime=20000x ./internal/callback
	$(GO) test -run='^$$' -bench='UserGet|UserListID|Callbacks|Seed' -benchmem -benchtime=$(BENCHTIME) ./internal/emulator
	$(GO) test -run='^$$' -bench=Export200k -benchmem -benchtime=1x ./internal/emulator
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=1x ./internal/wecom
	$(GO) test -run='^$$' -bench='ApplyBatch|ApplyNaive|Sync' -benchmem -benchtime=1x -timeout 30m ./internal/mirror
	$(GO) test -run='^$$' -bench=LaneThroughput -benchtime=1x -timeout 30m ./internal/worker
	$(GO) test -run='^$$' -bench='Validate50k|ExportIngest100k' -benchmem -benchtime=1x -timeout 30m ./internal/jobs

## bench-1m: the million-event and million-member memory benchmarks (long).
bench-1m:
	$(GO) test -run='^$$' -bench=LaneMemory -benchtime=1x -timeout 60m ./internal/worker
	WECOMSYNC_BENCH_1M=1 $(GO) test -run='^$$' -bench=ExportIngest1M -benchtime=1x -timeout 60m ./internal/jobs

## bench-e2e: the whole system (emulator → callback → JetStream → worker → Postgres) at 100/s,
## 1,000/s and flat out, with the callback-only and apply-only baselines of the same run.
bench-e2e: pg
	$(GO) test -run='^$$' -bench='^BenchmarkE2E$$' -benchmem -benchtime=1x -timeout=15m ./internal/e2ebench

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf $(BIN) .demo

pg:
	@scripts/ensure-postgres.sh

# The status page's browser test runs Debian's headless chromium.
chromium:
	@scripts/ensure-chromium.sh
