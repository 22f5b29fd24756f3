"""What an emulated gfx950 device reports: hipDeviceProp_tR0600 fields and hipDeviceGetAttribute values.

Facts of the MI350X (256 CUs, 160 KiB LDS per CU, 512 KiB of VGPRs per CU, 64-wide waves) where the
emulator models them; features it does not model (textures, surfaces, managed and host-mapped
memory, cooperative launches, stream priorities) report 0.
"""
from __future__ import annotations

from .. import chip
from .. import machine as m

ARCH_NAME = "gfx950:sramecc+:xnack-"
HIP_VERSION = 70200000          # 7.2.0 as MAJOR * 10000000 + MINOR * 100000 + PATCH
LDS_PER_BLOCK = chip.LDS_BYTES  # 163840
REGS_PER_CU = 512 * 1024 // 4   # 32-bit registers in the CU's vector register file
INT_MAX = 2**31 - 1


def properties(index: int, machine: m.Machine) -> dict:
    """hipDeviceProp_tR0600 field -> value; fields not named here are zero."""
    return {
        "name": chip.DEVICE_NAME.encode(),
        "uuid": b"hkrt-gfx950-" + index.to_bytes(4, "little"),
        "totalGlobalMem": machine.memory.capacity,
        "sharedMemPerBlock": LDS_PER_BLOCK,
        "regsPerBlock": REGS_PER_CU,
        "warpSize": chip.WAVE_SIZE,
        "memPitch": INT_MAX,
        "maxThreadsPerBlock": chip.MAX_WORKGROUP_SIZE,
        "maxThreadsDim": [1024, 1024, 1024],
        "maxGridSize": [INT_MAX, 65536, 65536],
        "clockRate": 2200000,                       # kHz
        "totalConstMem": 2**31,
        "major": 9,
        "minor": 5,
        "textureAlignment": 256,
        "texturePitchAlignment": 256,
        "multiProcessorCount": chip.COMPUTE_UNITS,
        "concurrentKernels": 1,
        "ECCEnabled": 1,
        "pciBusID": index + 1,
        "unifiedAddressing": 1,                     # device pointers are unique across devices
        "memoryClockRate": 2000000,                 # kHz
        "memoryBusWidth": 8192,
        "l2CacheSize": 4 << 20,
        "maxThreadsPerMultiProcessor": 2048,        # 32 waves per CU
        "globalL1CacheSupported": 1,
        "localL1CacheSupported": 1,
        "sharedMemPerMultiprocessor": LDS_PER_BLOCK,
        "regsPerMultiprocessor": REGS_PER_CU,
        "singleToDoublePrecisionPerfRatio": 2,
        "sharedMemPerBlockOptin": LDS_PER_BLOCK,
        "maxBlocksPerMultiProcessor": 32,
        "gcnArchName": ARCH_NAME.encode(),
        "maxSharedMemoryPerMultiProcessor": LDS_PER_BLOCK,
        "clockInstructionRate": 100000,             # kHz: the 100 MHz counter behind clock64()
    }


# hipDeviceArch_t bit fields; the rest (surface functions, dynamic parallelism...) are 0.
ARCH_FLAGS = ("hasGlobalInt32Atomics", "hasGlobalFloatAtomicExch", "hasSharedInt32Atomics",
              "hasSharedFloatAtomicExch", "hasFloatAtomicAdd", "hasGlobalInt64Atomics",
              "hasSharedInt64Atomics", "hasDoubles", "hasWarpVote", "hasWarpBallot", "hasWarpShuffle",
              "hasFunnelShift", "hasThreadFenceSystem", "has3dGrid")

