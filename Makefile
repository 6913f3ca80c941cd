# berth's build entry points. The README names two of them: `make up` (berth
# on the embedded sandbox) and `make check` (every gate, tests included);
# .ci/run calls `make check`.

GO                     ?= go
BIN                    := $(CURDIR)/bin
GOLANGCI_LINT_VERSION  := v2.15.0
GOLANGCI_LINT          := $(BIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
CONTROLLER_GEN_VERSION := v0.23.0
CONTROLLER_GEN         := $(BIN)/controller-gen-$(CONTROLLER_GEN_VERSION)

.PHONY: all build up down bench generate generated test fmt vet lint check clean

all: build

# The image scanner inflates gzip layers with Intel ISA-L (-tags isal, cgo)
# when libisal is installed (Debian: libisal-dev, which .ci/run installs),
# else with pure Go; docs/scan.md has the figures. The binary then needs
# libisal2 where it runs; `make build BUILD_TAGS=` builds pure Go.
BUILD_TAGS ?= $(shell { pkg-config --exists libisal || test -f /usr/include/isa-l/igzip_lib.h; } 2>/dev/null && echo isal)

## build: compile bin/berth and bin/berth-scan, the scanner alone for CI
## images (with ISA-L's inflater when libisal is installed)
build:
	$(GO) build $(if $(BUILD_TAGS),-tags $(BUILD_TAGS)) -o $(BIN)/berth ./cmd/berth
	$(GO) build $(if $(BUILD_TAGS),-tags $(BUILD_TAGS)) -o $(BIN)/berth-scan ./cmd/berth-scan

## up: berth end to end here: sandbox, Git server with examples/, agent, Applications
up: build
	$(BIN)/berth up

## down: stop everything `make up` started
down: build
	$(BIN)/berth down

## bench: agent benchmark on fresh sandboxes (APPS="100,500,1000")
bench: build
	$(BIN)/berth bench --apps $(or $(APPS),100,500,1000)

## generate: deepcopy and CRDs from api/ (controller-gen)
generate: $(CONTROLLER_GEN)
	$(CONTROLLER_GEN) object paths=./api/...
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=config/crd

$(CONTROLLER_GEN):
	@mkdir -p $(BIN)
	GOBIN=$(BIN)/.cg-$(CONTROLLER_GEN_VERSION) $(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)
	mv $(BIN)/.cg-$(CONTROLLER_GEN_VERSION)/controller-gen $@

## test: all tests against one shared sandbox (ARGS="-run TestX" to focus),
## and the ISA-L inflater's tests when it is built
test:
	scripts/test.sh $(ARGS)
ifneq ($(BUILD_TAGS),)
	$(GO) test -count=1 -tags $(BUILD_TAGS) ./internal/oci/...
endif

## fmt: fail if any Go file is not gofmt-clean
fmt:
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

## vet: go vet
vet:
	$(GO) vet ./...

## lint: golangci-lint with .golangci.yml (installed into bin/ on first use)
lint: $(GOLANGCI_LINT)
	$(GOLANGCI_LINT) run ./...
ifneq ($(BUILD_TAGS),)
	$(GOLANGCI_LINT) run --build-tags $(BUILD_TAGS) ./internal/oci/...
endif

$(GOLANGCI_LINT):
	@mkdir -p $(BIN)
	GOBIN=$(BIN)/.lint-$(GOLANGCI_LINT_VERSION) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(BIN)/.lint-$(GOLANGCI_LINT_VERSION)/golangci-lint $@

## generated: fail if api/'s generated deepcopy or CRDs are out of date
generated: generate
	@git diff --exit-code --stat -- api config/crd || { echo "run make generate and commit the result"; exit 1; }

## check: fmt, vet, lint, generated files, then the tests
check: fmt vet lint generated test

clean:
	rm -rf $(BIN)
