# Two commands: `make run` (start the app) and `make test` (the whole suite).
# GPU users: make run TORCH="torch==2.13.0 --index-url <your CUDA wheel index>" or TORCH=torch.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0
HOST   ?= 127.0.0.1
PORT   ?= 7860

.PHONY: run test bench bench-long lint examples chromium clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# stamps: reinstall only when pyproject.toml changes
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH)" -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH)" -e ".[test]"
	touch $@ $(VENV)/.installed-run

chromium:
	@test -x /usr/bin/chromium || { apt-get update && apt-get install -y --no-install-recommends chromium; }

run: $(VENV)/.installed-run
	$(BIN)/python -m app --host $(HOST) --port $(PORT)

test: $(VENV)/.installed-test chromium
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed-test
	$(BIN)/ruff check inr gmn app bench tests

# quick measurements (minutes); `make bench-long` adds the training-based tables
bench: $(VENV)/.installed-test
	$(BIN)/python -m bench.run

bench-long: $(VENV)/.installed-test
	$(BIN)/python -m bench.run --long

# re-create the bundled example INRs in assets/examples (seeded, ~1 minute)
examples: $(VENV)/.installed-test
	$(BIN)/python assets/make_examples.py

clean:
	rm -rf $(VENV) .pytest_cache
