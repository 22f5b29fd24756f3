# hkrt: `make demo` runs the main job, `make test` the tests; each sets up everything it needs.
PYTHON ?= python3
VENV   := .venv
VPY    := $(VENV)/bin/python

.PHONY: deps toolchain kernels test demo clean

deps: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/system-deps.sh
	sh scripts/system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -e '.[test]'
	touch $@

toolchain:
	sh scripts/system-deps.sh
	$(PYTHON) toolchain.py ensure >/dev/null

kernels: deps toolchain
	$(VPY) build.py

test: kernels
	$(VPY) -m pytest -q

demo: kernels
	$(VPY) -m hkrt demo

clean:
	rm -rf hkrt/_kernels build *.egg-info
