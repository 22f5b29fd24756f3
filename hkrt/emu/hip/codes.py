"""HIP's numeric constants (values as hip-python's enums give them) and the HipError exception."""
from __future__ import annotations

# hipError_t: value -> (name, description for hipGetErrorString).
ERRORS = {
    0: ("hipSuccess", "no error"),
    1: ("hipErrorInvalidValue", "invalid argument"),
    2: ("hipErrorOutOfMemory", "out of memory"),
    3: ("hipErrorNotInitialized", "initialization error"),
    4: ("hipErrorDeinitialized", "driver shutting down"),
    5: ("hipErrorProfilerDisabled", "profiler disabled while using external profiling tool"),
    6: ("hipErrorProfilerNotInitialized", "profiler is not initialized"),
    7: ("hipErrorProfilerAlreadyStarted", "profiler already started"),
    8: ("hipErrorProfilerAlreadyStopped", "profiler already stopped"),
    9: ("hipErrorInvalidConfiguration", "invalid configuration argument"),
    12: ("hipErrorInvalidPitchValue", "invalid pitch argument"),
    13: ("hipErrorInvalidSymbol", "invalid device symbol"),
    17: ("hipErrorInvalidDevicePointer", "invalid device pointer"),
    21: ("hipErrorInvalidMemcpyDirection", "invalid copy direction for memcpy"),
    35: ("hipErrorInsufficientDriver", "driver version is insufficient for runtime version"),
    52: ("hipErrorMissingConfiguration", "__global__ function call is not configured"),
    53: ("hipErrorPriorLaunchFailure", "unspecified launch failure in prior launch"),
    98: ("hipErrorInvalidDeviceFunction", "invalid device function"),
    100: ("hipErrorNoDevice", "no ROCm-capable device is detected"),
    101: ("hipErrorInvalidDevice", "invalid device ordinal"),
    200: ("hipErrorInvalidImage", "device kernel image is invalid"),
    201: ("hipErrorInvalidContext", "invalid device context"),
    202: ("hipErrorContextAlreadyCurrent", "context already current"),
    205: ("hipErrorMapFailed", "mapping of buffer object failed"),
    206: ("hipErrorUnmapFailed", "unmapping of buffer object failed"),
    207: ("hipErrorArrayIsMapped", "array is mapped"),
    208: ("hipErrorAlreadyMapped", "resource already mapped"),
    209: ("hipErrorNoBinaryForGpu", "no kernel image is available for execution on the device"),
    210: ("hipErrorAlreadyAcquired", "resource already acquired"),
    211: ("hipErrorNotMapped", "resource not mapped"),
    212: ("hipErrorNotMappedAsArray", "resource not mapped as array"),
    213: ("hipErrorNotMappedAsPointer", "resource not mapped as pointer"),
    214: ("hipErrorECCNotCorrectable", "uncorrectable ECC error encountered"),
    215: ("hipErrorUnsupportedLimit", "limit is not supported on this architecture"),
    216: ("hipErrorContextAlreadyInUse", "exclusive-thread device already in use by a different thread"),
    217: ("hipErrorPeerAccessUnsupported", "peer access is not supported between these two devices"),
    218: ("hipErrorInvalidKernelFile", "invalid kernel file"),
    219: ("hipErrorInvalidGraphicsContext", "invalid OpenGL or DirectX context"),
    300: ("hipErrorInvalidSource", "invalid source"),
    301: ("hipErrorFileNotFound", "file not found"),
    302: ("hipErrorSharedObjectSymbolNotFound", "shared object symbol not found"),
    303: ("hipErrorSharedObjectInitFailed", "shared object initialization failed"),
    304: ("hipErrorOperatingSystem", "OS call failed or operation not supported on this OS"),
    400: ("hipErrorInvalidHandle", "invalid resource handle"),
    401: ("hipErrorIllegalState", "the operation cannot be performed in the present state"),
    500: ("hipErrorNotFound", "named symbol not found"),
    600: ("hipErrorNotReady", "device not ready"),
    700: ("hipErrorIllegalAddress", "an illegal memory access was encountered"),
    701: ("hipErrorLaunchOutOfResources", "too many resources requested for launch"),
    702: ("hipErrorLaunchTimeOut", "the launch timed out and was terminated"),
    704: ("hipErrorPeerAccessAlreadyEnabled", "peer access is already enabled"),
    705: ("hipErrorPeerAccessNotEnabled", "peer access has not been enabled"),
    708: ("hipErrorSetOnActiveProcess", "cannot set while device is active in this process"),
    709: ("hipErrorContextIsDestroyed", "context is destroyed"),
    710: ("hipErrorAssert", "device-side assert triggered"),
    712: ("hipErrorHostMemoryAlreadyRegistered", "part or all of the requested memory range is already mapped"),
    713: ("hipErrorHostMemoryNotRegistered", "pointer does not correspond to a registered memory region"),
    719: ("hipErrorLaunchFailure", "unspecified launch failure"),
    720: ("hipErrorCooperativeLaunchTooLarge", "too many blocks in cooperative launch"),
    801: ("hipErrorNotSupported", "operation not supported"),
    900: ("hipErrorStreamCaptureUnsupported", "operation not permitted when stream is capturing"),
    901: ("hipErrorStreamCaptureInvalidated", "operation failed due to a previous error during capture"),
    902: ("hipErrorStreamCaptureMerge", "operation would result in a merge of separate capture sequences"),
    903: ("hipErrorStreamCaptureUnmatched", "capture was not ended in the same stream as it began"),
    904: ("hipErrorStreamCaptureUnjoined", "capturing stream has unjoined work"),
    905: ("hipErrorStreamCaptureIsolation", "dependency created on uncaptured work in another stream"),
    906: ("hipErrorStreamCaptureImplicit", "operation would make the legacy stream depend on a capturing blocking stream"),
    907: ("hipErrorCapturedEvent", "operation not permitted on an event last recorded in a capturing stream"),
    908: ("hipErrorStreamCaptureWrongThread", "attempt to terminate a thread-local capture sequence from another thread"),
    910: ("hipErrorGraphExecUpdateFailure", "the graph update was not performed because it included changes which violated constraints specific to instantiated graph update"),
    911: ("hipErrorInvalidChannelDescriptor", "invalid channel descriptor"),
    912: ("hipErrorInvalidTexture", "invalid texture"),
    999: ("hipErrorUnknown", "unknown error"),
    1052: ("hipErrorRuntimeMemory", "runtime memory call returned error"),
    1053: ("hipErrorRuntimeOther", "runtime call other than memory returned error"),
    1054: ("hipErrorTbd", "marker that more error codes are needed"),
}

