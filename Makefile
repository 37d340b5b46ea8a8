# blender_t2i developer entry points. `make demo` and `make test` set everything up first.
PYTHON ?= python3.11
VENV := .venv
VENV42 := .venv42
VENVFARM := .venv-farm

.PHONY: setup demo test lint build clean record-comfyui

setup: $(VENV)/.installed $(VENV42)/.installed $(VENVFARM)/.installed

# Blender 5.0.1 as a module + the backend stack (CPU torch): demo, tests, CI.
$(VENV)/.installed: requirements/main.txt requirements/data-only.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet -r requirements/main.txt
	$(VENV)/bin/python -m pip install --quiet --no-deps -r requirements/data-only.txt
	touch $@

# Blender 4.2 LTS, the oldest supported version, for the Blender-facing tests.
$(VENV42)/.installed: requirements/blender42.txt
	test -x $(VENV42)/bin/python || $(PYTHON) -m venv $(VENV42)
	$(VENV42)/bin/python -m pip install --quiet -r requirements/blender42.txt
	touch $@

# Node and openjd-cli, to test the Flamenco job type and the Open Job Description template.
$(VENVFARM)/.installed: requirements/farm.txt
	test -x $(VENVFARM)/bin/python || $(PYTHON) -m venv $(VENVFARM)
	$(VENVFARM)/bin/python -m pip install --quiet -r requirements/farm.txt
	touch $@

demo: setup
	$(VENV)/bin/python devtools/demo.py --out out/demo

lint: setup
	$(VENV)/bin/ruff check .

# Everything on Blender 5.0.1, then the Blender-facing tests again on 4.2 LTS (its jobs run
# on the .venv backend, as a user's Blender runs them on a separate backend Python).
test: setup lint
	$(VENV)/bin/python -m pytest
	T2I_BACKEND_PYTHON=$(CURDIR)/$(VENV)/bin/python $(VENV42)/bin/python -m pytest tests/blender

# Re-record the ComfyUI bridge's replay tests against a real ComfyUI (tests/comfyui/recordings);
# needs T2I_TEST_COMFYUI (its folder) and T2I_TEST_COMFYUI_PYTHON (the Python that runs it).
# Needs T2I_TEST_COMFYUI (a ComfyUI folder) and T2I_TEST_COMFYUI_PYTHON (its Python).
record-comfyui: setup
	$(VENV)/bin/python -m tests.comfyui.record
	T2I_COMFYUI_RECORD=1 $(VENV)/bin/python -m pytest -q tests/blender/test_comfyui.py
	T2I_COMFYUI_RECORD=1 T2I_BACKEND_PYTHON=$(CURDIR)/$(VENV)/bin/python \
		$(VENV42)/bin/python -m pytest -q tests/blender/test_comfyui.py

build: setup
	$(VENV)/bin/python devtools/extension.py validate
	$(VENV)/bin/python devtools/extension.py build --output-dir dist

clean:
	rm -rf out dist .pytest_cache .ruff_cache
