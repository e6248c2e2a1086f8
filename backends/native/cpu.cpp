// ssdops CPU kernels over the definitions of ../cuda/stencil.cuh (the code the GPU runs): its grid and pixel
// types, gamma_at, diffusivity and boundary_face are called as they are; the sums of ssd_apply_pixel,
// filter_step_pixel and perona_malik_pixel are evaluated term by term in their order over whole rows (or, for
// Perona-Malik, with gamma computed once per pixel), so the results are those of the GPU's per-pixel
// functions, while the loops over columns vectorise and the rows are split over std::threads. A change to
// those sums in stencil.cuh must be made here too: tests/test_native.py and tests/test_cuda_kernels.py test
// both against the generic code. Built by setup.py into the shared library
// ssdops/backends/_native_kernels*.so and loaded with ctypes by backends/_native.py (ctypes releases the GIL
// for the duration of a call).
//
// Operand layout (checked by backends/_native.py): every image C-contiguous (D x H x W; the diagonals or
// filters K x D x H x W), consecutive images `*_stride` elements apart (0: one operand shared by the batch),
// out C-contiguous (images x D x H x W) and sharing no memory with the inputs. A 2-D grid is D = 1, a 1-D
// grid D = H = 1 (`ndim` says which axes are the grid's where it matters).
#include <algorithm>
#include <new>
#include <thread>
#include <vector>

#include "../cuda/stencil.cuh"

