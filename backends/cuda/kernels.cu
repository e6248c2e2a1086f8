// The GPU entry points of ssdops: one thin __global__ kernel per operation and element type, each handing
// its thread's coordinates to the thread function of stencil.cuh. Compiled by NVRTC through cupy.RawModule
// (backends/_cupy.py inlines stencil.cuh first) and, in the tests, the same text by nvcc --ptx.
#include "stencil.cuh"

#define SSDOPS_GLOBAL(name, T, suffix, params, args)                                         \
    extern "C" __global__ void ssdops_##name##_##suffix params {                              \
        ssdops::name##_thread<T>(blockIdx.x, blockDim.x, threadIdx.x, SSDOPS_EXPAND args); \
    }

SSDOPS_ALL_KERNELS(SSDOPS_GLOBAL)
