# Two commands do everything on a fresh machine:
#   make run    set up the environment and run the default pipeline (config/config.yaml)
#   make test   set up the environment and run the tests
#   make bench  benchmarks (JSON under results/benchmarks/)
#   make transfer  the transfer study (config/transfer.yaml) after the default run, whose CNN it fine-tunes
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= all
CONFIG ?= config/config.yaml

.PHONY: run test bench clean transfer

$(BIN)/.installed: requirements.txt requirements-reference.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-reference.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m jetimage.substructure  # compiles the substructure kernel once (numba cache)
	touch $@

# the config is checked first: Snakemake's own YAML errors name neither the file nor the line
run: $(BIN)/.installed
	$(BIN)/python -m jetimage.config $(CONFIG)
	$(BIN)/snakemake --cores $(CORES) --configfile $(CONFIG)

transfer: run
	mkdir -p results/transfer
	$(BIN)/snakemake --cores $(CORES) --snakefile $(CURDIR)/Snakefile \
		--configfile $(CURDIR)/config/transfer.yaml --directory results/transfer

test: $(BIN)/.installed
	$(BIN)/snakemake --lint --configfile config/config.yaml
	$(BIN)/snakefmt --check Snakefile workflow/
	$(BIN)/ruff check scripts tests
	$(BIN)/ruff format --check scripts tests
	$(BIN)/mypy
	$(BIN)/python -m pytest

bench: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -r requirements-bench.txt
	$(BIN)/python scripts/bench/images.py
	$(BIN)/python scripts/bench/train.py
	$(BIN)/python scripts/bench/generate.py
	$(BIN)/python scripts/bench/readers.py
	$(BIN)/python scripts/bench/substructure.py
	$(BIN)/python scripts/bench/bdt.py
	$(BIN)/python scripts/bench/dag.py
	$(BIN)/python scripts/bench/scale.py
	$(BIN)/python scripts/bench/workflow_scale.py

clean:
	rm -rf results .snakemake
