# Two commands do everything on a fresh machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
MODEL ?= din
CONFIG ?= tfx_pipeline/configs/demo.yaml
PYTEST_ARGS ?=
# make test and make test-fast run on two pytest-xdist workers (one per core of the CI machine); the modules sharing a
# slow session fixture go to one worker (tests/conftest.py). TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2
XDIST = $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadgroup)
BENCH_ARGS ?=

export TF_USE_LEGACY_KERAS := 1
export PIP_IGNORE_REQUIRES_PYTHON := 1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: install demo test test-fast test-all bench bench_deepctr models clean

# pip -qq: errors only (an install prints nothing else, so make demo's console stays the pipeline's)
$(VENV)/.installed: setup.py constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -qq -c constraints.txt -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# Generates the default synthetic data set if missing, runs the whole pipeline, pushes the model and prints a
# one-line JSON summary (last line).
demo: install
	$(PY) -m tfx_pipeline run --config $(CONFIG) --set training.model=$(MODEL) --set name=$(MODEL)

# make test: everything but the tests marked slow (under 30 minutes on 2 cores); make test-fast: no pipeline or
# Transform run either, and the registry-wide tests for one model of each family and kind (a few minutes, the inner
# loop); make test-all: every test.
test: install
	$(PY) -m pytest -q -m "not slow" $(XDIST) $(PYTEST_ARGS) tests

test-fast: install
	$(PY) -m pytest -q -m "not slow and not pipeline and not every_model" $(XDIST) $(PYTEST_ARGS) tests

test-all: install
	$(PY) -m pytest -q $(PYTEST_ARGS) tests

# `make bench FAMILY=interaction` trains a whole model family on one data set (one JSON line per model, then a
# table); without FAMILY, the training and serving benchmarks of MODEL.
$(VENV)/.bench-installed: $(VENV)/.installed
	$(PY) -m pip install -qq -c constraints.txt -e '.[bench]'
	touch $@

bench: install $(VENV)/.bench-installed
ifeq ($(FAMILY),multitask)
	$(PY) benchmarks/multitask.py $(BENCH_ARGS)
else ifeq ($(FAMILY),retrieval)
	$(PY) benchmarks/retrieval.py $(BENCH_ARGS)
else ifdef FAMILY
	$(PY) benchmarks/family.py --family $(FAMILY) $(BENCH_ARGS)
else
	$(PY) benchmarks/train_throughput.py --model $(MODEL)
	$(PY) benchmarks/serving_latency.py --model $(MODEL) --server_flag=--tensorflow_intra_op_parallelism=1
endif

# DIN and DIEN against DeepCTR 0.9.4's in one run (DeepCTR is installed for the benchmark only, without its deps).
# DeepCTR gets its own virtual environment (TensorFlow, tf_keras, SciPy at the project's pins, DeepCTR without its
# dependencies): it never enters the one the tests use. The script alternates the two implementations (--repeats).
DEEPCTR_VENV ?= .venv-deepctr
$(DEEPCTR_VENV)/.installed: constraints.txt
	test -x $(DEEPCTR_VENV)/bin/python || $(PYTHON) -m venv $(DEEPCTR_VENV)
	$(DEEPCTR_VENV)/bin/python -m pip install -qq -c constraints.txt tensorflow tf_keras scipy h5py
	$(DEEPCTR_VENV)/bin/python -m pip install -qq --no-deps deepctr==0.9.4
	touch $@

bench_deepctr: install $(DEEPCTR_VENV)/.installed
	$(PY) benchmarks/deepctr_compare.py --deepctr_python $(DEEPCTR_VENV)/bin/python $(BENCH_ARGS)

models: install
	$(PY) -m tfx_pipeline models

clean:
	rm -rf runs
