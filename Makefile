# The README's two commands: `make run` (the whole series, default profile) and `make test`.
# `make run` checks its metrics against references/<profile>.json when that file exists.
# Both use .venv: TensorFlow, the locked versions of constraints.txt, the Jupyter kernel `vgenre`.
# The backend checks, each in a virtual environment of its own that the target creates:
#   make test-jax     JAX, TensorFlow not installed: every test that builds, trains or loads a Keras model
#                     (the smoke series, its exercises, models, masking, features, prediction, out-of-
#                     distribution, notebook 08's designs); the tests of files, audio, decoding and the
#                     command line do not touch the backend and run in `make test`
#   make test-torch   PyTorch (CPU), TensorFlow not installed: models, backbone, prediction, cross-backend
#   make test-colab   Google Colab's set on Python 3.13 (constraints-colab.txt): the smoke series, the widgets
#   make test-kaggle  Kaggle's set on Python 3.12 (constraints-kaggle.txt: Colab's, ipywidgets 8.1.5): what
#                     differs from Colab's: the widgets (ipywidgets 8), the install cell, decoding and audio
#                     on Python 3.12 (the series itself runs on Colab's set and on the lock)
#   make test-latest  the newest release of every dependency on Python 3.13 (no constraints; Keras from
#                     keras-nightly): the whole suite, smoke series included (a workflow job, not in .ci/run)
# The browser check, in .venv:
#   make test-browser Playwright drives Debian's Chromium against JupyterLab: the widgets of notebooks
#                     02 and 03 react, an executed notebook shows its saved widgets (tests/test_browser.py)
PYTHON ?= $(shell command -v python3.11 >/dev/null 2>&1 && echo python3.11 || echo python3)
# A Python of a given version that runs: pythonX.Y on PATH, else pyenv's (its shim fails when that
# version is not pyenv's global one).
find_python = $(firstword $(shell for p in python$(1) $(wildcard $(HOME)/.pyenv/versions/$(1).*/bin/python$(1)); do \
	"$$p" -c "" >/dev/null 2>&1 && echo "$$p"; done))
COLAB_PYTHON ?= $(call find_python,3.13)
KAGGLE_PYTHON ?= $(call find_python,3.12)
LATEST_PYTHON ?= $(call find_python,3.13)
LOCK := constraints.txt
COLAB_LOCK := constraints-colab.txt
KAGGLE_LOCK := constraints-kaggle.txt
PROFILE ?= default
PIP_QUIET ?= --quiet

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

JAX_PY := .venv-jax/bin/python
TORCH_PY := .venv-torch/bin/python
COLAB_PY := .venv-colab/bin/python
KAGGLE_PY := .venv-kaggle/bin/python
LATEST_PY := .venv-latest/bin/python

TORCH_TESTS := $(wildcard tests/test_models.py tests/test_masking.py tests/test_backbone_and_features.py tests/test_predict.py \
                          tests/test_cross_backend.py)
COLAB_TESTS := $(wildcard tests/test_notebooks.py tests/test_widgets.py)
KAGGLE_TESTS := $(wildcard tests/test_widgets.py tests/test_hosted.py tests/test_audio.py tests/test_media.py \
                           tests/test_frames.py tests/test_saved_cells.py)
JAX_TESTS := $(wildcard tests/test_notebooks.py tests/test_exercises.py tests/test_models.py tests/test_masking.py \
                        tests/test_backbone_and_features.py tests/test_predict.py tests/test_cross_backend.py \
                        tests/test_beyond.py tests/test_ood.py tests/test_saved_cells.py tests/test_context.py \
                        tests/test_ablations.py tests/test_teaching_04.py)

.PHONY: saved run test smoke lab test-jax test-torch test-colab test-kaggle test-latest test-browser wheel \
	hosted-constraints clean-runs

# A virtual environment: python, an up-to-date pip. The hosted sets and the newest releases have
# their own Python.
define make_venv
$(if $(1),,$(error no Python $(2) found: install it or set $(3)=/path/to/python$(2)))
$(1) -m venv $(4)
$(4)/bin/python -m pip install $(PIP_QUIET) --upgrade pip
endef
VENVS := $(VENV) .venv-jax .venv-torch
$(VENVS:%=%/bin/python): %/bin/python:
	$(call make_venv,$(PYTHON),3,PYTHON,$*)
$(COLAB_PY):
	$(call make_venv,$(COLAB_PYTHON),3.13,COLAB_PYTHON,.venv-colab)
$(KAGGLE_PY):
	$(call make_venv,$(KAGGLE_PYTHON),3.12,KAGGLE_PYTHON,.venv-kaggle)
$(LATEST_PY):
	$(call make_venv,$(LATEST_PYTHON),3.13,LATEST_PYTHON,.venv-latest)

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

.venv-kaggle/.installed: pyproject.toml $(KAGGLE_LOCK) | $(KAGGLE_PY)
	$(KAGGLE_PY) -m pip install $(PIP_QUIET) -c $(KAGGLE_LOCK) -e '.[tensorflow,test]'
	$(call register_kernel,$(KAGGLE_PY))
	touch $@

