// ssdops CPU kernels over the definitions of ../cuda/stencil.cuh (the code the GPU runs): its grid and pixel
// types, diffusivity and boundary_face are called as they are; the sums of ssd_apply_pixel,
// filter_step_pixel, gamma_at and perona_malik_pixel are evaluated term by term in their order over rows (for
// Perona-Malik with gamma computed once per pixel), so the results are those of the GPU's per-pixel functions
// bit for bit, while the loops over columns vectorise and the rows are split over std::threads. A change to
// those sums in stencil.cuh must be made here too: tests/test_native.py compares the two builds bit for bit
// (a change to one alone fails it), and both with the generic code. Built by setup.py into the shared library
// ssdops/backends/_native_kernels*.so and loaded with ctypes by backends/_native.py (ctypes releases the GIL
// for the duration of a call).
//
// Operand layout (checked by backends/_native.py): every image C-contiguous (D x H x W; the diagonals or
// filters K x D x H x W), consecutive images `*_stride` elements apart (0: one operand shared by the batch),
// out C-contiguous (images x D x H x W) and sharing no memory with the inputs. A 2-D grid is D = 1, a 1-D
// grid D = H = 1 (`ndim` says which axes are the grid's where it matters).
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <new>
#include <thread>
#include <type_traits>
#include <vector>

#include "../cuda/stencil.cuh"

#if defined(__SSE2__)
#include <immintrin.h>
#endif

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

// SSDOPS_CLONES: the row loops of every kernel (their inner loops inlined) are, on x86-64 with GCC or
// clang, also built for AVX-512 and AVX2 and picked at load time by the CPU (an ifunc), as NumPy picks its
// own loops: the baseline SSE2 build alone was 0.75-0.8x as fast as NumPy's blocked code at 2048². No FMA
// (setup.py builds with -ffp-contract=off): every target computes the same rounded products and sums.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(SSDOPS_NO_TARGET_CLONES)
#define SSDOPS_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define SSDOPS_CLONES
#endif
#if defined(__GNUC__) || defined(__clang__)
#define SSDOPS_INLINE inline __attribute__((always_inline))
#else
#define SSDOPS_INLINE inline
#endif

// o[i] += a[i] * b[i] for i < n: the inner loop of apply and filter_step, inlined into their row loops
// (a call per chunk and term cost more than the arithmetic: 1.7x at 2048^2).
template <typename T>
SSDOPS_INLINE void madd(T* __restrict__ o, const T* __restrict__ a, const T* __restrict__ b, int n) {
    for (int i = 0; i < n; ++i) o[i] += a[i] * b[i];
}

// o[i] = a[i] for i < n, with non-temporal stores where o is aligned to 16 bytes: the output is written
// once and not read again by the kernel, and a plain store would first read its cache line from memory
// (8 of a 5-point apply's 7 arrays of traffic instead of 7). stream_fence() orders them before the
// thread's work is reported done.
#if defined(__SSE2__)
inline void stream_store(float* o, const float* a, int n) {
    int i = 0;
    if (reinterpret_cast<std::uintptr_t>(o) % 16 == 0)
        for (; i + 4 <= n; i += 4) _mm_stream_ps(o + i, _mm_load_ps(a + i));
    for (; i < n; ++i) o[i] = a[i];
}
inline void stream_store(double* o, const double* a, int n) {
    int i = 0;
    if (reinterpret_cast<std::uintptr_t>(o) % 16 == 0)
        for (; i + 2 <= n; i += 2) _mm_stream_pd(o + i, _mm_load_pd(a + i));
    for (; i < n; ++i) o[i] = a[i];
}
inline void stream_fence() { _mm_sfence(); }
#else
template <typename T>
void stream_store(T* o, const T* a, int n) {
    for (int i = 0; i < n; ++i) o[i] = a[i];
}
inline void stream_fence() {}
#endif

// Row r of `images` images of the grid: (image, z, y).
inline void row_of(index_t r, const ssdops::Grid& grid, index_t* image, int* z, int* y) {
    const index_t planes = (index_t)grid.n[0] * grid.n[1];
    *image = r / planes;
    const index_t q = r - *image * planes;
    *z = (int)(q / grid.n[1]);
    *y = (int)(q - (index_t)*z * grid.n[1]);
}

