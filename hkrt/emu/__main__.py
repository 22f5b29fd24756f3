"""`python -m hkrt.emu libpath`: print the emulated libamdhip64's path (building it if needed), so that
`LD_PRELOAD=$(python -m hkrt.emu libpath) python prog.py` runs any hip-python program on the emulator."""
import sys

from .hip import build

if sys.argv[1:] != ["libpath"]:
    sys.exit("usage: python -m hkrt.emu libpath")
print(build.build())