# The newest releases: no constraints, everything upgraded, then Keras' next release (keras-nightly,
# the same `keras` package) in place of the newest Keras. Reinstalled on every run (no stamp).
.venv-latest/.installed: | $(LATEST_PY)
	$(LATEST_PY) -m pip install $(PIP_QUIET) --upgrade --upgrade-strategy eager -e '.[tensorflow,test]'
	$(LATEST_PY) -m pip uninstall $(PIP_QUIET) --yes keras
	$(LATEST_PY) -m pip install $(PIP_QUIET) --upgrade --pre --force-reinstall --no-deps keras-nightly
	$(call register_kernel,$(LATEST_PY))
	$(LATEST_PY) -m pip list 2>/dev/null | grep -iE '^(tensorflow|keras-nightly|numpy|pandas|scipy|scikit-learn|librosa|av|opencv-python-headless|ipywidgets|ipykernel|papermill|pillow|matplotlib) '

# The run ends with `--check`: its metrics against the committed reference of the profile (a table of
# what drifted, exit 1 on drift; README, section Reproducibility).
REFERENCE = references/$(PROFILE).json
run: $(STAMP)
	KERAS_BACKEND=tensorflow $(VENV)/bin/vgenre run --profile $(PROFILE) --update-figures \
		$(if $(wildcard $(REFERENCE)),--check $(REFERENCE))

test: $(STAMP)
	KERAS_BACKEND=tensorflow $(PY) -m pytest -q

# The notebooks' `# @save` cells copied into helpers/course/ (one module per notebook), the code the helpers run (one source:
# tests/test_saved_cells.py fails when the two differ). Run it after editing a saved cell.
saved: $(STAMP)
	$(VENV)/bin/vgenre save-cells

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
	KERAS_BACKEND=jax $(JAX_PY) -m pytest -q $(JAX_TESTS)

test-torch: .venv-torch/.installed
	$(call require_no_tensorflow,$(TORCH_PY))
	KERAS_BACKEND=torch $(TORCH_PY) -m pytest -q -m "not notebooks" $(TORCH_TESTS)

test-colab: .venv-colab/.installed
	KERAS_BACKEND=tensorflow $(COLAB_PY) -m pytest -q $(COLAB_TESTS)

test-kaggle: .venv-kaggle/.installed
	KERAS_BACKEND=tensorflow $(KAGGLE_PY) -m pytest -q $(KAGGLE_TESTS)

test-latest: .venv-latest/.installed
	KERAS_BACKEND=tensorflow $(LATEST_PY) -m pytest -q

# The course as one wheel (dist/vgenre-<version>-py3-none-any.whl): upload it beside a notebook in
# Colab or Kaggle and the notebook's first cell installs it (README, section Colab / Kaggle).
wheel: | $(PY)
	$(PY) -m pip wheel $(PIP_QUIET) --no-deps --wheel-dir dist .

# Rewrites constraints-colab.txt and constraints-kaggle.txt from Colab's published pip freeze
# (COLAB_FREEZE, from googlecolab/backend-info): its lines less direct URLs, CUDA builds and system
# packages, plus PyAV, papermill and hypothesis at the lock's versions (Kaggle: ipywidgets 8.1.5), installed
# in fresh environments, then frozen.
COLAB_FREEZE ?= ../shared/colab/pip-freeze-2026-08-19.txt
HC := .hosted-constraints
hosted-constraints:
	rm -rf $(HC) .venv-colab .venv-kaggle && mkdir -p $(HC)
	grep -v '^#' $(COLAB_FREEZE) | grep -v ' @ ' | grep -vE '\+cu|^nvidia-|^(python-apt|dbus-python|PyGObject|GDAL|pycairo|cyipopt|pip|setuptools|wheel)==' > $(HC)/colab.txt
	grep -E '^(av|papermill|hypothesis)==' $(LOCK) > $(HC)/on-top.txt
	grep -vE '^(ipywidgets|widgetsnbextension|jupyterlab_widgets)==' $(HC)/colab.txt > $(HC)/kaggle.txt
	echo 'ipywidgets==8.1.5' >> $(HC)/kaggle.txt
	$(MAKE) $(COLAB_PY) $(KAGGLE_PY)
	$(COLAB_PY) -m pip install $(PIP_QUIET) -c $(HC)/colab.txt -c $(HC)/on-top.txt -e '.[tensorflow,test]'
	$(KAGGLE_PY) -m pip install $(PIP_QUIET) -c $(HC)/kaggle.txt -c $(HC)/on-top.txt -e '.[tensorflow,test]'
	{ grep '^#' $(COLAB_LOCK); $(COLAB_PY) -m pip freeze --exclude-editable | grep -vE '^(setuptools|wheel)=='; } > $(HC)/c
	{ grep '^#' $(KAGGLE_LOCK); $(KAGGLE_PY) -m pip freeze --exclude-editable | grep -vE '^(setuptools|wheel)=='; } > $(HC)/k
	mv $(HC)/c $(COLAB_LOCK) && mv $(HC)/k $(KAGGLE_LOCK) && rm -rf $(HC)

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
