# `make train` and `make test` set everything up themselves: a virtual environment in .venv
# with the project installed (editable), its test tools and MPI (mpi4py with MPICH's mpiexec).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: train test lint bench docs lessons clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,vision,mpi]'
	touch $(STAMP)

# The corpus copy beside the checkout (CI, offline machines) when there is one; otherwise the
# trainer finds Tiny Shakespeare itself ($MINIGRAD_DATA, the user cache, a verified download,
# or, offline, a text that ships with Python).
SHARED_CORPUS := $(wildcard ../shared/data/tinyshakespeare.txt)

# One rank per core (`make train RANKS=1` for one process); one process when MPI is missing.
RANKS ?= $(shell nproc 2>/dev/null || echo 1)

train: $(STAMP)
	if test "$(RANKS)" -gt 1 && test -x $(BIN)/mpiexec && $(BIN)/python -c 'import mpi4py' 2>/dev/null; \
	then launch="$(BIN)/mpiexec -n $(RANKS)"; else launch=""; fi; \
	$$launch $(BIN)/minigrad-gpt train --out runs/shakespeare-char $(if $(SHARED_CORPUS),--data $(SHARED_CORPUS))
	$(BIN)/minigrad-gpt sample --out runs/shakespeare-char --num-samples 2 --max-new-tokens 500

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check minigrad transformer examples tests benchmarks tools docs/lessons
	$(BIN)/ruff format --check minigrad transformer examples tests benchmarks tools docs/lessons

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_gpt.py

# Every picture in docs/ is drawn by the project: computation graphs, positional-encoding and
# attention heatmaps, sampling distributions, the vision models.
docs: $(STAMP)
	$(BIN)/python tools/make_docs.py

# The lessons (docs/lessons) in JupyterLab, installed into .venv on first use.
LESSONS_STAMP := $(VENV)/.lessons-installed

$(LESSONS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,vision,mpi,lessons]'
	touch $(LESSONS_STAMP)

lessons: $(LESSONS_STAMP)
	$(BIN)/jupyter lab --ServerApp.root_dir=docs/lessons

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