// Columns of a row per chunk in apply and filter_step.
constexpr int CHUNK = 128;

// A u or A^T u, one output row at a time, term by term: for each offset k in order, the products of the
// row's pixels whose neighbour lies in the grid are added into the row. These are the sums of
// ssdops::ssd_apply_pixel (stencil.cuh, the GPU's code) with the same terms in the same order, so the results
// are the same bit for bit; the loop over a row's columns is what vectorises on a CPU.
template <typename T>
SSDOPS_CLONES void apply_rows(const T* d, const T* u, const int* oz, const int* oy, const int* ox, int K,
                              const ssdops::Grid& grid, index_t d_stride, index_t u_stride, int transpose, T* out,
                              index_t r0, index_t r1) {
    const int D = grid.n[0], H = grid.n[1], W = grid.n[2];
    const int sign = transpose ? -1 : 1;
    for (index_t r = r0; r < r1; ++r) {
        index_t image;
        int z, y;
        row_of(r, grid, &image, &z, &y);
        const T* di = d + image * d_stride;
        const T* ui = u + image * u_stride;
        const index_t row = (index_t)z * grid.stride[0] + (index_t)y * grid.stride[1];
        T* __restrict__ o = out + image * grid.size + row;  // out shares no memory with d or u
        // The row in chunks that stay in L1, every term over one chunk before the next: the K + 1 input
        // streams then advance together (a whole-row pass per term restarts the hardware prefetchers
        // K times per row: 1.3x slower at 2048^2 with chunks of 512 or more). A chunk's sums are made in
        // a buffer on the stack and then stored to out once (stream_store).
        alignas(64) T acc[CHUNK];
        for (int c0 = 0; c0 < W; c0 += CHUNK) {
            const int c1 = std::min(W, c0 + CHUNK);
            for (int x = 0; x < c1 - c0; ++x) acc[x] = T(0);
            for (int k = 0; k < K; ++k) {
                const int zk = z + sign * oz[k], yk = y + sign * oy[k], dx = sign * ox[k];
                if (zk < 0 || zk >= D || yk < 0 || yk >= H) continue;
                const int x0 = std::max(c0, -dx), x1 = std::min(c1, W - dx);
                const index_t shift = (index_t)zk * grid.stride[0] + (index_t)yk * grid.stride[1] + dx - row;
                // A reads d_k at the output pixel, A^T at the source pixel (where u is read).
                const T* __restrict__ dk = di + k * grid.size + row + (transpose ? shift : 0);
                const T* __restrict__ uk = ui + row + shift;
                if (x1 > x0) madd(acc + (x0 - c0), dk + x0, uk + x0, x1 - x0);
            }
            stream_store(o + c0, acc, c1 - c0);
        }
    }
    stream_fence();
}

template <typename T>
void apply(const T* d, const T* u, const int* oz, const int* oy, const int* ox, int K, int D, int H, int W,
           index_t images, index_t d_stride, index_t u_stride, int transpose, T* out, int threads) {
    const ssdops::Grid grid = ssdops::grid_of(3, D, H, W);
    parallel_rows(images * D * H, threads, [&](index_t r0, index_t r1) {
        apply_rows(d, u, oz, oy, ox, K, grid, d_stride, u_stride, transpose, out, r0, r1);
    });
}

