# Two entry points, each enough on a fresh machine: `make demo` and `make test`.
# Both build .venv with Python >= 3.12 (pyenv picks 3.12 here via .python-version).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-all mutation bench docs docs-clean wheels clean

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

# Everything, the slow studies included (cross-method agreement, coverage, float64 NUTS, the docs build):
# not yet timed as a whole. CI runs `make test`; run this before a release and after a model change.
test-all: $(VENV)/.installed
	$(BIN)/python -m pytest -m ""

# Mutation testing of the model with cosmic-ray (tests/mutation/): each module's mutants against its own
# tests, ~7 s a mutant on 2 cores, so hours for all five; MUTATE=likelihood picks one. Sessions live in
# .mutation/ and resume where they stopped. cosmic-ray edits sedppl/model in place while it runs, so the
# target refuses uncommitted changes there and checks afterwards that they are undone. SAMPLE=150 tests a
# seeded random sample of each new session's mutants (tests/mutation/sample.py), for forward's slow tests.
SAMPLE ?=
MUTATE ?= likelihood extinction passbands priors forward
$(VENV)/.mutation-installed: $(VENV)/.installed pyproject.toml
	$(BIN)/python -m pip install -q -e '.[mutation]'
	@touch $@

mutation: $(VENV)/.mutation-installed
	@for m in $(MUTATE); do test -f tests/mutation/$$m.toml || \
	  { echo "no mutation config for '$$m': choose from $$(ls tests/mutation/*.toml | xargs -n1 basename | sed 's/.toml//' | grep -v -e operators -e equivalent | tr '\n' ' ')"; exit 1; }; done
	@git diff --quiet -- sedppl/model || { echo "sedppl/model has uncommitted changes (or the last mutant of an interrupted run: git checkout sedppl/model); commit or stash them first"; exit 1; }
	@mkdir -p .mutation
	@for m in $(MUTATE); do \
	  test -f .mutation/$$m.sqlite || { $(BIN)/cosmic-ray init tests/mutation/$$m.toml .mutation/$$m.sqlite && \
	    $(BIN)/cr-filter-operators .mutation/$$m.sqlite tests/mutation/operators.toml && \
	    { test -z "$(SAMPLE)" || $(BIN)/python tests/mutation/sample.py .mutation/$$m.sqlite $(SAMPLE); }; } || exit 1; \
	  PATH="$(abspath $(BIN)):$$PATH" $(BIN)/cosmic-ray exec tests/mutation/$$m.toml .mutation/$$m.sqlite || exit 1; \
	done
	@git diff --quiet -- sedppl/model || { echo "sedppl/model was left mutated: git checkout sedppl/model"; exit 1; }
	@$(BIN)/python tests/mutation/report.py $(MUTATE:%=.mutation/%.sqlite)

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
# Slimmed so that they and the tree fit in the 64 MiB a device machine takes.
GPU_WHEELS := flowjax paramax pyphot blackjax arviz arviz-base arviz-plots arviz-stats xarray-einstats speclite h5netcdf \
  numpyro equinox jaxtyping wadler-lindig optax lineax astropy pyerfa astropy-iers-data
wheels: $(VENV)/.installed
	rm -rf .whl
	$(BIN)/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
	  $$($(BIN)/python -m pip list --format=freeze | grep -iE "^($$(echo $(GPU_WHEELS) | tr ' ' '|' | sed 's/-/[-_]/g'))==")
	$(BIN)/python benchmarks/slim_wheels.py .whl

clean:
	rm -rf $(VENV) sedppl-demo
