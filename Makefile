# Two commands do all the set-up on a fresh machine:
#   make train   creates .venv on first use, fetches TESS when the data root lacks it
#                (only with the default data; licence and citation printed), then trains
#                the default model (cnn2d on TESS)
#   make test    creates .venv on first use, then runs the test suite (never downloads)
# Extra Hydra overrides: make train ARGS="model=cnn1d data=ravdess"
# Corpora: make data CORPUS=ravdess ARGS="accept_licence=true"  (python -m ser_lightning.cli.download)
# Pretrained encoder weights (docs/ENCODERS.md): make encoder ENCODER=whisper_base (the released model's)
#   make serve   the page with the released general model (docs/MODEL_CARD.md)

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=
PYTEST_ARGS ?=
CORPUS ?=

# `make data` downloads into $SER_DATA_DIR as the user set it, else ./data (never into the
# shared fallback below).
DOWNLOAD_ROOT := $(if $(SER_DATA_DIR),$(SER_DATA_DIR),data)

# The corpora: $SER_DATA_DIR when set; else ./data (when it holds tess/, as `make train`
# leaves it); else the shared copy beside the repo. tests/conftest.py looks in the same order.
ifeq ($(SER_DATA_DIR),)
  ifeq ($(wildcard data/tess),)
    ifneq ($(wildcard ../shared/data/tess),)
      export SER_DATA_DIR := $(abspath ../shared/data)
    endif
  endif
endif

# The data root as paths.data_dir resolves it (conf/paths/default.yaml).
DATA_ROOT = $(if $(SER_DATA_DIR),$(SER_DATA_DIR),data)

.PHONY: venv train test predict clean data encoder serve

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

train: $(VENV)/.installed
ifeq ($(filter-out data=tess,$(filter data=% data.root=% paths.data_dir=% experiment=%,$(ARGS))),)
	@test -d "$(DATA_ROOT)/tess" || $(PY) -m ser_lightning.cli.download tess implicit=true root="$(DATA_ROOT)"
endif
	$(PY) train.py $(ARGS)

data: $(VENV)/.installed
	@test -n "$(CORPUS)" || { echo "usage: make data CORPUS=<ravdess|tess|crema_d|emodb|savee|ased|nemo|turev|emovo|urdu> [ARGS='accept_licence=true']"; \
	  $(PY) -m ser_lightning.cli.download --list; exit 1; }
	$(PY) -m ser_lightning.cli.download $(CORPUS) root="$(DOWNLOAD_ROOT)" $(ARGS)

encoder: $(VENV)/.installed
	@test -n "$(ENCODER)" || { echo "usage: make encoder ENCODER=<wav2vec2_base|wav2vec2_large_lv60k|wav2vec2_xlsr_300m|hubert_base|hubert_large|wavlm_base|wavlm_base_plus|wavlm_large|whisper_tiny|whisper_base|whisper_small|whisper_medium|whisper_large_v3|hf:<model id>> [ARGS='mirror=URL']"; exit 1; }
	$(PY) -m ser_lightning.cli.download encoder=$(ENCODER) $(ARGS)

# The page (http://127.0.0.1:8000/) with the released general model (docs/MODEL_CARD.md); needs
# its encoder once: make encoder ENCODER=whisper_base. Another model: make serve ARGS="ckpt_path=..."
serve: $(VENV)/.installed
	$(PY) serve.py $(ARGS)

test: $(VENV)/.installed
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf outputs .cache .pytest_cache
