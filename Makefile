# aelab — front doors. `make` (or `make help`) lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.install.stamp
DATA_DIR ?= data
SHARED_MNIST ?= ../shared/data/mnist
ARGS   ?=
CKPT   ?=
PORT   ?= 6006

.PHONY: help install data train tune eval test test-all bench results tensorboard lint format clean

help: ## list the targets
	@echo "aelab make targets (pass Hydra overrides with ARGS=\"model=vae trainer=gpu\"):"
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install aelab (editable) with dev tools; idempotent

data: ## unpack MNIST from $(SHARED_MNIST) into $(DATA_DIR)/MNIST/raw when it is there
	@if ls $(SHARED_MNIST)/*.gz >/dev/null 2>&1; then \
	  mkdir -p $(DATA_DIR)/MNIST/raw; \
	  for f in $(SHARED_MNIST)/*.gz; do \
	    out=$(DATA_DIR)/MNIST/raw/$$(basename $$f .gz); \
	    test -s $$out || gunzip -c $$f > $$out; \
	  done; echo "MNIST ready in $(DATA_DIR)/MNIST/raw"; \
	else echo "no $(SHARED_MNIST): place the four MNIST files in $(DATA_DIR)/MNIST/raw (see README)"; fi
	@if ls /usr/share/datasets/fashion-mnist/*.gz >/dev/null 2>&1; then \
	  mkdir -p $(DATA_DIR)/FashionMNIST/raw; \
	  for f in /usr/share/datasets/fashion-mnist/*.gz; do \
	    out=$(DATA_DIR)/FashionMNIST/raw/$$(basename $$f .gz); \
	    test -s $$out || gunzip -c $$f > $$out; \
	  done; echo "Fashion-MNIST ready in $(DATA_DIR)/FashionMNIST/raw"; fi

train: install data ## train (default: MLP AE on MNIST); ARGS="..." are Hydra overrides
	$(BIN)/aelab-train $(ARGS)

tune: install data ## Optuna search: make tune ARGS="hparams_search=vae hydra.sweeper.n_trials=30" (default: ae)
	$(BIN)/aelab-train -m $(if $(findstring hparams_search=,$(ARGS)),,hparams_search=ae) $(ARGS)

eval: install ## test a checkpoint: make eval CKPT=logs/train/runs/.../checkpoints/last.ckpt
	@test -n "$(CKPT)" || { echo "usage: make eval CKPT=path/to/checkpoint.ckpt [ARGS=...]"; exit 2; }
	$(BIN)/aelab-eval ckpt_path=$(CKPT) $(ARGS)

test: install data ## the fast test suite
	$(BIN)/python -m pytest -m "not slow" -q

test-all: install data ## every test, slow ones included
	$(BIN)/python -m pytest -q

bench: install data ## time aelab against a plain PyTorch loop; writes docs/BENCHMARKS.md
	$(BIN)/python scripts/benchmark.py $(ARGS)

results: install data ## train every model's best experiment, run the eval suite, write docs/RESULTS.md
	$(BIN)/python scripts/results.py $(ARGS)

tensorboard: install ## serve the TensorBoard dashboards of every run under logs/
	$(BIN)/tensorboard --logdir logs --port $(PORT)

lint: install ## ruff lint + format check
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts

format: install ## ruff autofix + format
	$(BIN)/ruff check --fix src tests scripts
	$(BIN)/ruff format src tests scripts

clean: ## remove caches and run outputs (keeps .venv and data/)
	rm -rf logs outputs multirun .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -not -path "./$(VENV)/*" -exec rm -rf {} +