// u + dt W(zeta) u, one row at a time, term by term in the order of ssdops::filter_step_pixel (stencil.cuh):
// the centre term, the backward neighbours of every grid axis, the forward ones, then the update; the same
// results bit for bit, with loops over columns that vectorise.
template <typename T>
SSDOPS_CLONES void filter_rows(const T* zeta, const T* u, T dt, int ndim, const ssdops::Grid& grid,
                               index_t z_stride, index_t u_stride, T* out, index_t r0, index_t r1) {
    const int W = grid.n[2];
    const index_t n = grid.size;
    for (index_t r = r0; r < r1; ++r) {
        index_t image;
        int at[2];
        row_of(r, grid, &image, &at[0], &at[1]);
        const T* zi = zeta + image * z_stride;
        const index_t row = (index_t)at[0] * grid.stride[0] + (index_t)at[1] * grid.stride[1];
        const T* __restrict__ centre = u + image * u_stride + row;
        const T* __restrict__ zc = zi + 2 * ndim * n + row;
        T* __restrict__ o = out + image * n + row;  // out shares no memory with zeta or u
        // In chunks of the row, summed on the stack and stored once, as apply does.
        alignas(64) T acc[CHUNK];
        for (int c0 = 0; c0 < W; c0 += CHUNK) {
            const int c1 = std::min(W, c0 + CHUNK);
            for (int x = c0; x < c1; ++x) acc[x - c0] = -zc[x] * centre[x];
            for (int forward = 0; forward < 2; ++forward) {
                for (int a = grid.first; a < 3; ++a) {
                    int x0 = c0, x1 = c1;
                    if (a < 2) {  // a plane or row axis: the whole row has the neighbour, or none of it
                        if (forward ? at[a] == grid.n[a] - 1 : at[a] == 0) continue;
                    } else if (forward) {
                        x1 = std::min(c1, W - 1);
                    } else {
                        x0 = std::max(c0, 1);
                    }
                    const index_t shift = forward ? grid.stride[a] : -grid.stride[a];
                    const T* zk = zi + (index_t)((forward ? ndim : 0) + a - grid.first) * n + row;
                    if (x1 > x0) madd(acc + (x0 - c0), zk + x0, centre + shift + x0, x1 - x0);
                }
            }
            for (int x = c0; x < c1; ++x) acc[x - c0] = centre[x] + dt * acc[x - c0];
            stream_store(o + c0, acc, c1 - c0);
        }
    }
    stream_fence();
}

template <typename T>
void filter_step(const T* zeta, const T* u, T dt, int ndim, int D, int H, int W, index_t images,
                 index_t z_stride, index_t u_stride, T* out, int threads) {
    const ssdops::Grid grid = ssdops::grid_of(ndim, D, H, W);
    parallel_rows(images * D * H, threads, [&](index_t r0, index_t r1) {
        filter_rows(zeta, u, dt, ndim, grid, z_stride, u_stride, out, r0, r1);
    });
}

// The rows of u and of gamma before and after a grid row along its depth (0) and row (1) axes: hb[a] / ha[a]
// whether that neighbour lies in the grid (where it does not, the pointer is the row itself, never used).
template <typename T>
struct RowsAround {
    const T* ub[2];
    const T* ua[2];
    const T* gb[2];
    const T* ga[2];
    bool hb[2], ha[2];
};

// gamma (ssdops::gamma_at of stencil.cuh) at column x of the grid row c of u: the sums of gamma_at, axis by
// axis in its order. INTERIOR: every row neighbour lies in the grid (n.hb ignored), so that the loop over the
// row's columns vectorises; the diffusivity code G is a template argument for the same reason.
template <int NDIM, int G, bool INTERIOR, typename T>
SSDOPS_INLINE T gamma_pixel(const T* c, const RowsAround<T>& n, int x, bool x_before, bool neumann, T lam) {
    constexpr int first = 3 - NDIM;
    const T centre = c[x];
    const T outside = neumann ? T(0) : -centre;
    T s2 = 0;
    for (int a = first; a < 2; ++a) {
        const T diff = INTERIOR || n.hb[a] ? n.ub[a][x] - centre : outside;
        s2 = a == first ? diff * diff : s2 + diff * diff;
    }
    const T diff = x_before ? c[x - 1] - centre : outside;
    s2 = first == 2 ? diff * diff : s2 + diff * diff;
    return ssdops::diffusivity(G, s2, lam);
}

template <int NDIM, int G, bool INTERIOR, typename T>
SSDOPS_CLONES void gamma_row(const T* c, RowsAround<T> n, int W, bool neumann, T lam, T* __restrict__ gamma) {
    gamma[0] = gamma_pixel<NDIM, G, INTERIOR>(c, n, 0, false, neumann, lam);
    for (int x = 1; x < W; ++x) gamma[x] = gamma_pixel<NDIM, G, INTERIOR>(c, n, x, true, neumann, lam);
}

