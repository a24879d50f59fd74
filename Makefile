# castd — build, run and test. `make run` starts castd on its embedded
# default; `make test` runs every test. See README.md.

GO        ?= go
BIN       ?= bin
PREFIX    ?= /usr/local
GOBIN_DIR := $(shell $(GO) env GOPATH)/bin
STATICCHECK ?= $(GOBIN_DIR)/staticcheck
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)

FUZZTIME  ?= 10s

.PHONY: all build run test test-unit test-race test-integration fuzz bench lint vet staticcheck fmt clean

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/castd ./cmd/castd
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/bst ./cmd/bst

## run: start castd with its embedded default configuration (local store only).
run: build
	$(BIN)/castd serve

## test: the whole suite under the race detector — unit tests, integration
## tests that start real castd processes (built with -race too), and a fuzz
## smoke run of the config loader.
test: test-race fuzz

test-unit:
	$(GO) test ./...

test-race:
	$(GO) test -race -count=1 -timeout 30m ./...

test-integration:
	$(GO) test -count=1 -timeout 20m ./test/...

# Minimising each new input may take 60 s by default, which would eat the whole
# smoke run; cap it so the time goes to fresh inputs.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 2s ./pkg/policy

## bench: the benchmarks recorded in BENCHMARKS.md.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s ./pkg/...

lint: vet staticcheck

vet:
	$(GO) vet ./...

staticcheck:
	@test -x $(STATICCHECK) || $(GO) install honnef.co/go/tools/cmd/staticcheck@latest
	$(STATICCHECK) ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN)

## proto: regenerate api/castd/v1 (needs protoc, protoc-gen-go, protoc-gen-go-grpc).
proto:
	protoc -I api --go_out=. --go_opt=module=github.com/castd/castd \
	  --go-grpc_out=. --go-grpc_opt=module=github.com/castd/castd api/castd/v1/control.proto
