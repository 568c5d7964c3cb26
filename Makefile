# Two commands do all the set-up: `make demo` and `make test`. Each creates .venv when missing
# and installs the project once; a second run reinstalls nothing unless pyproject.toml changed.
VENV   := .venv
PYTHON := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint format docs

$(STAMP): pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/autoquant search experiments/digits-demo.yaml

test: $(STAMP)
	$(PYTHON) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

docs: $(STAMP)
	$(PYTHON) -c "from autoquant.cli import reference; print(reference(), end='')" > docs/cli.md
