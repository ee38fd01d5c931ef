# Two commands do everything on a fresh clone (Python 3.11 and make are all it needs):
#   make book   install into .venv, then build the HTML book
#   make test   install into .venv if needed, then run the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed

# nbgrader calls `alembic` from PATH, and notebooks must find the venv's kernel.
export PATH := $(BIN):$(PATH)
# Keras 3 runs on PyTorch here (no TensorFlow); its config stays in the project.
export KERAS_BACKEND := torch
export KERAS_HOME := $(CURDIR)/.keras
export PYTHONHASHSEED := 0
# The course's matrices are tiny: one BLAS thread is faster than two fighting for
# a 2-core machine (measured 3-6x on a busy one).
export OPENBLAS_NUM_THREADS := 1

ASSIGNMENT ?=
SCHEDULER ?=

.PHONY: install book test grade exercises clean help

help:
	@echo "make book                  install (once) and build the HTML book"
	@echo "make test                  install (once) and run every test"
	@echo "make exercises             regenerate exercises/ from solutions/ (nbgrader)"
	@echo "make grade ASSIGNMENT=ch01 autograde submitted/*/<assignment>/, feedback, grades.csv,"
	@echo "                           grading/<assignment>/report.md and item_analysis.html"
	@echo "                           (GRADE_ARGS=\"--force ...\"; SCHEDULER=tcp://host:8786"
	@echo "                           grades on a Dask cluster)"
	@echo "make clean                 remove the book build and the venv (never grades)"

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@# Build matplotlib's font cache now: building it during a chapter prints to
	@# stderr, which the book treats as an error.
	$(BIN)/python -c "import matplotlib.pyplot"
	touch $(STAMP)

book: install
	$(BIN)/jupyter-book build . -n -W --keep-going
	@echo
	@echo "The book is at $(CURDIR)/_build/html/index.html"

test: install
	$(BIN)/python -m pytest

exercises: install
	$(BIN)/python -m coursetools.generate

grade: install
	@test -n "$(ASSIGNMENT)" || { echo "usage: make grade ASSIGNMENT=<name, e.g. ch01>"; exit 2; }
	$(BIN)/python -m coursetools.grade $(ASSIGNMENT) \
		$(if $(SCHEDULER),--scheduler $(SCHEDULER)) $(GRADE_ARGS)

# Build products and the venv only: submissions, the gradebook and grades are an
# instructor's data and are never deleted by make.
clean:
	rm -rf _build .pytest_cache test-artifacts $(VENV) .keras
