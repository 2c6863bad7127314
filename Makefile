# scones: the two commands are `make demo` (the whole workflow on the offline twin) and
# `make test` (format, lint, types, every test tier that can run here). Both install into .venv/.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SCONES := $(BIN)/scones
SAM_VERSION := 1.170.0
SAM_VENV := $(VENV)/sam
AWSCLI_VERSION := 1.46.3
AWSCLI_VENV := $(VENV)/awscli
SDK2_VENV := $(VENV)/sdk2
SDK3_VENV := $(VENV)/sdk3
STATE := .scones

# The demo's CIFAR-100 archive: $CIFAR100_ARCHIVE when set; the shared subset beside this
# checkout when it exists (so the demo runs offline); else the official archive (downloaded once,
# MD5-checked and cached by `scones etl`).
SHARED_ARCHIVE := ../shared/data/cifar-100-python-vehicles.tar.gz
ifneq ($(wildcard $(SHARED_ARCHIVE)),)
CIFAR100_ARCHIVE ?= $(SHARED_ARCHIVE)
endif
CIFAR100_ARCHIVE ?= https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz
export CIFAR100_ARCHIVE

CLASSES ?= bicycle,motorcycle
EPOCHS ?=
PYTEST_ARGS ?=
NOTEBOOK_PORT ?= 8888

.PHONY: help install install-sam install-sdk format lint types check test test-unit test-stack demo down status bench clean notebook notebook-kernel notebook-html install-awscli mutation

help: ## Show the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-12s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[train,dev,notebook]'
	touch $@

$(SAM_VENV)/bin/sam:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install -q --upgrade pip
	$(SAM_VENV)/bin/pip install -q aws-sam-cli==$(SAM_VERSION)

install: $(VENV)/.installed ## Create .venv and install scones with training, dev and notebook tools

$(AWSCLI_VENV)/bin/aws:
	$(PYTHON) -m venv $(AWSCLI_VENV)
	$(AWSCLI_VENV)/bin/pip install -q --upgrade pip
	$(AWSCLI_VENV)/bin/pip install -q awscli==$(AWSCLI_VERSION)

install-awscli: $(AWSCLI_VENV)/bin/aws ## Install the AWS CLI into its own venv (.venv/awscli) for tests/awscli

install-sam: $(SAM_VENV)/bin/sam $(SAM_VENV)/wheels/.fetched ## Install the AWS SAM CLI into its own venv (.venv/sam)

# The SageMaker Python SDK as a user installs it, v2 (sagemaker) and v3 (sagemaker-core, where
# Endpoint.get lives), each in its own venv: tests/stack/test_sagemaker_sdk.py runs them
$(SDK2_VENV)/.installed:
	$(PYTHON) -m venv $(SDK2_VENV)
	$(SDK2_VENV)/bin/pip install -q 'sagemaker==2.257.7'
	touch $@

$(SDK3_VENV)/.installed:
	$(PYTHON) -m venv $(SDK3_VENV)
	$(SDK3_VENV)/bin/pip install -q 'sagemaker-core==2.27.0'
	touch $@

install-sdk: $(SDK2_VENV)/.installed $(SDK3_VENV)/.installed ## Install the SageMaker Python SDK v2 and v3 into their own venvs (.venv/sdk2, .venv/sdk3)

# SerializeImage's requirements.txt as wheels for python3.13 (the template's runtime) on arm64
# (what sam build packages) and x86_64 (its first pip pass), so the sam build test runs offline
$(SAM_VENV)/wheels/.fetched: functions/serialize_image/requirements.txt | $(SAM_VENV)/bin/sam
	for arch in aarch64 x86_64; do $(SAM_VENV)/bin/pip download -q --only-binary=:all: \
	  --implementation cp --python-version 3.13 --platform manylinux_2_28_$$arch \
	  --platform manylinux2014_$$arch -d $(SAM_VENV)/wheels -r $<; done
	touch $@

format: install ## Format the code
	$(BIN)/ruff format scones ml functions tests bench tools
	$(BIN)/ruff check --fix scones ml functions tests bench tools

lint: install ## Check formatting and lint
	$(BIN)/ruff format --check scones ml functions tests bench tools
	$(BIN)/ruff check scones ml functions tests bench tools

types: install ## Type-check
	$(BIN)/mypy

check: lint types ## Format check, lint and types

test: install install-sam install-sdk install-awscli check ## Run format check, lint, types and all tests (unit, offline stack)
	SAM_CLI_TELEMETRY=0 SCONES_SAM=$(abspath $(SAM_VENV))/bin/sam \
	  SCONES_AWSCLI=$(abspath $(AWSCLI_VENV))/bin/aws $(BIN)/pytest $(PYTEST_ARGS)

