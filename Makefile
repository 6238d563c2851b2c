# Durable Search: every command a developer or CI needs. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
DS := $(BIN)/durable-search
PYTEST_ARGS ?=

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

.PHONY: lint
lint: venv ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

.PHONY: fmt
fmt: venv ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

.PHONY: types
types: venv ## mypy --strict on both packages
	$(BIN)/mypy

.PHONY: test
test: venv system-deps binaries lint types ## the whole suite: lint, types, unit, integration (real control plane)
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

.PHONY: crds
crds: venv ## regenerate crds/*.yaml from operator/durable_search/api/schema.py
	$(BIN)/python -m durable_search.api.schema crds

.PHONY: clean
clean: ## remove the venv and local state (the binary cache in ~/.cache/durable-search stays)
	-[ -x $(DS) ] && $(DS) cluster down
	rm -rf $(VENV) .local .mypy_cache .ruff_cache .pytest_cache
