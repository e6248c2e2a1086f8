// ssdops stencil kernels: the work of one CUDA thread, as __host__ __device__ functions.
//
// One source for two compilers: kernels.cu wraps the thread functions below in __global__ kernels (NVRTC
// through cupy.RawModule on a GPU, nvcc --ptx in the tests), and emulate.cpp calls the very same functions
// from plain loops over blocks and threads (g++, a ctypes library in the tests), so the arithmetic and the
// index mapping that run on the GPU are checked on any machine.
//
// Grids: 2-D (H x W) or 3-D (D x H x W); every kernel takes the extents D, H, W (a 2-D grid is D = 1,
// with zero depth offsets) and, where the number of grid axes matters (the star stencils of filter_step
// and Perona-Malik: their maps, boundary faces and gradients), `ndim`, 2 or 3: the last ndim of the axes
// (depth, row, column) are the grid's.
//
// Launch geometry (every kernel): a 1-D grid of 1-D blocks, one thread per output element,
// i = blockIdx.x * blockDim.x + threadIdx.x over `images` images of D x H x W pixels (row-major); threads
// with i >= images * D * H * W do nothing. D * H * W < 2^31 (checked by the Python wrappers).
//
// Semantics are those of the generic array-API code of ssdops, term for term and in its order of
// summation (only fused multiply-adds may differ on the GPU):
//   ssd_apply          (A u)[p]   = sum_k d_k[p] u[p + o_k]                 over in-grid neighbours p + o_k
//   ssd_apply, T       (A^T u)[q] = sum_k d_k[q - o_k] u[q - o_k]           over in-grid sources q - o_k
//   filter_step        u + dt (sum_{k<2 ndim} z_k[p] u[p + o_k] - z_{2 ndim}[p] u[p])   star(ndim) offsets:
//                      backward neighbours of each axis, forward neighbours, centre (ssdops.stencils.star)
//   perona_malik_step  u + dt L(gamma) u, L = divergence_form(gamma, bc, ghost_gamma) and
//                      gamma = g(|grad_back u|^2, lam) (ssdops.operators, ssdops.diffusivity)
// A value of a diagonal that points outside the grid is never read, so a NaN or inf there cannot enter.
#ifndef SSDOPS_STENCIL_CUH
#define SSDOPS_STENCIL_CUH

#if defined(__CUDACC__)
#define SSDOPS_HD __host__ __device__
#else
#define SSDOPS_HD
#include <cmath>
#endif

// SSDOPS_EXPAND (a, b) is a, b: unpacks the parenthesised parameter and argument lists of SSDOPS_KERNELS.
#define SSDOPS_EXPAND(...) __VA_ARGS__

