// Host emulation of the GPU launches of kernels.cu (a test library: g++, loaded with ctypes by
// tests/test_cuda_kernels.py; not installed). emulate_<name>_<suffix>(grid, block_dim, <kernel parameters>)
// runs the kernel's thread function for every (blockIdx.x, threadIdx.x) of a grid of `grid` blocks of
// `block_dim` threads, one after the other: the same index arithmetic and bounds checks as on the GPU.
// signature_<name>_<suffix>() returns the kernel's parameter list as written, "(const float* d, ...)", so
// that the tests can check the argument tuples of backends/_cupy.py against it before a call.
#include "stencil.cuh"

#define SSDOPS_EMULATE(name, T, suffix, params, args)                                               \
    extern "C" void emulate_##name##_##suffix(ssdops::index_t grid, int block_dim,                  \
                                              SSDOPS_EXPAND params) {                               \
        for (ssdops::index_t block = 0; block < grid; ++block)                                      \
            for (int thread = 0; thread < block_dim; ++thread)                                      \
                ssdops::name##_thread<T>(block, block_dim, thread, SSDOPS_EXPAND args);            \
    }                                                                                               \
    extern "C" const char* signature_##name##_##suffix() { return #params; }

SSDOPS_ALL_KERNELS(SSDOPS_EMULATE)
