"""hkrt: ahead-of-time compiled HipKittens-style bf16 GEMM kernels for AMD gfx950, driven from numpy."""
__version__ = "0.1.0"
