# The commands a user types. Each target creates .venv when missing and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATASET ?= sample
ROOT ?= $(or $(VFCACHE_ROOT),data)
WORKERS ?= 2
PYTEST_ARGS ?=

.PHONY: install lint cache test bench train eval clean-cache docs

$(VENV)/.installed: setup.cfg pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch==2.13.0 only when no torch is installed; then pin whatever torch is there.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q torch==2.13.0
	$(BIN)/python -c "import torch; print('torch==' + torch.__version__.split('+')[0])" > $(VENV)/constraints.txt
	$(BIN)/pip install -q -c $(VENV)/constraints.txt -e ".[dev,bench,hf,s3]"
	# litdata (benchmark baseline) declares torchvision, which has no build for this torch: install it alone.
	$(BIN)/pip install -q -c $(VENV)/constraints.txt --no-deps litdata==0.2.76
	touch $@

install: $(VENV)/.installed

cache: install
	$(BIN)/vfcache --root $(ROOT) --workers $(WORKERS) cache $(DATASET)

# ruff's lint and its formatter (check mode) first: a style failure fails the run as a test would
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

train: install
	$(BIN)/vfcache --root $(ROOT) train $(or $(CONFIG),configs/train/sample_cpu.yaml)

eval: install
	$(BIN)/vfcache --root $(ROOT) eval $(or $(CONFIG),configs/eval/sample_cpu.yaml)

bench: install
	$(BIN)/vfcache --root $(ROOT) bench extract --json results/bench_extract.json
	$(BIN)/vfcache --root $(ROOT) bench load --json results/bench_load.json
	$(BIN)/vfcache --root $(ROOT) bench train --json results/bench_train.json

# The manual: docs/ built with MkDocs into site/; --strict turns a broken link or anchor into a failure.
$(VENV)/.docs-installed: $(VENV)/.installed setup.cfg
	$(BIN)/python -c "import mkdocs" 2>/dev/null || $(BIN)/pip install -q -c $(VENV)/constraints.txt -e ".[docs]"
	touch $@

docs: $(VENV)/.docs-installed
	$(BIN)/mkdocs build --strict --site-dir site
