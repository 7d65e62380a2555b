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
	@echo "Setting up $(VENV) (first time only): PyTorch, JupyterLab and their dependencies."
	@echo "  Takes about 5-10 minutes and about 1.5 GB of disk with the CPU-only PyTorch build."
	@echo "  On Linux the default PyTorch download is the CUDA build (about 3 GB); without an NVIDIA GPU,"
	@echo "  use the CPU-only build instead: make lab TORCH_INDEX=https://download.pytorch.org/whl/cpu"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(if $(TORCH_INDEX),$(PY) -m pip install --progress-bar on torch==2.13.0 --index-url $(TORCH_INDEX))
	$(PY) -m pip install --progress-bar on -r requirements.txt -c constraints.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# the test and development tools (pytest, nbval, playwright, ruff, hypothesis) on top
$(DEV_STAMP): $(STAMP) requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt -c constraints.txt
	touch $(DEV_STAMP)

# make lab copies notebooks/ and exercises/ into the git-ignored work/ (never overwriting your files;
# notebooks new after a git pull are added) and opens JupyterLab there on the first lesson.
# LAB_ARGS passes options to JupyterLab, e.g. make lab LAB_ARGS="--no-browser --port 8890";
# COURSE_LANG=ko opens the Korean edition (work/ko/) once it is built.
# As root (containers), JupyterLab needs --allow-root.
# TORCH_INDEX installs PyTorch from another index on the first run (the CPU-only build, see README).
COURSE_LANG ?= en
TORCH_INDEX ?=
ROOT_FLAG := $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root)
lab: $(STAMP)
	$(PY) -m tfmcourse lab --lang $(COURSE_LANG) -- $(ROOT_FLAG) $(LAB_ARGS)

test: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	OMP_NUM_THREADS=1 $(PY) -m pytest -n $(JOBS) --dist loadgroup

build: $(STAMP)
	$(PY) -m tfmcourse build

clean-venv:
	rm -rf $(VENV)