# The codes this runtime returns, by name.
SUCCESS = 0
INVALID_VALUE = 1
OUT_OF_MEMORY = 2
NOT_INITIALIZED = 3
INVALID_MEMCPY_DIRECTION = 21
INVALID_DEVICE_FUNCTION = 98
INVALID_DEVICE = 101
INVALID_IMAGE = 200
NO_BINARY_FOR_GPU = 209
FILE_NOT_FOUND = 301
INVALID_HANDLE = 400
NOT_FOUND = 500
ILLEGAL_ADDRESS = 700
LAUNCH_OUT_OF_RESOURCES = 701
LAUNCH_FAILURE = 719
UNKNOWN = 999

# hipMemcpyKind
MEMCPY_H2H, MEMCPY_H2D, MEMCPY_D2H, MEMCPY_D2D, MEMCPY_DEFAULT = 0, 1, 2, 3, 4
MEMCPY_D2D_NO_CU = 1024

# hipFunction_attribute (hipFuncGetAttribute) and hipFuncAttribute (hipFuncSetAttribute)
FUNC_MAX_THREADS_PER_BLOCK = 0
FUNC_SHARED_SIZE_BYTES = 1
FUNC_CONST_SIZE_BYTES = 2
FUNC_LOCAL_SIZE_BYTES = 3
FUNC_NUM_REGS = 4
FUNC_PTX_VERSION = 5
FUNC_BINARY_VERSION = 6
FUNC_CACHE_MODE_CA = 7
FUNC_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8
FUNC_PREFERRED_SHARED_MEMORY_CARVEOUT = 9

# hipModuleLaunchKernel's `extra` keys
LAUNCH_PARAM_BUFFER_POINTER, LAUNCH_PARAM_BUFFER_SIZE, LAUNCH_PARAM_END = 1, 2, 3

# Stream and event flags
STREAM_NON_BLOCKING = 0x1
STREAM_PER_THREAD = 0x2          # the (hipStream_t)2 handle
EVENT_DISABLE_TIMING = 0x2
EVENT_INTERPROCESS = 0x4
# every valid flag: BlockingSync, DisableTiming, Interprocess, DisableSystemFence, ReleaseToDevice/System
EVENT_FLAGS = 0x1 | 0x2 | 0x4 | 0x20000000 | 0x40000000 | 0x80000000


class HipError(Exception):
    """Raised inside the runtime; the C entry point returns `code`."""

    def __init__(self, code: int, message: str = ""):
        super().__init__(message or ERRORS[code][0])
        self.code = code