namespace ssdops {

#if !defined(__CUDACC__)
using std::exp;
using std::sqrt;
#endif

typedef long long index_t;

// Codes of the named diffusivities (ssdops.diffusivity), as passed by backends/_cupy.py.
enum Diffusivity { PERONA_MALIK = 0, PERONA_MALIK_EXP = 1, CHARBONNIER = 2, TOTAL_VARIATION = 3, LINEAR = 4 };

// Boundary handling of a Perona-Malik step: the diffusivity of a boundary face is 0 (NEUMANN), the edge
// pixel's own gamma (DIRICHLET_EDGE: ghost_gamma None) or the mean of the edge's gamma and ghost_gamma
// (DIRICHLET_GHOST). Under both Dirichlet modes the ghost pixels hold u = 0.
enum Boundary { NEUMANN = 0, DIRICHLET_EDGE = 1, DIRICHLET_GHOST = 2 };

// The extents of a grid, its strides and the first of its axes (3 - ndim): axis a = 0, 1, 2 is depth, row,
// column; a 2-D grid has D = 1 and its axes start at 1.
struct Grid {
    int n[3];
    index_t stride[3];
    int first;
    index_t size;
};

SSDOPS_HD inline Grid grid_of(int ndim, int D, int H, int W) {
    const index_t hw = (index_t)H * W;
    Grid grid = {{D, H, W}, {hw, W, 1}, 3 - ndim, hw * D};
    return grid;
}

// The pixel of thread `thread` of block `block`: image, coordinates at[3] (depth, row, column) and offset
// p within the image, or valid == false past the end.
struct Pixel {
    index_t image;
    int at[3];
    index_t p;
    bool valid;
};

SSDOPS_HD inline Pixel pixel_of(index_t block, int block_dim, int thread, index_t images, const Grid& grid) {
    const index_t i = block * block_dim + thread;
    Pixel px = {0, {0, 0, 0}, 0, false};
    if (i >= images * grid.size) return px;
    px.image = i / grid.size;
    const int p = (int)(i - px.image * grid.size);  // < D * H * W < 2^31: 32-bit division from here on
    const int hw = grid.n[1] * grid.n[2];
    px.at[0] = p / hw;
    const int q = p - px.at[0] * hw;
    px.at[1] = q / grid.n[2];
    px.at[2] = q - px.at[1] * grid.n[2];
    px.p = p;
    px.valid = true;
    return px;
}

SSDOPS_HD inline bool inside(const Grid& grid, int z, int y, int x) {
    return z >= 0 && z < grid.n[0] && y >= 0 && y < grid.n[1] && x >= 0 && x < grid.n[2];
}

// --- per-pixel work --------------------------------------------------------------------------------------

// (A u)[px] or (A^T u)[px] for one image: d points at its K diagonals (K x D x H x W), u at its image;
// offset k is (oz[k], oy[k], ox[k]).
template <typename T>
SSDOPS_HD T ssd_apply_pixel(const T* d, const T* u, const int* oz, const int* oy, const int* ox, int K,
                            const Grid& grid, const Pixel& px, bool transpose) {
    T acc = 0;
    for (int k = 0; k < K; ++k) {
        // A reads d_k at the output pixel and u at its neighbour; A^T reads both at the source q - o_k.
        // Either way the pixel where u is read must lie in the grid (the other one then does too).
        const int z = px.at[0] + (transpose ? -oz[k] : oz[k]);
        const int y = px.at[1] + (transpose ? -oy[k] : oy[k]);
        const int x = px.at[2] + (transpose ? -ox[k] : ox[k]);
        if (!inside(grid, z, y, x)) continue;
        const index_t q = (index_t)z * grid.stride[0] + (index_t)y * grid.stride[1] + x;
        acc += d[k * grid.size + (transpose ? q : px.p)] * u[q];
    }
    return acc;
}

// u + dt W_1(z) u at px: z points at the image's 2 ndim + 1 filters in star(ndim) order.
template <typename T>
SSDOPS_HD T filter_step_pixel(const T* z, const T* u, T dt, int ndim, const Grid& grid, const Pixel& px) {
    const index_t p = px.p, n = grid.size;
    const T centre = u[p];
    T s = -z[2 * ndim * n + p] * centre;
    for (int a = grid.first; a < 3; ++a)
        if (px.at[a] > 0) s += z[(a - grid.first) * n + p] * u[p - grid.stride[a]];
    for (int a = grid.first; a < 3; ++a)
        if (px.at[a] < grid.n[a] - 1) s += z[(ndim + a - grid.first) * n + p] * u[p + grid.stride[a]];
    return centre + dt * s;
}

template <typename T>
SSDOPS_HD T diffusivity(int g, T s2, T lam) {
    const T lam2 = lam * lam;
    switch (g) {
        case PERONA_MALIK: return T(1) / (T(1) + s2 / lam2);
        case PERONA_MALIK_EXP: return exp(-s2 / lam2);
        case CHARBONNIER: return T(1) / sqrt(T(1) + s2 / lam2);
        case TOTAL_VARIATION: return T(1) / sqrt(s2 + lam2);
        default: return T(1);  // LINEAR: the wrappers pass no other code
    }
}

// gamma = g(|grad u|^2) at the in-grid pixel at[3] (offset p), backward differences u[neighbour] - u[p]
// summed over the grid's axes in order: across the boundary 0 (Neumann) or taken against the zero ghost
// (Dirichlet).
template <typename T>
SSDOPS_HD T gamma_at(const T* u, const Grid& grid, const int* at, index_t p, int bc, int g, T lam) {
    const T centre = u[p];
    const T outside = bc == NEUMANN ? T(0) : -centre;
    T s2 = 0;
    for (int a = grid.first; a < 3; ++a) {
        const T diff = at[a] > 0 ? u[p - grid.stride[a]] - centre : outside;
        s2 = a == grid.first ? diff * diff : s2 + diff * diff;
    }
    return diffusivity(g, s2, lam);
}

// gamma at the neighbour step (-1 or +1) along axis a of the in-grid pixel at[3] (offset p).
template <typename T>
SSDOPS_HD T gamma_next(const T* u, const Grid& grid, const int* at, index_t p, int a, int step, int bc, int g,
                       T lam) {
    int next[3] = {at[0], at[1], at[2]};
    next[a] += step;
    return gamma_at(u, grid, next, p + step * grid.stride[a], bc, g, lam);
}

template <typename T>
SSDOPS_HD T boundary_face(T edge_gamma, int bc, T ghost_gamma) {
    return bc == NEUMANN ? T(0) : bc == DIRICHLET_EDGE ? edge_gamma : (edge_gamma + ghost_gamma) / T(2);
}

// One explicit Perona-Malik step at px of one image. gamma is recomputed at the 2 ndim neighbours instead
// of being stored: arithmetic is cheaper than a second pass over memory.
template <typename T>
SSDOPS_HD T perona_malik_pixel(const T* u, T dt, T lam, T ghost_gamma, const Grid& grid, const Pixel& px, int g,
                               int bc) {
    const index_t p = px.p;
    const T centre = u[p];
    const T gc = gamma_at(u, grid, px.at, p, bc, g, lam);
    const T edge = boundary_face(gc, bc, ghost_gamma);
    // Face diffusivities per axis: the mean of the two pixels' gamma inside, the boundary face at the edge.
    T before[3], after[3];
    for (int a = grid.first; a < 3; ++a) {
        before[a] = px.at[a] > 0 ? (gamma_next(u, grid, px.at, p, a, -1, bc, g, lam) + gc) / T(2) : edge;
        after[a] = px.at[a] < grid.n[a] - 1 ? (gc + gamma_next(u, grid, px.at, p, a, 1, bc, g, lam)) / T(2) : edge;
    }
    // L u in the order of the operator's star diagonals (backward neighbours, forward ones, centre); a
    // neighbour outside the grid is a zero ghost and adds no term, but its face still counts in the centre,
    // which sums the axes' (before + after) in order.
    T lu = 0, faces = 0;
    for (int a = grid.first; a < 3; ++a)
        if (px.at[a] > 0) lu += before[a] * u[p - grid.stride[a]];
    for (int a = grid.first; a < 3; ++a)
        if (px.at[a] < grid.n[a] - 1) lu += after[a] * u[p + grid.stride[a]];
    for (int a = grid.first; a < 3; ++a)
        faces = a == grid.first ? before[a] + after[a] : faces + (before[a] + after[a]);
    lu += -faces * centre;
    return centre + dt * lu;
}

// --- thread functions: the body of each kernel ----------------------------------------------------------
// Batch strides (elements between consecutive images) are 0 for an operand shared by the whole batch.

template <typename T>
SSDOPS_HD void ssd_apply_thread(index_t block, int block_dim, int thread, const T* d, const T* u, const int* oz,
                                const int* oy, const int* ox, int K, int D, int H, int W, index_t images,
                                index_t d_stride, index_t u_stride, int transpose, T* out) {
    const Grid grid = grid_of(3, D, H, W);
    const Pixel px = pixel_of(block, block_dim, thread, images, grid);
    if (!px.valid) return;
    out[px.image * grid.size + px.p] =
        ssd_apply_pixel(d + px.image * d_stride, u + px.image * u_stride, oz, oy, ox, K, grid, px, transpose != 0);
}

template <typename T>
SSDOPS_HD void filter_step_thread(index_t block, int block_dim, int thread, const T* z, const T* u, const T* dt,
                                  int ndim, int D, int H, int W, index_t images, index_t z_stride,
                                  index_t u_stride, T* out) {
    const Grid grid = grid_of(ndim, D, H, W);
    const Pixel px = pixel_of(block, block_dim, thread, images, grid);
    if (!px.valid) return;
    out[px.image * grid.size + px.p] =
        filter_step_pixel(z + px.image * z_stride, u + px.image * u_stride, dt[0], ndim, grid, px);
}

template <typename T>
SSDOPS_HD void perona_malik_step_thread(index_t block, int block_dim, int thread, const T* u, const T* dt,
                                        const T* lam, const T* ghost_gamma, int ndim, int D, int H, int W,
                                        index_t images, int g, int bc, T* out) {
    const Grid grid = grid_of(ndim, D, H, W);
    const Pixel px = pixel_of(block, block_dim, thread, images, grid);
    if (!px.valid) return;
    out[px.image * grid.size + px.p] =
        perona_malik_pixel(u + px.image * grid.size, dt[0], lam[0], ghost_gamma[0], grid, px, g, bc);
}

}  // namespace ssdops

