# The README's two commands: `make run` (the whole series, default profile) and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROFILE ?= default

.PHONY: run test smoke lab clean-runs

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m ipykernel install --sys-prefix --name vgenre --display-name "Python (vgenre)"
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/vgenre run --profile $(PROFILE) --update-figures

test: $(STAMP)
	$(PY) -m pytest -q

smoke: $(STAMP)
	$(VENV)/bin/vgenre run --profile smoke

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

clean-runs:
	rm -rf runs/
