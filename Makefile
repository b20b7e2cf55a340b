# Two commands for a new user (see README.md):
#   make demo   install everything, then run the main job on the built-in example
#   make test   install what the tests need, then run ruff and the whole test suite
PYTHON ?= python3
PIP = $(PYTHON) -m pip
# torch first, with a spec the local CPU wheel (2.13.0) satisfies, so nothing pulls CUDA builds.
TORCH_SPEC ?= torch==2.13.0

.PHONY: install install-dev demo test lint

install:
	$(PIP) install "$(TORCH_SPEC)"
	$(PIP) install -e .

install-dev:
	$(PIP) install "$(TORCH_SPEC)"
	$(PIP) install -e ".[dev]"

demo: install
	medseg demo -o medseg-demo

test: install-dev lint
	$(PYTHON) -m pytest -n 2 --dist loadfile

lint:
	$(PYTHON) -m ruff check src tests benchmarks
	$(PYTHON) -m ruff format --check src tests benchmarks