# hipDeviceAttribute_t -> the property it reads (a name, or (name, index) for array fields) or a constant.
ATTRIBUTES = {
    1: 0,                                   # AccessPolicyMaxWindowSize
    2: "asyncEngineCount",
    3: "canMapHostMemory",
    4: "canUseHostPointerForRegisteredMem",
    5: "clockRate",
    6: "computeMode",
    7: "computePreemptionSupported",
    8: "concurrentKernels",
    9: "concurrentManagedAccess",
    10: "cooperativeLaunch",
    11: "cooperativeMultiDeviceLaunch",
    12: "deviceOverlap",
    13: "directManagedMemAccessFromHost",
    14: "globalL1CacheSupported",
    15: "hostNativeAtomicSupported",
    16: "integrated",
    17: "isMultiGpuBoard",
    18: "kernelExecTimeoutEnabled",
    19: "l2CacheSize",
    20: "localL1CacheSupported",
    22: "luidDeviceNodeMask",
    23: "major",
    24: "managedMemory",
    25: "maxBlocksPerMultiProcessor",
    26: ("maxThreadsDim", 0), 27: ("maxThreadsDim", 1), 28: ("maxThreadsDim", 2),
    29: ("maxGridSize", 0), 30: ("maxGridSize", 1), 31: ("maxGridSize", 2),
    32: 0, 33: 0, 34: 0, 35: 0, 36: 0, 37: 0, 38: 0,            # surfaces
    39: 0, 40: 0, 41: 0, 42: 0, 43: 0, 44: 0, 45: 0, 46: 0,    # textures
    47: 0, 48: 0, 49: 0, 50: 0, 51: 0, 52: 0, 53: 0, 54: 0,
    56: "maxThreadsPerBlock",
    57: "maxThreadsPerMultiProcessor",
    58: "memPitch",
    59: "memoryBusWidth",
    60: "memoryClockRate",
    61: "minor",
    62: "multiGpuBoardGroupID",
    63: "multiProcessorCount",
    65: "pageableMemoryAccess",
    66: "pageableMemoryAccessUsesHostPageTables",
    67: "pciBusID",
    68: "pciDeviceID",
    69: "pciDomainID",
    70: "persistingL2CacheMaxSize",
    71: "regsPerBlock",
    72: "regsPerMultiprocessor",
    73: "reservedSharedMemPerBlock",
    74: "sharedMemPerBlock",
    75: "sharedMemPerBlockOptin",
    76: "sharedMemPerMultiprocessor",
    77: "singleToDoublePrecisionPerfRatio",
    78: "streamPrioritiesSupported",
    79: "surfaceAlignment",
    80: "tccDriver",
    81: "textureAlignment",
    82: "texturePitchAlignment",
    83: "totalConstMem",
    84: "totalGlobalMem",
    85: "unifiedAddressing",
    87: "warpSize",
    88: "memoryPoolsSupported",
    89: 0,                                   # VirtualMemoryManagementSupported
    90: "hostRegisterSupported",
    91: "memoryPoolSupportedHandleTypes",
    92: -1,                                  # HostNumaId: none
    10002: "maxSharedMemoryPerMultiProcessor",
    10007: 0, 10008: 0, 10009: 0, 10010: 0,  # CooperativeMultiDeviceUnmatched*
    10011: "isLargeBar",
    10012: "asicRevision",
    10013: 0,                                # CanUseStreamWaitValue
    10014: 0,                                # ImageSupport
    10015: "multiProcessorCount",            # PhysicalMultiProcessorCount
    10016: 0,                                # FineGrainSupport
    10017: "clockInstructionRate",           # WallClockRate
    10018: 8,                                # NumberOfXccs
    10019: 512,                              # MaxAvailableVgprsPerThread
}


def attribute(props: dict, attr: int) -> int | None:
    """The value of a hipDeviceAttribute_t, or None for one this device does not answer.

    The answer is an int, so sizes beyond it (totalGlobalMem) saturate at INT_MAX.
    """
    src = ATTRIBUTES.get(attr)
    if src is None:
        return None
    if isinstance(src, int):
        return src
    value = props[src[0]][src[1]] if isinstance(src, tuple) else props.get(src, 0)
    return min(value, INT_MAX)
