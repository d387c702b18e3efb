# sequencer-operator — kubebuilder-style targets. `make help` lists them.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

K8S_VERSION ?= v1.37.2
K8S_BIN ?= $(CURDIR)/bin/k8s/$(K8S_VERSION)
TOOLS_BIN ?= $(CURDIR)/bin/tools
CONTROLLER_GEN ?= $(TOOLS_BIN)/controller-gen
CONTROLLER_GEN_VERSION ?= v0.23.0
HELM ?= $(TOOLS_BIN)/helm
HELM_VERSION ?= v3.22.0
GO_TEST_FLAGS ?= -count=1
export KUBEBUILDER_ASSETS := $(K8S_BIN)

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  %-18s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: generate
generate: ## Regenerate protobuf Go code and deepcopy functions.
	GOBIN=$(TOOLS_BIN) hack/gen-proto.sh
	@if [ -d api ]; then $(MAKE) --no-print-directory $(CONTROLLER_GEN) && $(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."; fi

.PHONY: manifests
manifests: ## Regenerate the CRD and RBAC manifests from markers.
	@if [ -d api ]; then $(MAKE) --no-print-directory $(CONTROLLER_GEN) && $(CONTROLLER_GEN) rbac:roleName=manager-role crd webhook paths="./api/...;./controllers/...;./cmd/manager/..." output:crd:artifacts:config=config/crd/bases; fi
	@if [ -d api ]; then hack/sync-chart.sh; fi

KUBECTL ?= $(K8S_BIN)/kubectl

.PHONY: install
install: manifests ## Install the SequencerCluster CRD into the cluster of the current kubeconfig.
	$(KUBECTL) apply --server-side -k config/crd

.PHONY: uninstall
uninstall: manifests ## Remove the SequencerCluster CRD (and with it every SequencerCluster).
	$(KUBECTL) delete --ignore-not-found -k config/crd

.PHONY: deploy
deploy: manifests ## Install the operator (CRD, RBAC, Deployment) with kustomize from config/default into the current kubeconfig's cluster.
	$(KUBECTL) apply --server-side -k config/default

.PHONY: undeploy
undeploy: ## Remove what make deploy installed (the CRD too, and with it every SequencerCluster).
	$(KUBECTL) delete --ignore-not-found -k config/default

.PHONY: run
run: manifests ## Run the operator from source against the cluster of the current kubeconfig.
	go run ./cmd/manager --metrics-bind-address=:8082 --health-probe-bind-address=:8083

.PHONY: fmt
fmt: ## Run gofmt on the module.
	gofmt -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: verify
verify: ## Fail when generated files are stale, go.mod is untidy or code is unformatted.
	hack/verify.sh

.PHONY: verify-chart
verify-chart: $(HELM) ## Lint and render the Helm chart; fail when it drifted from config/ or cmd/manager's flags.
	HELM=$(HELM) hack/verify-chart.sh

.PHONY: test
test: k8s-bins build ## Run all tests (unit, component, envtest; root-only tests run when root).
	go test $(GO_TEST_FLAGS) ./...

E2E_FLAGS ?=
.PHONY: test-e2e
test-e2e: k8s-bins build $(HELM) ## Run the e2e suite (root): local control plane, operator via Helm, real nodes. E2E_FLAGS='-ginkgo.label-filter=failover'
	go test -tags e2e -count=1 -timeout 40m -v ./test/e2e/ -ginkgo.v $(E2E_FLAGS)

.PHONY: bench
bench: k8s-bins build $(HELM) ## Full benchmarks (node: failover, switchover, commit path, encoding; operator on the local control plane, root): table, docs/benchmarks.md, plots, raw JSON.
	go build -o bin/seqbench ./cmd/seqbench
	bin/seqbench all --full --out docs/benchmarks.md --json docs/benchmarks/results.json

BENCH_QUICK_OUT ?= _output/bench
.PHONY: bench-quick
bench-quick: k8s-bins build $(HELM) ## A smaller benchmark run (under five minutes, root for the operator part); report and JSON in $(BENCH_QUICK_OUT).
	@mkdir -p $(BENCH_QUICK_OUT)
	go build -o bin/seqbench ./cmd/seqbench
	bin/seqbench all --quick --out $(BENCH_QUICK_OUT)/benchmarks.md --json $(BENCH_QUICK_OUT)/results.json

.PHONY: bench-go
bench-go: ## Run the Go benchmarks.
	go test -run '^$$' -bench . -benchmem ./pkg/...

##@ Robustness

CHAOS_SEED ?= $(shell date +%s)
CHAOS_FAULTS ?= 100
CHAOS_NODES ?= 3
CHAOS_OUT ?= _output/chaos
.PHONY: chaos
chaos: ## Fault campaign: real nodes in network namespaces under load, >=100 seeded faults (root); prints the seed and the report.
	@mkdir -p bin $(CHAOS_OUT)
	go build -o bin/node ./cmd/node
	go build -o bin/seqchaos ./cmd/seqchaos
	bin/seqchaos --seed $(CHAOS_SEED) --faults $(CHAOS_FAULTS) --nodes $(CHAOS_NODES) --bin bin/node --dir $(CHAOS_OUT)/run --out $(CHAOS_OUT)/report.md --json $(CHAOS_OUT)/report.json

.PHONY: chaos-quick
chaos-quick: ## CI-sized fault campaign (20 faults, about three minutes, root).
	@$(MAKE) --no-print-directory chaos CHAOS_FAULTS=20

# Fuzz targets as package:Target; `go test -fuzz` runs one target at a time.
FUZZ_TARGETS ?= ./pkg/chain:FuzzRaftEntry ./pkg/chain:FuzzUnmarshalBlock ./pkg/chain:FuzzRestore ./pkg/raft:FuzzFSMApply ./pkg/nodeapi:FuzzServerRequest
FUZZTIME ?= 10m
FUZZ_PARALLEL ?= 0
.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 10m); findings land in the package's testdata/fuzz.
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; name=$${t##*:}; \
		echo "=== fuzz $$name in $$pkg for $(FUZZTIME)"; \
		go test $$pkg -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$( [ "$(FUZZ_PARALLEL)" != 0 ] && echo -parallel $(FUZZ_PARALLEL) ) || exit 1; \
	done

.PHONY: fuzz-quick
fuzz-quick: ## Run every fuzz target for 15s.
	@$(MAKE) --no-print-directory fuzz FUZZTIME=15s

##@ Build

.PHONY: build
build: ## Build bin/node (and the other binaries as they exist).
	@mkdir -p bin
	go build -o bin/node ./cmd/node
	@for c in manager kubectl-sequencer localcluster; do if [ -d cmd/$$c ]; then echo "go build -o bin/$$c ./cmd/$$c"; go build -o bin/$$c ./cmd/$$c; fi; done

.PHONY: demo
demo: ## The main job: local control plane + operator (Helm) + a 3-node SequencerCluster, then kubectl get.
	hack/demo.sh

DEMO_DIR ?= $(CURDIR)/_output/demo
.PHONY: demo-down
demo-down: ## Stop the demo's local cluster (its data stays in _output/demo).
	@if [ -x bin/localcluster ]; then bin/localcluster down --data-dir $(DEMO_DIR); fi

.PHONY: run-cluster
run-cluster: build ## Run a local three-node sequencer cluster on loopback (Ctrl-C stops it).
	hack/run-cluster.sh

.PHONY: k8s-bins
k8s-bins: ## Build kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and etcd from source into bin/k8s.
	K8S_BIN_DIR=$(K8S_BIN) hack/build-k8s.sh

.PHONY: localcluster
localcluster: ## Build bin/localcluster (local control plane + process kubelet).
	go build -o bin/localcluster ./cmd/localcluster

.PHONY: test-localcluster
test-localcluster: k8s-bins build localcluster ## Local-cluster tests alone (root; make test runs them too).
	go test -count=1 -timeout 10m -v ./internal/localcluster/...

.PHONY: localcluster-up localcluster-down
localcluster-up: k8s-bins build localcluster ## Start a bare local cluster in _output/localcluster (root).
	bin/localcluster up --data-dir $(CURDIR)/_output/localcluster

localcluster-down: ## Stop the bare local cluster.
	bin/localcluster down --data-dir $(CURDIR)/_output/localcluster

##@ Tools

$(CONTROLLER_GEN):
	GOBIN=$(TOOLS_BIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)

$(HELM):
	GOBIN=$(TOOLS_BIN) go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
