# ferry: build, test and try it out.
#
#   make demo    walk through keys, bundles, signatures, a device, a mirror, a stick
#                and a fleet whose canary fails: the rollout pauses by itself
#   make test    the whole test suite (what CI runs)
#
# Other targets: build, lint, cross, bench, clean.

GO         ?= go
BIN        := bin
# -timeout bounds a hung test; the whole suite normally takes a few minutes,
# examples/qemu (real boots under TCG, x86_64 and arm64) the longest.
TESTFLAGS  ?= -timeout 30m
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

# The device agent is built once cmd/ferry-agent holds Go files.
AGENT_SRC  := $(wildcard cmd/ferry-agent/*.go)
# cross builds what runs on devices: the agent, or ferry until it exists.
CROSS_PKG  := $(if $(AGENT_SRC),./cmd/ferry-agent,./cmd/ferry)
CROSS_NAME := $(notdir $(CROSS_PKG))

.PHONY: all build test demo bench lint cross clean

all: build

build:
	$(GO) build -o $(BIN)/ferry ./cmd/ferry
ifneq ($(AGENT_SRC),)
	$(GO) build -o $(BIN)/ferry-agent ./cmd/ferry-agent
endif

test:
	$(GO) test $(TESTFLAGS) ./...

demo:
	bash scripts/demo.sh

bench:
	@test -f scripts/bench.sh || { echo "make bench: scripts/bench.sh does not exist yet" >&2; exit 1; }
	bash scripts/bench.sh
	bash scripts/bench-agent.sh
	bash scripts/bench-mirror.sh
	bash scripts/bench-media.sh
	bash scripts/bench-delta.sh
	bash scripts/bench-fleet.sh

lint:
	@unformatted=$$(gofmt -l .); \
	if [ -n "$$unformatted" ]; then \
		echo "gofmt would change these files (run gofmt -w on them):" >&2; \
		echo "$$unformatted" >&2; \
		exit 1; \
	fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

cross:
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) build -o $(BIN)/$(CROSS_NAME)-linux-armv7 $(CROSS_PKG)
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -o $(BIN)/$(CROSS_NAME)-linux-arm64 $(CROSS_PKG)
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -o $(BIN)/$(CROSS_NAME)-linux-amd64 $(CROSS_PKG)

clean:
	rm -rf $(BIN) .demo
