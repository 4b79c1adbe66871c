# Metacircular build, test and run targets. `make up` runs the platform,
# `make test` runs every test; both install what they need first.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
GOLANGCI_LINT_VERSION := v2.15.0
BIN := $(CURDIR)/bin
TOOLS := $(CURDIR)/.bin
ROOT ?= $(CURDIR)/srv

export CGO_ENABLED := 0

# Every main package under a cmd/ directory is a platform binary.
CMDS = $(shell go list -f '{{if eq .Name "main"}}{{.ImportPath}}{{end}}' ./... | grep '/cmd/')

.PHONY: all build test race vet lint proto proto-check up bench deps-run deps-test fuzz clean

all: vet lint test build

build:
	@mkdir -p $(BIN)
	go build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/ $(CMDS)

deps-run:
	@scripts/deps.sh run

deps-test:
	@scripts/deps.sh test

# Runs the platform in the foreground; Ctrl-C stops it cleanly.
up: deps-run build
	$(BIN)/metacircular up --root $(ROOT) --bin-dir $(BIN)

# Every test runs twice: as built for production (CGO_ENABLED=0), then
# under the race detector, which needs cgo for that run only. End-to-end
# tests that only drive built binaries (test/e2e, mcp/e2e, and the
# launcher's, cmd/metacircular) run once: their race coverage is the
# packages' own tests.
RACE_PKGS = $(shell go list ./... | grep -v -e '^git.metacircular.net/metacircular/test/e2e$$' -e '^git.metacircular.net/metacircular/mcp/e2e$$' \
	-e '^git.metacircular.net/metacircular/cmd/metacircular$$')

test: deps-test proto-check
	METACIRCULAR_REQUIRE_TOOLS=1 go test -count=1 -timeout 25m ./...
	CGO_ENABLED=1 METACIRCULAR_REQUIRE_TOOLS=1 go test -race -count=1 -timeout 25m $(RACE_PKGS)

vet:
	go vet ./...

$(TOOLS)/golangci-lint-$(GOLANGCI_LINT_VERSION).stamp:
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) CGO_ENABLED=0 go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	@touch $@

lint: $(TOOLS)/golangci-lint-$(GOLANGCI_LINT_VERSION).stamp
	$(TOOLS)/golangci-lint run ./...

proto:
	scripts/proto.sh gen

proto-check:
	scripts/proto.sh check

# Short coverage-guided runs of every fuzz target (the seed corpora already
# run as part of `make test`).
FUZZTIME ?= 30s
fuzz:
	@for pkg in $$(go list ./...); do \
		for f in $$(go test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "== $$pkg $$f"; go test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) $$pkg; \
		done; \
	done

# Every benchmark against its peers, then bench/results/SUMMARY.md
# (latest ratio per figure against its target) regenerated.
bench:
	bench/run.sh
	go run ./bench/summary

clean:
	rm -rf $(BIN)
