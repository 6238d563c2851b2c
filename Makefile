# Durable Search: every command a developer or CI needs. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
DS := $(BIN)/durable-search
PYTEST_ARGS ?=
CACHE ?= $(HOME)/.cache/durable-search
HELM_VERSION := v3.19.5
HELM := $(CACHE)/helm-$(HELM_VERSION)/helm
KUBE_VERSION := 1.33.13
export DURABLE_SEARCH_HELM := $(HELM)

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV)/.installed: pyproject.toml requirements/constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) is required"; exit 1; }
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		-c requirements/constraints.txt -e '.[dev]'
	@touch $@

.PHONY: venv
venv: $(VENV)/.installed ## create .venv/ with the project and its dev dependencies

.PHONY: system-deps
system-deps: ## Debian packages the suite needs (chromium for the browser tests), and kubectl
	@command -v kubectl >/dev/null || { echo "error: kubectl is required on PATH"; exit 1; }
	@command -v go >/dev/null || { echo "error: Go is required to build the control plane"; exit 1; }
	@# The wheel test installs into a fresh venv as a non-root user with the system's python3.11.
	@if [ "$$(id -u)" = 0 ] && ! /usr/bin/python3.11 -c "import ensurepip" 2>/dev/null; then \
		env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3.11-venv >/dev/null \
		|| { echo "error: could not install python3.11-venv (apt-get)"; exit 1; }; \
	fi
	@if [ ! -x /usr/bin/chromium ]; then \
		echo "installing Debian's chromium for the browser tests"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 \
		|| { $$SUDO apt-get update -q >/dev/null && \
		     $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; } \
		|| { echo "error: could not install chromium (apt-get)"; exit 1; }; \
	fi

.PHONY: binaries
binaries: venv ## build (or reuse from ~/.cache/durable-search) etcd, kube-apiserver, kube-controller-manager
	$(DS) cluster build

$(HELM):
	@echo "building helm $(HELM_VERSION) with go install (about a minute, once)"
	GOBIN=$(dir $(HELM)) CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

.PHONY: helm
helm: $(HELM) ## build helm into ~/.cache/durable-search (used by the chart checks)

.PHONY: crds
crds: venv ## regenerate crds/*.yaml (and the chart's copy) from operator/durable_search/api/schema.py
	$(BIN)/python -m durable_search.api.schema crds
	cp crds/*.yaml charts/durable-search/crds/

.PHONY: policies
policies: venv ## regenerate manifests/policies (and the chart's copy) from operator/durable_search/api/policies.py
	$(BIN)/python -m durable_search.api.policies manifests/policies
	mkdir -p charts/durable-search/files
	cp manifests/policies/validatingadmissionpolicies.yaml charts/durable-search/files/

.PHONY: manifests
manifests: crds policies $(HELM) ## regenerate manifests/base (kustomize) from the chart's defaults
	$(BIN)/python -m durable_search.packaging $(HELM) $(KUBE_VERSION)

.PHONY: lint
lint: venv ## ruff lint and format check, and the import contracts between the layers
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

.PHONY: fmt
fmt: venv ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

.PHONY: types
types: venv ## mypy --strict on both packages
	$(BIN)/mypy

.PHONY: test
test: venv system-deps binaries $(HELM) lint types ## the whole suite: lint, types, unit, integration (real control plane)
	$(BIN)/pytest $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: venv ## the unit tests alone (seconds, no cluster)
	$(BIN)/pytest -m unit $(PYTEST_ARGS)

.PHONY: cluster-up
cluster-up: binaries ## start the local control plane in the background (.local/kubeconfig)
	$(DS) cluster up

.PHONY: cluster-down
cluster-down: venv ## stop the local control plane and remove its state
	$(DS) cluster down

.PHONY: up
up: binaries ## run everything locally in the foreground; Ctrl-C stops it (CLUSTER=current: your context)
	$(DS) up $(if $(filter current,$(CLUSTER)),--cluster current,)


KIND_CLUSTER ?= durable-search
KIND_HELM = $(shell command -v helm || echo $(HELM))
.PHONY: kind-up
kind-up: ## for users with Docker: kind cluster, image build and load, Helm install, port-forward
	kind get clusters | grep -qx $(KIND_CLUSTER) || kind create cluster --name $(KIND_CLUSTER)
	docker build -t durable-search:dev .
	kind load docker-image durable-search:dev --name $(KIND_CLUSTER)
	kubectl --context kind-$(KIND_CLUSTER) create namespace durable-search --dry-run=client -o yaml \
		| kubectl --context kind-$(KIND_CLUSTER) apply -f -
	kubectl --context kind-$(KIND_CLUSTER) label namespace durable-search --overwrite \
		pod-security.kubernetes.io/enforce=restricted
	$(KIND_HELM) upgrade --install durable-search charts/durable-search --kube-context kind-$(KIND_CLUSTER) \
		--namespace durable-search --set image.tag=dev --set image.pullPolicy=Never \
		--set demo.enabled=true --wait
	kubectl --context kind-$(KIND_CLUSTER) -n durable-search apply -f manifests/examples/search.yaml
	@echo "Durable Search on kind: http://127.0.0.1:8080/  (Ctrl-C stops the port-forward)"
	kubectl --context kind-$(KIND_CLUSTER) -n durable-search port-forward svc/durable-search-web 8080:80

.PHONY: kind-down
kind-down: ## delete the kind cluster
	kind delete cluster --name $(KIND_CLUSTER)

.PHONY: clean
clean: ## remove the venv and local state (the binary cache in ~/.cache/durable-search stays)
	-[ -x $(DS) ] && $(DS) cluster down
	rm -rf $(VENV) .local .mypy_cache .ruff_cache .pytest_cache
