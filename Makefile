# berth's build entry points. The README names two of them: `make up` (berth
# on the embedded sandbox) and `make check` (every gate, tests included);
# .ci/run calls `make check`.

GO                     ?= go
BIN                    := $(CURDIR)/bin
GOLANGCI_LINT_VERSION  := v2.15.0
GOLANGCI_LINT          := $(BIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)

.PHONY: all build up down test fmt vet lint check clean

all: build

## build: compile bin/berth
build:
	$(GO) build -o $(BIN)/berth ./cmd/berth

## up: start the local Kubernetes sandbox (compiles it on first use)
up: build
	$(BIN)/berth sandbox up

## down: stop the sandbox started by `make up`
down: build
	$(BIN)/berth sandbox down

## test: all tests against one shared sandbox (ARGS="-run TestX" to focus)
test:
	scripts/test.sh $(ARGS)

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

$(GOLANGCI_LINT):
	@mkdir -p $(BIN)
	GOBIN=$(BIN)/.lint-$(GOLANGCI_LINT_VERSION) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(BIN)/.lint-$(GOLANGCI_LINT_VERSION)/golangci-lint $@

## check: fmt, vet, lint, then the tests
check: fmt vet lint test

clean:
	rm -rf $(BIN)