namespace {

using ssdops::index_t;

// body(row_begin, row_end) over the rows [0, rows) (a row: one image, one plane, one grid row), split into
// `threads` contiguous runs. A thread that cannot be started leaves its run to this thread.
template <typename F>
void parallel_rows(index_t rows, int threads, const F& body) {
    threads = (int)std::max<index_t>(1, std::min<index_t>(threads, rows));
    if (threads == 1) {
        body(0, rows);
        return;
    }
    const index_t step = (rows + threads - 1) / threads;
    std::vector<std::thread> pool;
    std::vector<std::pair<index_t, index_t>> left;
    for (index_t r = step; r < rows; r += step) {
        const index_t e = std::min(rows, r + step);
        try {
            pool.emplace_back([&body, r, e] { body(r, e); });
        } catch (...) {
            left.emplace_back(r, e);
        }
    }
    body(0, std::min(rows, step));
    for (auto& run : left) body(run.first, run.second);
    for (auto& t : pool) t.join();
}

// o[i] += a[i] * b[i] for i < n: the inner loop of the apply. On x86-64 with GCC or clang, also built for
// AVX-512 and AVX2 and picked at load time by the CPU (an ifunc), as NumPy picks its own loops: the baseline
// SSE2 build alone was 0.75-0.8x as fast as NumPy's blocked code at 2048². No FMA (setup.py builds with
// -ffp-contract=off): every target computes the same rounded products and sums.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(SSDOPS_NO_TARGET_CLONES)
#define SSDOPS_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define SSDOPS_CLONES
#endif

SSDOPS_CLONES void madd(float* __restrict__ o, const float* __restrict__ a, const float* __restrict__ b, int n) {
    for (int i = 0; i < n; ++i) o[i] += a[i] * b[i];
}

SSDOPS_CLONES void madd(double* __restrict__ o, const double* __restrict__ a, const double* __restrict__ b,
                        int n) {
    for (int i = 0; i < n; ++i) o[i] += a[i] * b[i];
}

// The pixel (image, z, y, x) of the grid, as stencil.cuh's pixel_of would produce it.
inline ssdops::Pixel pixel_at(index_t image, int z, int y, int x, const ssdops::Grid& grid) {
    ssdops::Pixel px = {image, {z, y, x}, (index_t)z * grid.stride[0] + (index_t)y * grid.stride[1] + x, true};
    return px;
}

// Row r of `images` images of the grid: (image, z, y).
inline void row_of(index_t r, const ssdops::Grid& grid, index_t* image, int* z, int* y) {
    const index_t planes = (index_t)grid.n[0] * grid.n[1];
    *image = r / planes;
    const index_t q = r - *image * planes;
    *z = (int)(q / grid.n[1]);
    *y = (int)(q - (index_t)*z * grid.n[1]);
}

// A u or A^T u, one output row at a time, term by term: for each offset k in order, the products of the
// row's pixels whose neighbour lies in the grid are added into the row. These are the sums of
// ssdops::ssd_apply_pixel (stencil.cuh, the GPU's code) with the same terms in the same order, so the results
// are the same bit for bit; the loop over a row's columns is what vectorises on a CPU.
template <typename T>
void apply(const T* d, const T* u, const int* oz, const int* oy, const int* ox, int K, int D, int H, int W,
           index_t images, index_t d_stride, index_t u_stride, int transpose, T* out, int threads) {
    const ssdops::Grid grid = ssdops::grid_of(3, D, H, W);
    const int sign = transpose ? -1 : 1;
    parallel_rows(images * D * H, threads, [&](index_t r0, index_t r1) {
        for (index_t r = r0; r < r1; ++r) {
            index_t image;
            int z, y;
            row_of(r, grid, &image, &z, &y);
            const T* di = d + image * d_stride;
            const T* ui = u + image * u_stride;
            const index_t row = (index_t)z * grid.stride[0] + (index_t)y * grid.stride[1];
            T* __restrict__ o = out + image * grid.size + row;  // out shares no memory with d or u
            for (int x = 0; x < W; ++x) o[x] = T(0);
            for (int k = 0; k < K; ++k) {
                const int zk = z + sign * oz[k], yk = y + sign * oy[k], dx = sign * ox[k];
                if (zk < 0 || zk >= D || yk < 0 || yk >= H) continue;
                const int x0 = std::max(0, -dx), x1 = std::min(W, W - dx);
                const index_t shift = (index_t)zk * grid.stride[0] + (index_t)yk * grid.stride[1] + dx - row;
                // A reads d_k at the output pixel, A^T at the source pixel (where u is read).
                const T* __restrict__ dk = di + k * grid.size + row + (transpose ? shift : 0);
                const T* __restrict__ uk = ui + row + shift;
                if (x1 > x0) madd(o + x0, dk + x0, uk + x0, x1 - x0);
            }
        }
    });
}

// u + dt W(zeta) u, one row at a time, term by term in the order of ssdops::filter_step_pixel (stencil.cuh):
// the centre term, the backward neighbours of every grid axis, the forward ones, then the update; the same
// results bit for bit, with loops over columns that vectorise.
template <typename T>
void filter_step(const T* zeta, const T* u, T dt, int ndim, int D, int H, int W, index_t images,
                 index_t z_stride, index_t u_stride, T* out, int threads) {
    const ssdops::Grid grid = ssdops::grid_of(ndim, D, H, W);
    const index_t n = grid.size;
    parallel_rows(images * D * H, threads, [&](index_t r0, index_t r1) {
        for (index_t r = r0; r < r1; ++r) {
            index_t image;
            int at[2];
            row_of(r, grid, &image, &at[0], &at[1]);
            const T* zi = zeta + image * z_stride;
            const index_t row = (index_t)at[0] * grid.stride[0] + (index_t)at[1] * grid.stride[1];
            const T* __restrict__ centre = u + image * u_stride + row;
            const T* __restrict__ zc = zi + 2 * ndim * n + row;
            T* __restrict__ o = out + image * n + row;  // out shares no memory with zeta or u
            for (int x = 0; x < W; ++x) o[x] = -zc[x] * centre[x];
            for (int forward = 0; forward < 2; ++forward) {
                for (int a = grid.first; a < 3; ++a) {
                    int x0 = 0, x1 = W;
                    if (a < 2) {  // a plane or row axis: the whole row has the neighbour, or none of it
                        if (forward ? at[a] == grid.n[a] - 1 : at[a] == 0) continue;
                    } else if (forward) {
                        x1 = W - 1;
                    } else {
                        x0 = 1;
                    }
                    const index_t shift = forward ? grid.stride[a] : -grid.stride[a];
                    const T* zk = zi + (index_t)((forward ? ndim : 0) + a - grid.first) * n + row;
                    if (x1 > x0) madd(o + x0, zk + x0, centre + shift + x0, x1 - x0);
                }
            }
            for (int x = 0; x < W; ++x) o[x] = centre[x] + dt * o[x];
        }
    });
}

// One explicit Perona-Malik step in two passes over the rows: gamma at every pixel (ssdops::gamma_at of
// stencil.cuh, once per pixel), then at every pixel the sums of ssdops::perona_malik_pixel with the
// neighbours' gamma read from the first pass where the GPU recomputes them (gamma_next is gamma_at at the
// neighbour: the same values), term for term in its order. The GPU's form recomputes gamma 2 ndim + 1 times
// per pixel, which on a CPU cost 2-6x the time of NumPy's blocked code.
template <typename T>
void perona_malik_step(const T* u, T dt, T lam, T ghost_gamma, int ndim, int D, int H, int W, index_t images,
                       int g, int bc, T* out, int threads) {
    const ssdops::Grid grid = ssdops::grid_of(ndim, D, H, W);
    const index_t rows = images * D * H;
    std::vector<T> gammas((size_t)(images * grid.size));
    T* gamma = gammas.data();
    parallel_rows(rows, threads, [&](index_t r0, index_t r1) {
        for (index_t r = r0; r < r1; ++r) {
            index_t image;
            int z, y;
            row_of(r, grid, &image, &z, &y);
            const T* ui = u + image * grid.size;
            T* gi = gamma + image * grid.size;
            for (int x = 0; x < W; ++x) {
                const ssdops::Pixel px = pixel_at(image, z, y, x, grid);
                gi[px.p] = ssdops::gamma_at(ui, grid, px.at, px.p, bc, g, lam);
            }
        }
    });
    parallel_rows(rows, threads, [&](index_t r0, index_t r1) {
        for (index_t r = r0; r < r1; ++r) {
            index_t image;
            int z, y;
            row_of(r, grid, &image, &z, &y);
            const T* ui = u + image * grid.size;
            const T* gi = gamma + image * grid.size;
            T* o = out + image * grid.size;
            for (int x = 0; x < W; ++x) {
                const ssdops::Pixel px = pixel_at(image, z, y, x, grid);
                const index_t p = px.p;
                const T centre = ui[p];
                const T gc = gi[p];
                const T edge = ssdops::boundary_face(gc, bc, ghost_gamma);
                T before[3], after[3];
                for (int a = grid.first; a < 3; ++a) {
                    before[a] = px.at[a] > 0 ? (gi[p - grid.stride[a]] + gc) / T(2) : edge;
                    after[a] = px.at[a] < grid.n[a] - 1 ? (gc + gi[p + grid.stride[a]]) / T(2) : edge;
                }
                T lu = 0, faces = 0;
                for (int a = grid.first; a < 3; ++a)
                    if (px.at[a] > 0) lu += before[a] * ui[p - grid.stride[a]];
                for (int a = grid.first; a < 3; ++a)
                    if (px.at[a] < grid.n[a] - 1) lu += after[a] * ui[p + grid.stride[a]];
                for (int a = grid.first; a < 3; ++a)
                    faces = a == grid.first ? before[a] + after[a] : faces + (before[a] + after[a]);
                lu += -faces * centre;
                o[p] = centre + dt * lu;
            }
        }
    });
}

}  // namespace

