# The README's two commands: `make run` (the whole series, default profile) and `make test`.
# `make run` checks its metrics against references/<profile>.json when that file exists.
# Both use .venv: TensorFlow, the locked versions of constraints.txt, the Jupyter kernel `vgenre`.
# The backend checks, each in a virtual environment of its own that the target creates:
#   make test-jax     JAX, TensorFlow not installed: the whole suite, smoke series included
#   make test-torch   PyTorch (CPU), TensorFlow not installed: models, backbone, prediction, cross-backend
#   make test-colab   the oldest supported set, Colab's (constraints-colab.txt): the smoke series
# The browser check, in .venv:
#   make test-browser Playwright drives Debian's Chromium against JupyterLab: the widgets of notebooks
#                     02 and 03 react, an executed notebook shows its saved widgets (tests/test_browser.py)
PYTHON ?= $(shell command -v python3.11 >/dev/null 2>&1 && echo python3.11 || echo python3)
LOCK := constraints.txt
COLAB_LOCK := constraints-colab.txt
PROFILE ?= default
PIP_QUIET ?= --quiet

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

JAX_PY := .venv-jax/bin/python
TORCH_PY := .venv-torch/bin/python
COLAB_PY := .venv-colab/bin/python

TORCH_TESTS := $(wildcard tests/test_models.py tests/test_backbone_and_features.py tests/test_predict.py \
                          tests/test_cross_backend.py)
COLAB_TESTS := $(wildcard tests/test_notebooks.py tests/test_widgets.py)

.PHONY: run test smoke lab test-jax test-torch test-colab test-browser clean-runs

# A virtual environment: python, an up-to-date pip.
VENVS := $(VENV) .venv-jax .venv-torch .venv-colab
$(VENVS:%=%/bin/python): %/bin/python:
	$(PYTHON) -m venv $*
	$@ -m pip install $(PIP_QUIET) --upgrade pip

# Registers the kernel the notebooks name inside the environment (papermill runs them with it).
define register_kernel
$(1) -m ipykernel install --sys-prefix --name vgenre --display-name "Python (vgenre)"
endef

$(STAMP): pyproject.toml $(LOCK) | $(PY)
	$(PY) -m pip install $(PIP_QUIET) -c $(LOCK) -e '.[tensorflow,test,lab]'
	$(call register_kernel,$(PY))
	touch $@

.venv-jax/.installed: pyproject.toml $(LOCK) | $(JAX_PY)
	$(JAX_PY) -m pip install $(PIP_QUIET) -c $(LOCK) -e '.[jax,test,lab]'
	$(call register_kernel,$(JAX_PY))
	touch $@

.venv-torch/.installed: pyproject.toml $(LOCK) | $(TORCH_PY)
	$(TORCH_PY) -m pip install $(PIP_QUIET) -c $(LOCK) -e '.[torch,test]'
	$(call register_kernel,$(TORCH_PY))
	touch $@

.venv-colab/.installed: pyproject.toml $(COLAB_LOCK) | $(COLAB_PY)
	$(COLAB_PY) -m pip install $(PIP_QUIET) -c $(COLAB_LOCK) -e '.[tensorflow,test]'
	$(call register_kernel,$(COLAB_PY))
	touch $@

# The run ends with `--check`: its metrics against the committed reference of the profile (a table of
# what drifted, exit 1 on drift; README, section Reproducibility).
REFERENCE = references/$(PROFILE).json
run: $(STAMP)
	KERAS_BACKEND=tensorflow $(VENV)/bin/vgenre run --profile $(PROFILE) --update-figures \
		$(if $(wildcard $(REFERENCE)),--check $(REFERENCE))

test: $(STAMP)
	KERAS_BACKEND=tensorflow $(PY) -m pytest -q

smoke: $(STAMP)
	KERAS_BACKEND=tensorflow $(VENV)/bin/vgenre run --profile smoke

# The repository root is served (run folders under runs/ open too); Lab opens at notebooks/.
lab: $(STAMP)
	KERAS_BACKEND=tensorflow $(VENV)/bin/jupyter lab --ServerApp.root_dir="$(CURDIR)" \
		--ServerApp.default_url=/lab/tree/notebooks

# TensorFlow must be absent: the run proves that nothing in the package or the notebooks needs it.
define require_no_tensorflow
@if $(1) -c "import tensorflow" >/dev/null 2>&1; then \
	echo "error: tensorflow is importable in $(1); this check must run without it" >&2; exit 1; \
else echo "tensorflow is not importable in $(1), as required"; fi
endef

test-jax: .venv-jax/.installed
	$(call require_no_tensorflow,$(JAX_PY))
	KERAS_BACKEND=jax $(JAX_PY) -m pytest -q

test-torch: .venv-torch/.installed
	$(call require_no_tensorflow,$(TORCH_PY))
	KERAS_BACKEND=torch $(TORCH_PY) -m pytest -q -m "not notebooks" $(TORCH_TESTS)

test-colab: .venv-colab/.installed
	KERAS_BACKEND=tensorflow $(COLAB_PY) -m pytest -q $(COLAB_TESTS)

# Playwright from the lock, in .venv; the browser is Debian's Chromium (Playwright's own download is
# not used), installed with apt-get when missing.
CHROMIUM := /usr/lib/chromium/chromium
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

$(VENV)/.browser: $(STAMP)
	$(PY) -m pip install $(PIP_QUIET) -c $(LOCK) -e '.[browser]'
	touch $@

test-browser: $(VENV)/.browser
	@if [ ! -x $(CHROMIUM) ]; then \
		echo "$(CHROMIUM) is missing: installing Debian's chromium"; \
		$(SUDO) apt-get update && $(SUDO) apt-get install -y chromium; \
	fi
	VGENRE_BROWSER_TEST=1 KERAS_BACKEND=tensorflow $(PY) -m pytest -q -m browser tests/test_browser.py

clean-runs:
	rm -rf runs/
