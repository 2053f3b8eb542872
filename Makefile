# fakecontainerd. `make run` serves on a socket under the checkout with the
# embedded default config; `make test` is what CI runs.
GO      ?= go
BIN     := bin/fakecontainerd
RUN_DIR := $(CURDIR)/.run
SOCK    := $(RUN_DIR)/fakecontainerd.sock
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/fakecontainerd/fakecontainerd/server.Version=$(VERSION)

.PHONY: all build run test vet unit clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/fakecontainerd

run: build
	@mkdir -p $(RUN_DIR)
	@echo "fakecontainerd: CRI socket $(SOCK)"
	@echo "  crictl --runtime-endpoint unix://$(SOCK) --image-endpoint unix://$(SOCK) version"
	$(BIN) serve --address $(SOCK) --root $(RUN_DIR)/root --state $(RUN_DIR)/state

vet:
	$(GO) vet ./...

# The whole suite, race detector on: unit tests, the incident tests (run on
# the project clock at a small time scale) and the e2e suite against the
# built binary.
test: vet
	$(GO) test -race -count=1 -timeout 20m ./...

clean:
	rm -rf bin $(RUN_DIR)
