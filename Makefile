# Two commands for learners and instructors (tests run one torch thread per
# worker: two workers on two cores would otherwise oversubscribe them):
#   make lab   - set up .venv (first time only) and open the course in JupyterLab
#   make test  - ruff (lint and format) and the whole test suite: unit tests, tests of the checks, nbval
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.tfmcourse-installed
DEV_STAMP := $(VENV)/.tfmcourse-dev-installed
JOBS   ?= 2

.PHONY: lab test build clean-venv

$(STAMP): requirements.txt constraints.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -c constraints.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# the test and development tools (pytest, nbval, playwright, ruff, hypothesis) on top
$(DEV_STAMP): $(STAMP) requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt -c constraints.txt
	touch $(DEV_STAMP)

# LAB_ARGS passes options to JupyterLab, e.g. make lab LAB_ARGS="--no-browser --port 8890".
# As root (containers), JupyterLab needs --allow-root.
ROOT_FLAG := $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root)
lab: $(STAMP)
	$(VENV)/bin/jupyter lab $(ROOT_FLAG) $(LAB_ARGS) notebooks/00_start_here.ipynb

test: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	OMP_NUM_THREADS=1 $(PY) -m pytest -n $(JOBS) --dist loadfile

build: $(STAMP)
	$(PY) -m tfmcourse build

clean-venv:
	rm -rf $(VENV)
