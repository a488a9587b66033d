# Two entry points, each enough on a fresh machine: `make demo` and `make test`.
# Both build .venv with Python >= 3.12 (pyenv picks 3.12 here via .python-version).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench docs docs-clean wheels clean

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 12))' || \
	  { echo "sedppl needs Python >= 3.12; '$(PYTHON)' is $$($(PYTHON) --version 2>&1)."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $@

demo: $(VENV)/.installed
	$(BIN)/sedppl demo

test: $(VENV)/.installed
	$(BIN)/python -m pytest

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/bench_forward.py

# The documentation site in docs/_build/html: API reference, CLI pages, validation reports, and the
# tutorials executed offline (cached in docs/_build/.jupyter_cache; `make docs-clean` runs them afresh).
# Warnings are errors. SPHINXOPTS="-D nb_execution_mode=off" builds without running the tutorials.
SPHINXOPTS ?=
$(VENV)/.docs-installed: $(VENV)/.installed pyproject.toml
	$(BIN)/python -m pip install -q -e '.[docs]'
	@touch $@

docs: $(VENV)/.docs-installed
	$(BIN)/python -m sphinx -W --keep-going -b html $(SPHINXOPTS) docs docs/_build/html

docs-clean:
	rm -rf docs/_build docs/api docs/tutorials docs/validation

# Wheels of the pure-Python dependencies a bare GPU machine lacks (see benchmarks/gpu.sh); needs pip's index.
GPU_WHEELS := flowjax paramax pyphot blackjax arviz arviz-base arviz-plots arviz-stats xarray-einstats speclite h5netcdf \
  numpyro equinox jaxtyping wadler-lindig optax lineax astropy pyerfa astropy-iers-data
wheels: $(VENV)/.installed
	rm -rf .whl
	$(BIN)/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
	  $$($(BIN)/python -m pip list --format=freeze | grep -iE "^($$(echo $(GPU_WHEELS) | tr ' ' '|' | sed 's/-/[-_]/g'))==")

clean:
	rm -rf $(VENV) sedppl-demo
