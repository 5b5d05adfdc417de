# Two commands do all the set-up on a fresh machine:
#   make train   creates .venv on first use, then trains the default model (cnn2d on TESS)
#   make test    creates .venv on first use, then runs the test suite
# Extra Hydra overrides: make train ARGS="model=cnn1d data=ravdess"

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=
PYTEST_ARGS ?=

# The corpora: $SER_DATA_DIR when set; else ./data; else the shared copy beside the repo.
ifeq ($(SER_DATA_DIR),)
  ifeq ($(wildcard data/tess),)
    ifneq ($(wildcard ../shared/data/tess),)
      export SER_DATA_DIR := $(abspath ../shared/data)
    endif
  endif
endif

.PHONY: venv train test predict clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

train: $(VENV)/.installed
	$(PY) train.py $(ARGS)

test: $(VENV)/.installed
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf outputs .cache .pytest_cache
