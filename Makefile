# The two newcomer commands: `make demo` (offline demo) and `make test` (the test suite).
# Both create ./.venv on first use and install the pinned toolchain into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch/torchvision pair the project is tested with (override, e.g. TORCH_SPEC="torch==2.5.1 torchvision==0.20.1")
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=

.PHONY: install demo test test-fast gpu-check clean-venv

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e ".[all]"
	touch $@

demo: install
	$(PY) -m d3s_vot.demo

test: install
	$(PY) -m pytest -q -ra --durations=25 $(PYTEST_ARGS)

test-fast: install
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

# the one-script GPU check (docs/speed.md): GPU_CHECK_ARGS="--device cpu" for the dry run
gpu-check:
	PYTHON=$(if $(wildcard $(PY)),$(PY),python3) bash scripts/gpu_check.sh gpu_check_out $(GPU_CHECK_ARGS)

clean-venv:
	rm -rf $(VENV)