// Every kernel, for X(name, T, suffix, (parameters), (arguments)): the extern "C" entry point is
// ssdops_<name>_<suffix> on the GPU (kernels.cu) and emulate_<name>_<suffix> on the host (emulate.cpp);
// both pass their parameters on to ssdops::<name>_thread<T>. backends/_cupy.py builds the argument tuples
// in this order.
#define SSDOPS_KERNELS(X, T, suffix)                                                                        \
    X(ssd_apply, T, suffix,                                                                                 \
      (const T* d, const T* u, const int* oz, const int* oy, const int* ox, int K, int D, int H, int W,     \
       ssdops::index_t images, ssdops::index_t d_stride, ssdops::index_t u_stride, int transpose, T* out),  \
      (d, u, oz, oy, ox, K, D, H, W, images, d_stride, u_stride, transpose, out))                           \
    X(filter_step, T, suffix,                                                                               \
      (const T* z, const T* u, const T* dt, int ndim, int D, int H, int W, ssdops::index_t images,          \
       ssdops::index_t z_stride, ssdops::index_t u_stride, T* out),                                         \
      (z, u, dt, ndim, D, H, W, images, z_stride, u_stride, out))                                           \
    X(perona_malik_step, T, suffix,                                                                         \
      (const T* u, const T* dt, const T* lam, const T* ghost_gamma, int ndim, int D, int H, int W,          \
       ssdops::index_t images, int g, int bc, T* out),                                                      \
      (u, dt, lam, ghost_gamma, ndim, D, H, W, images, g, bc, out))

// Both element types: float (f32) and double (f64).
#define SSDOPS_ALL_KERNELS(X) SSDOPS_KERNELS(X, float, f32) SSDOPS_KERNELS(X, double, f64)

#endif  // SSDOPS_STENCIL_CUH
