# Two set-up commands (see README): `make demo` and `make test`.
# Both create .venv with Python 3.11+ and install romanxr with its test and oracle extras.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-all lint bench oracle docs lab clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,plot,oracle]"
	# compile the numba kernels now (~20 s), not in the first calibration (docs/installation.rst)
	$(BIN)/romanxr warm
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/romanxr demo --output demo-output

# --dist loadfile: each test module runs on one worker, so every module-scoped fixture (a
# simulated exposure, a CRDS cache, a calibration) is built once, not once per worker; the docs
# build (which executes the notebooks) is one session fixture under a file lock, built once.
# (--dist loadgroup would split the docs tests: with pytest 9.2, pytest-xdist 3.8 no longer
# tags the node ids of xdist_group tests, so it schedules them one by one.)
test: $(STAMP) lint
	$(BIN)/python -m pytest -q -n auto --dist loadfile

# house rules: ruff, plus module size, complexity (radon), import cycles, private imports
lint: $(STAMP)
	$(BIN)/ruff check romanxr tests benchmarks tools
	$(BIN)/ruff format --check romanxr tests benchmarks tools
	$(BIN)/python tools/check_structure.py

oracle: $(STAMP)
	$(BIN)/python -m pytest -q -m oracle tests/parity

# the notebooks, interactively: installs the lab extra (JupyterLab) into .venv and opens notebooks/
lab: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[lab,plot]"
	$(BIN)/jupyter lab notebooks

docs: $(STAMP)
	$(BIN)/python -m sphinx -W --keep-going -b html docs docs/_build/html
	@echo "open docs/_build/html/index.html"

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_pipeline.py --repeat 3

clean:
	rm -rf $(VENV) demo-output .pytest_cache docs/_build docs/generated
