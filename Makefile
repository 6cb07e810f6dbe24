# Quick start: `make perf` (perf suite on this machine's default backend) and `make test`.
# Both create .venv when missing and install the project with its extras first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CONSTRAINTS ?= constraints.txt
EXTRAS ?= jax,torch,lm,dev
PYTEST_ARGS ?= --durations=25
STAMP := $(VENV)/.installed

.PHONY: test perf lint format install clean calibrate

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c $(CONSTRAINTS) -e '.[$(EXTRAS)]'
	touch $@

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

perf: $(STAMP)
	$(PY) -m pytest --perf $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

calibrate: $(STAMP)
	$(PY) -m perfsuite.cli calibrate compare

clean:
	rm -rf $(VENV) .perf build dist *.egg-info
