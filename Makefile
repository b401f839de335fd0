# The README's two commands: `make run` and `make test`. Both set up a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint install clean bench-serve bench-train

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

run: $(BIN)/.installed
	PATH="$(abspath $(BIN)):$$PATH" scripts/run.sh

# The training and prediction paths run under TensorFlow as well as the default
# JAX: `make test` runs the whole suite on JAX, then those tests on TensorFlow.
# Each lane runs in TEST_PROCESSES pytest processes (pytest-xdist), a test
# module to a process, so a module's fixtures start once. Three on two cores:
# one pytest process alone keeps about 0.6 of a core busy, the end-to-end
# tests (marked `e2e`, all of tests/e2e) waiting on the processes they start.
# `make test PYTEST_ARGS='-m "not e2e"'` runs the quick part alone;
# `PYTEST_ARGS='-m e2e'` the end-to-end part; TEST_PROCESSES=0 runs everything
# in one process.
TEST_PROCESSES ?= 3
XDIST = -n $(TEST_PROCESSES) --dist loadscope
BACKEND_TESTS = tests/models/training/test_training.py tests/models/training/test_builder.py \
	tests/models/serving/test_forward.py tests/models/serving/test_predictor.py \
	tests/models/training/test_checkpoints.py tests/e2e/test_job_lifecycle.py \
	tests/models/serving/test_keras_metrics.py tests/service/test_evaluate.py \
	tests/models/serving/test_model_loading.py tests/models/serving/test_keras_file.py

test: $(BIN)/.installed
	scripts/ensure-redis.sh
	$(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS)
	FITSERVE_KERAS_BACKEND=tensorflow $(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS) $(BACKEND_TESTS)

lint: $(BIN)/.installed
	$(BIN)/ruff check models service worker tests bench
	$(BIN)/ruff format --check models service worker tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) var

# Benchmarks print ratios against baselines measured in the same run.
bench-serve: $(BIN)/.installed
	scripts/ensure-redis.sh
	$(BIN)/python -m bench.serve $(BENCH_ARGS)

bench-train: $(BIN)/.installed
	scripts/ensure-redis.sh
	$(BIN)/python -m bench.train $(BENCH_ARGS)