test-unit: install ## Run the unit tests only
	$(BIN)/pytest -m "not stack and not slow" $(PYTEST_ARGS)

test-stack: install ## Run the offline-stack tests only
	$(BIN)/pytest -m stack $(PYTEST_ARGS)

$(STATE)/data/train.lst: | $(VENV)/.installed
	$(SCONES) etl --archive "$(CIFAR100_ARCHIVE)" --output $(STATE)/data --classes $(CLASSES)

# retrain when anything SageMaker receives changes (train.py, its sibling modules, serving/)
$(STATE)/model/model.tar.gz: $(STATE)/data/train.lst $(wildcard ml/*.py ml/*.txt ml/serving/*) | $(VENV)/.installed
	$(SCONES) train --data $(STATE)/data --model-dir $(STATE)/model $(if $(EPOCHS),--epochs $(EPOCHS))

demo: install ## Run the whole workflow offline: twin, ETL, train, deploy, classify, monitor
	$(SCONES) up
	$(MAKE) --no-print-directory $(STATE)/model/model.tar.gz
	$(SCONES) deploy --local --model $(STATE)/model/model.tar.gz
	$(SCONES) classify $(STATE)/data/test
	@# the endpoint flushes Data Capture every 2 s (SCONES_CAPTURE_FLUSH_SECONDS): let it land
	sleep 3
	eval "$$($(SCONES) env)" && $(SCONES) monitor "s3://$$SCONES_BUCKET/data_capture" \
	  --endpoint "$$SCONES_ENDPOINT_NAME" --output $(STATE)/monitor
	@# the evidence packs: definition, execution, full history, graph (SVG + PNG), from the API
	rm -rf $(STATE)/evidence
	$(SCONES) graph --latest --status SUCCEEDED --export $(STATE)/evidence/succeeded
	$(SCONES) graph --latest --status FAILED --error LowConfidenceError \
	  --export $(STATE)/evidence/low-confidence \
	  || echo "(no low-confidence execution in this run: no pack for it)"
	@# what this run would have cost on AWS, measured from its execution histories
	$(SCONES) cost --output $(STATE)/cost
	@echo
	@echo "Done. The twin is still running:"
	@echo "  point boto3 / the AWS CLI at it:  eval \"\$$($(SCONES) env)\""
	@echo "  monitoring report:                $(abspath $(STATE))/monitor/report.html"
	@echo "  model report:                     $(abspath $(STATE))/model/metrics.json"
	@echo "  evidence packs:                   $(abspath $(STATE))/evidence/{succeeded,low-confidence}/"
	@echo "  stop it:                          $(SCONES) down   (or: make down)"
	@echo "  cost of this run on AWS:          $(abspath $(STATE))/cost/cost.html"
	@echo "  browse it (scones console):       http://127.0.0.1:8090   after: $(SCONES) console"

notebook-kernel: install
	$(BIN)/python -m ipykernel install --user --name scones --display-name "Python (scones)"

notebook: notebook-kernel ## Register the `scones` Jupyter kernel (.venv) and start JupyterLab on 127.0.0.1 in notebooks/
	@echo "JupyterLab on 127.0.0.1 in notebooks/ (kernel: scones); open the URL it prints below; Ctrl-C stops it"
	$(BIN)/jupyter lab --no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port=$(NOTEBOOK_PORT) \
	  --ServerApp.root_dir=notebooks $(if $(filter 0,$(shell id -u)),--ServerApp.allow_root=True)

notebook-html: install ## Run notebooks/walkthrough.ipynb top to bottom on the twin; write .scones/notebook/walkthrough.html
	$(BIN)/python -m scones.notebook.execute notebooks/walkthrough.ipynb \
	  --html $(STATE)/notebook/walkthrough.html
	@echo "the twin is still running (the notebook starts it when needed): $(SCONES) down stops it"

down: ## Stop the offline twin
	@if [ -x $(SCONES) ]; then $(SCONES) down; fi

status: ## Show the offline twin's services
	$(SCONES) status

mutation: install ## Mutation-test the handlers (mutmut on a copy; 20-30 min; not in `make test`)
	SCONES_SHARED_DATA=$(abspath ../shared/data) $(BIN)/python tools/mutation.py $(MUTATION_ARGS)

bench: install ## Run the benchmarks (slow; prints tables)
	$(BIN)/python bench/run_all.py

clean: down ## Remove the twin's state, build output and caches (keeps .venv)
	rm -rf $(STATE) .aws-sam build .pytest_cache .mypy_cache .ruff_cache
