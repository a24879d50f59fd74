# castd — build, run and test. `make run` starts castd on its embedded
# default; `make test` runs every test. See README.md.

GO        ?= go
BIN       ?= bin
PREFIX    ?= /usr/local
GOBIN_DIR := $(shell $(GO) env GOPATH)/bin
STATICCHECK ?= $(GOBIN_DIR)/staticcheck
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)

# A count, not a duration: with a duration Go's fuzzing coordinator can fail
# a loaded run at the deadline with a bare "context deadline exceeded" and no
# crasher (golang/go#75804); a count has no deadline to race.
FUZZTIME  ?= 8000x

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
# smoke run; cap it (as a count too) so the time goes to fresh inputs.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 50x ./pkg/policy

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

## proto: regenerate api/castd/v1 and api/build/buildgrid (needs protoc,
## protoc-gen-go, protoc-gen-go-grpc). local_cas.proto (vendored unchanged from
## BuildStream, see api/build/buildgrid/README.md) imports REAPI, found in the
## remote-apis Go module, and google/api, google/longrunning and google/rpc:
## GOOGLEAPIS names a directory holding those (a googleapis checkout, or
## BuildStream's src/buildstream/_protos). Its Go package is set here so that
## the vendored file stays as it came.
REAPI_PROTOS ?= $(shell $(GO) list -m -f '{{.Dir}}' github.com/bazelbuild/remote-apis)
GOOGLEAPIS   ?=
LOCALCAS_GO  := Mbuild/buildgrid/local_cas.proto=github.com/castd/castd/api/build/buildgrid;localcaspb
proto:
	protoc -I api --go_out=. --go_opt=module=github.com/castd/castd \
	  --go-grpc_out=. --go-grpc_opt=module=github.com/castd/castd api/castd/v1/control.proto
	@test -n "$(GOOGLEAPIS)" || { echo "make proto: set GOOGLEAPIS to a directory holding google/api, google/longrunning and google/rpc .proto files"; exit 1; }
	protoc -I api -I $(REAPI_PROTOS) -I $(GOOGLEAPIS) \
	  --go_out=. --go_opt=module=github.com/castd/castd --go_opt='$(LOCALCAS_GO)' \
	  --go-grpc_out=. --go-grpc_opt=module=github.com/castd/castd --go-grpc_opt='$(LOCALCAS_GO)' \
	  build/buildgrid/local_cas.proto

## install: castd and bst (and buildbox-casd and buildbox-run, links to castd
## that BuildStream 2 starts as its local CAS daemon and sandbox runner) to $(PREFIX)/bin and the CI-sidecar system units
## (castd-sidecar.service/.socket) to $(SYSTEMD_SYSTEM_DIR), under $(DESTDIR).
## Run as root. See README.md, "CI sidecar".
## install-user: castd, bst and the buildbox-casd and buildbox-run links to ~/.local/bin and the user units
## (castd.service/.socket) to $(XDG_CONFIG_HOME)/systemd/user (~/.config when
## unset), under $(DESTDIR) for a trial or staged install. See README.md, "Workstation".
## uninstall: reverses both (uninstall-user, then uninstall-system).
SYSTEMD_SYSTEM_DIR ?= /etc/systemd/system
# systemd reads user units from $XDG_CONFIG_HOME/systemd/user; castd.service
# starts %h/.local/bin/castd, so the binaries stay there.
USER_CONFIG_DIR := $(or $(XDG_CONFIG_HOME),$(HOME)/.config)
USER_DATA_DIR   := $(or $(XDG_DATA_HOME),$(HOME)/.local/share)
USER_BIN_DIR  := $(DESTDIR)$(HOME)/.local/bin
USER_UNIT_DIR := $(DESTDIR)$(USER_CONFIG_DIR)/systemd/user
USER_DOC_DIR  := $(DESTDIR)$(USER_DATA_DIR)/doc/castd

.PHONY: install install-user uninstall uninstall-user uninstall-system

install: build
	install -D -m 0755 $(BIN)/castd $(DESTDIR)$(PREFIX)/bin/castd
	install -D -m 0755 $(BIN)/bst $(DESTDIR)$(PREFIX)/bin/bst
	ln -sf castd $(DESTDIR)$(PREFIX)/bin/buildbox-casd
	ln -sf castd $(DESTDIR)$(PREFIX)/bin/buildbox-run
	install -D -m 0644 deploy/systemd/castd-sidecar.service $(DESTDIR)$(SYSTEMD_SYSTEM_DIR)/castd-sidecar.service
	sed -i 's|^ExecStart=/usr/local/bin/castd |ExecStart=$(PREFIX)/bin/castd |' $(DESTDIR)$(SYSTEMD_SYSTEM_DIR)/castd-sidecar.service
	install -D -m 0644 deploy/systemd/castd-sidecar.socket $(DESTDIR)$(SYSTEMD_SYSTEM_DIR)/castd-sidecar.socket
	@echo "Next (see README.md, CI sidecar): create the castd user and group and /etc/castd/castd.yaml, then"
	@echo "  systemctl daemon-reload && systemctl enable --now castd-sidecar.socket"

install-user: build
	install -D -m 0755 $(BIN)/castd $(USER_BIN_DIR)/castd
	install -D -m 0755 $(BIN)/bst $(USER_BIN_DIR)/bst
	ln -sf castd $(USER_BIN_DIR)/buildbox-casd
	ln -sf castd $(USER_BIN_DIR)/buildbox-run
	install -D -m 0644 deploy/systemd/castd.service $(USER_UNIT_DIR)/castd.service
	install -D -m 0644 deploy/systemd/castd.socket $(USER_UNIT_DIR)/castd.socket
	if [ -f README.md ]; then install -D -m 0644 README.md $(USER_DOC_DIR)/README.md; fi
	@echo "Now run:"
	@echo "  systemctl --user daemon-reload && systemctl --user enable --now castd.socket"

uninstall: uninstall-user uninstall-system

uninstall-user:
	rm -f $(USER_BIN_DIR)/castd $(USER_BIN_DIR)/bst $(USER_BIN_DIR)/buildbox-casd $(USER_BIN_DIR)/buildbox-run $(USER_UNIT_DIR)/castd.service $(USER_UNIT_DIR)/castd.socket $(USER_DOC_DIR)/README.md
	@echo "If the units were enabled: systemctl --user disable --now castd.socket castd.service && systemctl --user daemon-reload"

uninstall-system:
	rm -f $(DESTDIR)$(PREFIX)/bin/castd $(DESTDIR)$(PREFIX)/bin/bst $(DESTDIR)$(PREFIX)/bin/buildbox-casd $(DESTDIR)$(PREFIX)/bin/buildbox-run \
	  $(DESTDIR)$(SYSTEMD_SYSTEM_DIR)/castd-sidecar.service $(DESTDIR)$(SYSTEMD_SYSTEM_DIR)/castd-sidecar.socket
	@echo "If the units were enabled: systemctl disable --now castd-sidecar.socket castd-sidecar.service && systemctl daemon-reload"
