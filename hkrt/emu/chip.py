"""What the emulated gfx950 device is: the figures the loader, the device and the HIP layer all report."""

ARCH = "gfx950"
DEVICE_NAME = "AMD Instinct MI350X (hkrt gfx950 emulator)"
COMPUTE_UNITS = 256
WAVE_SIZE = 64
MAX_WORKGROUP_SIZE = 1024
LDS_BYTES = 160 * 1024
