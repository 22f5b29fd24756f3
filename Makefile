# hkrt: `make demo` runs the main job, `make test` the tests; each sets up everything it needs.
PYTHON ?= python3
VENV   := .venv
VPY    := $(VENV)/bin/python

.PHONY: deps toolchain kernels native wheel test demo kernel-report clean

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

# The emulator's C execution core and its emulated libamdhip64 (both built with cffi and gcc), into the
# per-user native build cache (HKRT_CACHE_DIR; hkrt/emu/native.py); first use builds them the same way.
native: deps
	$(VPY) -m hkrt.emu.build_core
	$(VPY) -m hkrt.emu.hip.build

# dist/hkrt-<version>-py3-none-any.whl: the package, the code objects and their manifest, and the C sources
# the emulator builds on first use; nothing built for the host. build/ is cleared so nothing stale leaks in.
wheel: kernels
	rm -rf build
	$(VPY) -m pip wheel -q --no-deps --wheel-dir dist .

test: kernels native
	$(VPY) -m pytest -q

demo: kernels native
	$(VPY) -m hkrt demo

# Regenerate the per-variant table in docs/kernels.md from the built kernels.
kernel-report: kernels
	$(VPY) -m hkrt.kernel_report --markdown docs/kernels.md

clean:
	rm -rf hkrt/_kernels build dist *.egg-info
