# shard-operator: the commands a developer and CI use. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
KUBECONFIG_LOCAL := $(CURDIR)/.cluster/kubeconfig
NAMESPACE ?= shard-demo
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: help venv tools testtools test-deps images node-deps cluster-up cluster-down cluster-status lint test test-unit demo demo-down \
        operator-run bench reliability clean manifests helm-lint test-deploy

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(BIN)/.installed: pyproject.toml cluster/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet -e ./cluster  # after: it owns bin/localcluster now
	@touch $@

venv: $(BIN)/.installed ## Create .venv with the project and its dev tools installed

tools: ## Build (or check the cache of) the control plane binaries and the storage provisioner
	@bash cluster/build-tools.sh >/dev/null
	@bash cluster/build-tools.sh storage >/dev/null

images: venv ## Build shard-server, shard-operator and pause images into .images/ (no Docker)
	@PYTHON=$(BIN)/python bash images/build.sh || { [ "$$CI" != true ] && \
	  echo "images: not built; the real node will not start (KWOK nodes only)" >&2; }

node-deps: ## Install the real node's Debian packages (containerd, runc, CNI, image tools)
	@bash hack/node-deps.sh

test-deps: ## Install the Debian packages tests need beyond node-deps (Lua for the Argo CD check)
	@bash hack/test-deps.sh

testtools: ## Build (or check the cache of) kstatus, promtool and the Prometheus Operator CRDs
	@bash cluster/build-testtools.sh >/dev/null

cluster-up: venv node-deps images ## Start the local control plane and the real node (no-op if it runs)
	$(BIN)/localcluster up

cluster-down: ## Stop the local control plane and remove its data
	@if [ -x $(BIN)/localcluster ]; then $(BIN)/localcluster down; else rm -rf .cluster; fi

cluster-status: venv ## Health of each control plane component
	$(BIN)/localcluster status

lint: venv ## ruff over the code and tests, then mypy over the package and localcluster
	$(BIN)/ruff check operator cluster tests bench
	$(BIN)/mypy

test-unit: venv ## Fast tests that need no cluster
	$(BIN)/pytest -m "not cluster" $(PYTEST_ARGS)

test: venv lint test-deps cluster-up ## The whole suite, on the local control plane (fault suite: make reliability)
	KUBECONFIG=$(KUBECONFIG_LOCAL) $(BIN)/pytest -m "not reliability and not slow" $(PYTEST_ARGS)

RELIABILITY_REPORT ?= /tmp/shard-operator-reliability.jsonl

reliability: venv cluster-up ## The fault suite and bad-input corpus, with figures (docs/reliability.md)
	@rm -f $(RELIABILITY_REPORT)
	KUBECONFIG=$(KUBECONFIG_LOCAL) RELIABILITY_REPORT=$(RELIABILITY_REPORT) $(BIN)/pytest \
		tests/reliability tests/badinput tests/server/test_server_fuzz.py -p no:cacheprovider $(PYTEST_ARGS)
	@echo "figures ($(RELIABILITY_REPORT)):" && cat $(RELIABILITY_REPORT)

demo: cluster-up ## Control plane + operator + sample ShardSet, then show the key map
	@bash hack/demo.sh

demo-down: ## Stop the demo's operator (the cluster keeps running; see cluster-down)
	@bash hack/demo.sh stop

CRD_COPIES := manifests/crd/bases helm/shard-operator/files/crds
HELM ?= .cluster/bin/helm

manifests: ## Copy crds/ (the single source) into the kustomize and Helm trees
	@for d in $(CRD_COPIES); do mkdir -p $$d && cp crds/*.yaml $$d/; done

helm-lint: tools ## helm lint --strict, in both modes
	$(HELM) lint --strict helm/shard-operator
	$(HELM) lint --strict helm/shard-operator --set 'watchNamespaces={shard-demo}'

test-deploy: venv test-deps cluster-up ## Helm, kustomize, RBAC, PSA and HA tests (private clusters)
	KUBECONFIG=$(KUBECONFIG_LOCAL) $(BIN)/pytest tests/deploy -m deploy $(PYTEST_ARGS)

bench: venv tools ## Benchmarks on a private cluster (docs/performance.md); BENCH_ARGS=--quick
	$(BIN)/python -m bench $(BENCH_ARGS)

clean: cluster-down ## Remove the cluster, the venv and caches in the tree
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
