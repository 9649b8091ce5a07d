# flinkpki build targets. See README.md.
GO            ?= go
BIN           := bin/flinkpki
DATA_DIR      ?= ./flinkpki-data
TOOLS_BIN     := $(CURDIR)/.tools/bin
PROTOC_GEN_GO      := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC := google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
GOVULNCHECK        := golang.org/x/vuln/cmd/govulncheck@v1.9.0
# Renders the deploy/ kustomizations when there is no kubectl (the version
# built into kubectl 1.32; deploy/kustomize_test.go names it too).
KUSTOMIZE          := sigs.k8s.io/kustomize/kustomize/v5@v5.5.0
PROMTOOL           := github.com/prometheus/prometheus/cmd/promtool@v0.316.0
TEST_FLAGS    ?= -race -timeout 20m

export PATH := $(TOOLS_BIN):$(PATH)

.PHONY: build run test bench proto proto-check lint tools e2e-flink clean

## build: -buildvcs=auto overrides a GOFLAGS=-buildvcs=false in the environment, so that
## flinkpki version names the commit it was built from.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=auto -o $(BIN) ./cmd/flinkpki

## run: a dev server on the embedded bbolt store (127.0.0.1:7443).
run: build
	$(BIN) serve --dev --data-dir $(DATA_DIR)

## test: the whole suite with the race detector, plus short fuzzing runs.
test: build tools
	FLINKPKI_BIN=$(CURDIR)/$(BIN) $(GO) test $(TEST_FLAGS) ./...
	./scripts/fuzz-short.sh

## bench: Go micro-benchmarks and the bench enroll matrix against a server it starts.
bench: build
	./scripts/bench.sh

tools:
	@mkdir -p $(TOOLS_BIN)
	@test -x $(TOOLS_BIN)/protoc-gen-go || GOBIN=$(TOOLS_BIN) $(GO) install $(PROTOC_GEN_GO)
	@test -x $(TOOLS_BIN)/protoc-gen-go-grpc || GOBIN=$(TOOLS_BIN) $(GO) install $(PROTOC_GEN_GO_GRPC)
	@test -x $(TOOLS_BIN)/grpcurl || GOBIN=$(TOOLS_BIN) $(GO) install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.3
	@test -x $(TOOLS_BIN)/grpc-health-probe || GOBIN=$(TOOLS_BIN) $(GO) install github.com/grpc-ecosystem/grpc-health-probe@v0.4.62
	@command -v kubectl >/dev/null 2>&1 || test -x $(TOOLS_BIN)/kustomize || GOBIN=$(TOOLS_BIN) $(GO) install $(KUSTOMIZE)
	@# The alert rules' tests (deploy/promtool_test.go): about 5 minutes to build on 2 cores the first time.
	@test -x $(TOOLS_BIN)/promtool || GOBIN=$(TOOLS_BIN) $(GO) install $(PROMTOOL)

## proto: regenerate the committed gRPC code (needs protoc and its well-known types: apt-get install protobuf-compiler libprotobuf-dev).
proto: tools
	protoc -I proto --go_out=proto --go_opt=paths=source_relative \
		--go-grpc_out=proto --go-grpc_opt=paths=source_relative \
		proto/flinkpki/v1/flinkpki.proto

## proto-check: fails when the committed generated code is stale.
proto-check: proto
	git diff --exit-code -- proto/

lint:
	$(GO) vet ./...
	@# The Flink interop driver sits behind a build tag: vet it, and build it without its tests.
	$(GO) vet -tags flinke2e ./interop/flink/e2e
	$(GO) build -tags flinke2e -o /dev/null ./interop/flink/e2e
	@test -z "$$(gofmt -l $$(git ls-files '*.go' | grep -v '^proto/'))" || (gofmt -l $$(git ls-files '*.go' | grep -v '^proto/'); exit 1)
	@test -x $(TOOLS_BIN)/govulncheck || GOBIN=$(TOOLS_BIN) $(GO) install $(GOVULNCHECK)
	@# Reported, not fatal: it needs the vulnerability database, which may be unreachable.
	-timeout 120 $(TOOLS_BIN)/govulncheck ./...

e2e-flink: build
	./interop/flink/run.sh

clean:
	rm -rf bin .tools
