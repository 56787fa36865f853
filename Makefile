# netintent Makefile. Tools are pinned and built into ./bin from the Go module
# proxy; the test control plane is built from hack/envtest (see README).

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

LOCALBIN ?= $(CURDIR)/bin
K8S_BIN ?= $(LOCALBIN)/k8s
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
CONTROLLER_TOOLS_VERSION ?= v0.23.0
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)/golangci-lint
GOLANGCI_LINT_VERSION ?= v2.15.0
COREDNS_VERSION ?= v1.14.7
COREDNS ?= $(LOCALBIN)/coredns-$(COREDNS_VERSION)/coredns
KUBECTL ?= $(K8S_BIN)/kubectl
IMG ?= netintent:latest
IMAGE_DIR ?= $(LOCALBIN)/image
IMAGE_PLATFORMS ?= linux/amd64,linux/arm64
ARGS ?=
FUZZTIME ?= 20s
BENCH_ARGS ?=
# Packages with envtest suites share 2 cores; run them one after another.
TEST_P ?= 1

export KUBEBUILDER_ASSETS := $(K8S_BIN)
# The DNS parity tests run this CoreDNS.
export COREDNS

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-15s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate CRDs and RBAC from markers.
	$(CONTROLLER_GEN) rbac:roleName=netintent-manager crd paths="./..." output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac

.PHONY: generate
generate: controller-gen ## Generate deepcopy code.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: fmt
fmt: ## Run gofmt on the code.
	gofmt -l -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: lint
lint: golangci-lint ## Run golangci-lint with .golangci.yml.
	$(GOLANGCI_LINT) run ./...

.PHONY: verify
verify: manifests generate ## Check that generated files are committed and up to date, and code is gofmt clean.
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed on:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	@git diff --exit-code -- api config || { echo "generated files are out of date: run make manifests generate and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- api config)" || { git status --porcelain -- api config; echo "generated files are not committed"; exit 1; }
	@echo "generated files up to date"

.PHONY: test
test: envtest coredns manifests generate vet lint ## Run lint, the unit and envtest suites, the DNS fuzz target for FUZZTIME, then the end-to-end suites. Without root the tests that need it skip, saying why.
	go test -p $(TEST_P) -count=1 -timeout 20m . ./api/... ./controllers/... ./dnsserver/... ./internal/... ./hack/image/...
	$(MAKE) fuzz
	$(MAKE) test-e2e

.PHONY: fuzz
fuzz: ## Run the DNS message fuzz target for FUZZTIME (default 20s).
	@if ls dnsserver/*fuzz*_test.go >/dev/null 2>&1; then go test ./dnsserver -run '^$$' -fuzz '^FuzzServeDNS$$' -fuzztime $(FUZZTIME); else echo "no fuzz target yet"; fi

.PHONY: test-e2e
test-e2e: envtest manifests build image ## Run the end-to-end suites: the built binary and kustomize install against a local control plane, the image under runc (root), then traffic through kube-proxy (root).
	go test -count=1 -v ./test/e2e/...
	$(MAKE) test-dataplane

.PHONY: test-dataplane
test-dataplane: envtest manifests build ## Run the dataplane suite (root, nftables, iptables): traffic through kube-proxy in both modes to health-checked backends.
	go test -count=1 -v -timeout 10m ./test/dataplane/...

.PHONY: bench
bench: envtest coredns build dnsperf ## Measure DNS against CoreDNS, convergence and memory on a local control plane; prints a table and writes it under bench/ (a few minutes). BENCH_ARGS='...' passes flags.
	go run ./test/bench $(BENCH_ARGS)

.PHONY: bench-go
bench-go: envtest ## Run the Go microbenchmarks (test/bench's are make bench's).
	go test -run '^$$' -bench . -benchmem $$(go list ./... | grep -v /test/)

##@ Build

.PHONY: build
build: ## Build the operator binary into bin/.
	CGO_ENABLED=0 go build -o $(LOCALBIN)/netintent .
	go build -o $(LOCALBIN)/netintent-local ./hack/local

.PHONY: run
run: envtest manifests build ## Run the operator: against KUBECONFIG if set, else on a local control plane. ARGS='...' passes flags.
	$(LOCALBIN)/netintent-local -- $(ARGS)

.PHONY: run-node
run-node: envtest manifests build ## Like run, plus a node on this machine (root): kube-proxy in nftables mode and two backends; prints how to send traffic through a Service.
	$(LOCALBIN)/netintent-local -node -- $(ARGS)

.PHONY: image
image: ## Build the operator image for IMAGE_PLATFORMS with no Docker engine: an OCI layout in bin/image/oci and the same in one file, bin/image/netintent.tar.
	go run ./hack/image -out $(IMAGE_DIR) -platforms $(IMAGE_PLATFORMS)

.PHONY: image-push
image-push: ## Build the image and push it to IMG (registry/repository:tag), with the credentials of ~/.docker/config.json.
	@test "$(IMG)" != netintent:latest || { echo "set IMG to a registry reference, e.g. make image-push IMG=registry.example.com/netintent:v0.1.0"; exit 1; }
	$(MAKE) image
	go run ./hack/image -out $(IMAGE_DIR) -push $(IMG)

.PHONY: docker-build
docker-build: ## Build the container image IMG from the Dockerfile, with a Docker engine.
	docker build -t $(IMG) .

##@ Deployment

.PHONY: install
install: envtest manifests ## Install the CRDs into the cluster of the current kubeconfig.
	$(KUBECTL) apply --server-side -k config/crd

.PHONY: uninstall
uninstall: envtest manifests ## Remove the CRDs (and every intent and pool) from the cluster.
	$(KUBECTL) delete --ignore-not-found -k config/crd

.PHONY: deploy
deploy: envtest manifests ## Deploy the operator with kustomize (image IMG).
	$(KUBECTL) kustomize config/default | sed 's|image: netintent:latest|image: $(IMG)|' | $(KUBECTL) apply --server-side -f -

.PHONY: undeploy
undeploy: envtest ## Remove the operator from the cluster.
	@# --wait=false: a control plane without a namespace controller (make run's) never finalizes the namespace.
	$(KUBECTL) delete --ignore-not-found --wait=false -k config/default

##@ Tools

.PHONY: envtest
envtest: ## Build kube-apiserver, etcd, kubectl and kube-proxy v1.37.2 into bin/k8s (once) and print the folder for KUBEBUILDER_ASSETS.
	@hack/build-envtest.sh $(K8S_BIN)

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Build controller-gen into bin/.
$(CONTROLLER_GEN):
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT) ## Build golangci-lint into bin/ once.
$(GOLANGCI_LINT):
	GOBIN=$(dir $(GOLANGCI_LINT)) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

.PHONY: dnsperf
dnsperf: ## Install dnsperf and taskset from Debian's packages if missing (root).
	@command -v dnsperf >/dev/null && command -v taskset >/dev/null || { apt-get update && apt-get install -y dnsperf util-linux; }

.PHONY: coredns
coredns: $(COREDNS) ## Build CoreDNS (the DNS parity tests' reference server) into bin/ once.
$(COREDNS):
	GOBIN=$(dir $(COREDNS)) go install github.com/coredns/coredns@$(COREDNS_VERSION)
