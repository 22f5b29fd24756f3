"""The emulated HIP runtime: a libamdhip64.so (built by build.py) whose C API runs on emulated gfx950
devices (runtime.py, which joins devices.py, memory.py, streams.py and modules.py), so that hip-python
works unchanged. Use hkrt.emu.activate() to load it."""
