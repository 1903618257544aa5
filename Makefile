# The two commands of the README: `make demo` and `make test`.
# Both create .venv and install everything on a fresh machine; re-running is fast
# because installation is keyed on a stamp file that depends on pyproject.toml.
# The ray extra is installed too, so the test of `--ray` (identical results to the
# in-process path) runs in CI.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stamp-install
TORCH_VERSION ?= 2.13.0
PYTEST_ARGS ?=
WORKERS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: demo test test-all lint bench install clean

install: $(STAMP)

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch first: the local CPU wheel. Without it stable-baselines3 pulls the newest
# torch with gigabytes of CUDA packages. A GPU user installs their own torch first.
$(STAMP): pyproject.toml Makefile $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet torch==$(TORCH_VERSION)
	$(BIN)/python -m pip install --quiet -e ".[dev,ray]"
	touch $(STAMP)

# The demo's own output folder (git-ignored) is replaced on every run; `lobworld demo`
# itself refuses an existing non-empty folder unless --overwrite is given.
demo: $(STAMP)
	$(BIN)/lobworld demo --out docs/demo --overwrite

# The checks CI runs before the tests: ruff, and import-linter's layer contracts
# (pyproject.toml [tool.importlinter]: envs < world_models < agents < scenarios < root).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python .ci/lint_imports.py

# The kernels are compiled into Numba's disk cache first, one job per core (`lobworld precompile`:
# compilation is single-threaded, so a cold start takes half the wall time on two cores), then
# the tests run on that many pytest-xdist workers, one test file per worker at a time.
test: $(STAMP) lint
	$(BIN)/lobworld precompile --jobs $(WORKERS)
	$(BIN)/python -m pytest -q -n $(WORKERS) --dist loadfile $(PYTEST_ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m "slow or not slow" $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/lobworld bench

clean:
	rm -rf $(VENV) build *.egg-info