// The step at column x of the grid row c of u, gr of gamma (ssdops::perona_malik_pixel with the gammas read,
// not recomputed): its terms in its order. INTERIOR as in gamma_pixel.
template <int NDIM, bool INTERIOR, typename T>
SSDOPS_INLINE T perona_malik_at(const T* c, const T* gr, const RowsAround<T>& n, int x, bool x_before, bool x_after,
                                T dt, int bc, T ghost_gamma) {
    constexpr int first = 3 - NDIM;
    const T centre = c[x];
    const T gc = gr[x];
    const T edge = ssdops::boundary_face(gc, bc, ghost_gamma);
    T before[3], after[3];
    for (int a = first; a < 2; ++a) {
        before[a] = INTERIOR || n.hb[a] ? (n.gb[a][x] + gc) / T(2) : edge;
        after[a] = INTERIOR || n.ha[a] ? (gc + n.ga[a][x]) / T(2) : edge;
    }
    before[2] = x_before ? (gr[x - 1] + gc) / T(2) : edge;
    after[2] = x_after ? (gc + gr[x + 1]) / T(2) : edge;
    T lu = 0, faces = 0;
    for (int a = first; a < 2; ++a)
        if (INTERIOR || n.hb[a]) lu += before[a] * n.ub[a][x];
    if (x_before) lu += before[2] * c[x - 1];
    for (int a = first; a < 2; ++a)
        if (INTERIOR || n.ha[a]) lu += after[a] * n.ua[a][x];
    if (x_after) lu += after[2] * c[x + 1];
    for (int a = first; a < 3; ++a) faces = a == first ? before[a] + after[a] : faces + (before[a] + after[a]);
    lu += -faces * centre;
    return centre + dt * lu;
}

template <int NDIM, bool INTERIOR, typename T>
SSDOPS_CLONES void perona_malik_row(const T* c, const T* gr, RowsAround<T> n, int W, T dt, int bc, T ghost_gamma,
                                    T* __restrict__ o) {
    o[0] = perona_malik_at<NDIM, INTERIOR>(c, gr, n, 0, false, W > 1, dt, bc, ghost_gamma);
    for (int x = 1; x < W - 1; ++x)
        o[x] = perona_malik_at<NDIM, INTERIOR>(c, gr, n, x, true, true, dt, bc, ghost_gamma);
    if (W > 1) o[W - 1] = perona_malik_at<NDIM, INTERIOR>(c, gr, n, W - 1, true, false, dt, bc, ghost_gamma);
}

// One explicit Perona-Malik step. gamma is computed once per pixel (gamma_row) and read by the step
// (perona_malik_row) where the GPU recomputes it at the neighbours (gamma_next is gamma_at at the neighbour:
// the same values). Work is split into bands of BAND_ROWS grid rows of one image; a band walks through the
// planes with the gamma of its rows (and one halo row on each side) for three planes (z - 1, z, z + 1) in a
// small ring buffer, so gamma never goes to memory. Rows with every row neighbour in the grid run the
// INTERIOR loops. The GPU's per-pixel form, which recomputes gamma 2 ndim + 1 times per pixel with branches
// on every coordinate, was 3.5x slower than NumPy's blocked code at 2048^2 on a CPU; a whole-image gamma
// buffer, 1.6x slower than the bands.
constexpr int BAND_ROWS = 16;