#define SSDOPS_NATIVE(T, suffix)                                                                               \
    extern "C" void ssdops_native_apply_##suffix(const T* d, const T* u, const int* oz, const int* oy,         \
                                                 const int* ox, int K, int D, int H, int W, index_t images,    \
                                                 index_t d_stride, index_t u_stride, int transpose, T* out,    \
                                                 int threads) {                                                \
        apply<T>(d, u, oz, oy, ox, K, D, H, W, images, d_stride, u_stride, transpose, out, threads);          \
    }                                                                                                          \
    extern "C" void ssdops_native_filter_step_##suffix(const T* zeta, const T* u, T dt, int ndim, int D, int H, \
                                                       int W, index_t images, index_t z_stride,                \
                                                       index_t u_stride, T* out, int threads) {                \
        filter_step<T>(zeta, u, dt, ndim, D, H, W, images, z_stride, u_stride, out, threads);                 \
    }                                                                                                          \
    /* 0, or 1 when the gamma buffer could not be allocated (no exception crosses into C). */                 \
    extern "C" int ssdops_native_perona_malik_step_##suffix(const T* u, T dt, T lam, T ghost_gamma, int ndim,  \
                                                            int D, int H, int W, index_t images, int g,        \
                                                            int bc, T* out, int threads) {                     \
        try {                                                                                                  \
            perona_malik_step<T>(u, dt, lam, ghost_gamma, ndim, D, H, W, images, g, bc, out, threads);        \
        } catch (const std::bad_alloc&) {                                                                      \
            return 1;                                                                                          \
        }                                                                                                      \
        return 0;                                                                                              \
    }

SSDOPS_NATIVE(float, f32)
SSDOPS_NATIVE(double, f64)

// The version of the calling convention above: backends/_native.py refuses a library of another version
// (a stale build from an older checkout).
extern "C" int ssdops_native_abi() { return 1; }