template <int NDIM, int G, typename T>
void perona_malik_step(const T* u, T dt, T lam, T ghost_gamma, int D, int H, int W, index_t images, int bc,
                       T* out, int threads) {
    constexpr int first = 3 - NDIM;
    const ssdops::Grid grid = ssdops::grid_of(NDIM, D, H, W);
    const bool neumann = bc == ssdops::NEUMANN;
    const int bands = (H + BAND_ROWS - 1) / BAND_ROWS;
    const index_t slot = (index_t)std::min(BAND_ROWS + 2, H) * W;  // a plane of a band's gamma, with halo rows
    std::atomic<bool> failed(false);
    parallel_rows(images * bands, threads, [&](index_t w0, index_t w1) {
        // No exception may leave a thread: a ring that cannot be allocated is reported through `failed`.
        std::unique_ptr<T[]> ring(new (std::nothrow) T[(size_t)(3 * slot)]);
        if (!ring) {
            failed = true;
            return;
        }
        for (index_t w = w0; w < w1; ++w) {
            const index_t image = w / bands;
            const int y0 = (int)(w - image * bands) * BAND_ROWS, y1 = std::min(H, y0 + BAND_ROWS);
            const int ya = std::max(0, y0 - 1), yb = std::min(H, y1 + 1);  // the rows whose gamma is needed
            const T* ui = u + image * grid.size;
            // gamma of the row (z, y) in the ring.
            auto gamma_of = [&](int z, int y) { return ring.get() + (z % 3) * slot + (index_t)(y - ya) * W; };
            // The neighbours of the row (z, y) in u and in the ring; whether it is an interior row.
            auto around = [&](int z, int y, RowsAround<T>* n) {
                const int at[2] = {z, y};
                const T* row = ui + (index_t)z * grid.stride[0] + (index_t)y * grid.stride[1];
                bool interior = true;
                for (int a = 0; a < 2; ++a) {
                    n->hb[a] = at[a] > 0;
                    n->ha[a] = at[a] < grid.n[a] - 1;
                    n->ub[a] = n->hb[a] ? row - grid.stride[a] : row;
                    n->ua[a] = n->ha[a] ? row + grid.stride[a] : row;
                    if (a >= first) interior = interior && n->hb[a] && n->ha[a];
                }
                n->gb[0] = n->hb[0] ? gamma_of(z - 1, y) : gamma_of(z, y);
                n->ga[0] = n->ha[0] ? gamma_of(z + 1, y) : gamma_of(z, y);
                n->gb[1] = n->hb[1] ? gamma_of(z, y - 1) : gamma_of(z, y);
                n->ga[1] = n->ha[1] ? gamma_of(z, y + 1) : gamma_of(z, y);
                return interior;
            };
            auto gamma_plane = [&](int z) {
                for (int y = ya; y < yb; ++y) {
                    RowsAround<T> n;
                    const T* row = ui + (index_t)z * grid.stride[0] + (index_t)y * grid.stride[1];
                    if (around(z, y, &n))
                        gamma_row<NDIM, G, true>(row, n, W, neumann, lam, gamma_of(z, y));
                    else
                        gamma_row<NDIM, G, false>(row, n, W, neumann, lam, gamma_of(z, y));
                }
            };
            gamma_plane(0);
            for (int z = 0; z < D; ++z) {
                if (z + 1 < D) gamma_plane(z + 1);
                for (int y = y0; y < y1; ++y) {
                    RowsAround<T> n;
                    const index_t row = (index_t)z * grid.stride[0] + (index_t)y * grid.stride[1];
                    T* o = out + image * grid.size + row;
                    if (around(z, y, &n))
                        perona_malik_row<NDIM, true>(ui + row, gamma_of(z, y), n, W, dt, bc, ghost_gamma, o);
                    else
                        perona_malik_row<NDIM, false>(ui + row, gamma_of(z, y), n, W, dt, bc, ghost_gamma, o);
                }
            }
        }
    });
    if (failed) throw std::bad_alloc();
}

// perona_malik_step for the grid dimension and diffusivity code given at run time.
template <typename T>
void perona_malik_step(const T* u, T dt, T lam, T ghost_gamma, int ndim, int D, int H, int W, index_t images,
                       int g, int bc, T* out, int threads) {
    auto run = [&](auto ndim_, auto g_) {
        perona_malik_step<decltype(ndim_)::value, decltype(g_)::value>(u, dt, lam, ghost_gamma, D, H, W, images,
                                                                        bc, out, threads);
    };
    auto with_g = [&](auto ndim_) {
        switch (g) {
            case ssdops::PERONA_MALIK: return run(ndim_, std::integral_constant<int, ssdops::PERONA_MALIK>());
            case ssdops::PERONA_MALIK_EXP:
                return run(ndim_, std::integral_constant<int, ssdops::PERONA_MALIK_EXP>());
            case ssdops::CHARBONNIER: return run(ndim_, std::integral_constant<int, ssdops::CHARBONNIER>());
            case ssdops::TOTAL_VARIATION: return run(ndim_, std::integral_constant<int, ssdops::TOTAL_VARIATION>());
            default: return run(ndim_, std::integral_constant<int, ssdops::LINEAR>());
        }
    };
    if (ndim == 1) with_g(std::integral_constant<int, 1>());
    else if (ndim == 2) with_g(std::integral_constant<int, 2>());
    else with_g(std::integral_constant<int, 3>());
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
    /* 0, or 1 when a gamma buffer could not be allocated (no exception crosses into C). */                    \
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
