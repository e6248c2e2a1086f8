// ssdops stencil kernels: the work of one CUDA thread, as __host__ __device__ functions.
//
// One source for two compilers: kernels.cu wraps the thread functions below in __global__ kernels (NVRTC
// through cupy.RawModule on a GPU, nvcc --ptx in the tests), and emulate.cpp calls the very same functions
// from plain loops over blocks and threads (g++, a ctypes library in the tests), so the arithmetic and the
// index mapping that run on the GPU are checked on any machine.
//
// Launch geometry (every kernel): a 1-D grid of 1-D blocks, one thread per output element,
// i = blockIdx.x * blockDim.x + threadIdx.x over `images` images of H x W pixels (row-major); threads with
// i >= images * H * W do nothing. H * W < 2^31 (checked by the Python wrappers).
//
// Semantics are those of the generic array-API code of ssdops, term for term and in its order of
// summation (only fused multiply-adds may differ on the GPU):
//   ssd_apply          (A u)[p]   = sum_k d_k[p] u[p + o_k]                 over in-grid neighbours p + o_k
//   ssd_apply, T       (A^T u)[q] = sum_k d_k[q - o_k] u[q - o_k]           over in-grid sources q - o_k
//   filter_step        u + dt (sum_{k<4} z_k[p] u[p + o_k] - z_4[p] u[p])   FIVE_POINT (up, left, down, right)
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

// The pixel of thread `thread` of block `block`: image n, row r, column c, or valid == false past the end.
struct Pixel {
    index_t image;
    int row, col;
    bool valid;
};

SSDOPS_HD inline Pixel pixel_of(index_t block, int block_dim, int thread, index_t images, int H, int W) {
    const index_t hw = (index_t)H * W;
    const index_t i = block * block_dim + thread;
    Pixel px = {0, 0, 0, false};
    if (i >= images * hw) return px;
    px.image = i / hw;
    const int p = (int)(i - px.image * hw);  // < H * W < 2^31: 32-bit division from here on
    px.row = p / W;
    px.col = p - px.row * W;
    px.valid = true;
    return px;
}

// --- per-pixel work --------------------------------------------------------------------------------------

// (A u)[r, c] or (A^T u)[r, c] for one image: d points at its K diagonals (K x H x W), u at its image.
template <typename T>
SSDOPS_HD T ssd_apply_pixel(const T* d, const T* u, const int* oy, const int* ox, int K, int H, int W, int r,
                            int c, bool transpose) {
    const index_t hw = (index_t)H * W;
    T acc = 0;
    for (int k = 0; k < K; ++k) {
        // A reads d_k at the output pixel and u at its neighbour; A^T reads both at the source q - o_k.
        // Either way the pixel where u is read must lie in the grid (the other one then does too).
        const int dr = transpose ? r - oy[k] : r, dc = transpose ? c - ox[k] : c;
        const int ur = transpose ? dr : r + oy[k], uc = transpose ? dc : c + ox[k];
        if (ur < 0 || ur >= H || uc < 0 || uc >= W) continue;
        acc += d[k * hw + (index_t)dr * W + dc] * u[(index_t)ur * W + uc];
    }
    return acc;
}

// u + dt W_1(z) u at (r, c): z points at the image's five filters (5 x H x W) in FIVE_POINT order.
template <typename T>
SSDOPS_HD T filter_step_pixel(const T* z, const T* u, T dt, int H, int W, int r, int c) {
    const index_t hw = (index_t)H * W, p = (index_t)r * W + c;
    const T centre = u[p];
    T s = -z[4 * hw + p] * centre;
    if (r > 0) s += z[p] * u[p - W];
    if (c > 0) s += z[hw + p] * u[p - 1];
    if (r < H - 1) s += z[2 * hw + p] * u[p + W];
    if (c < W - 1) s += z[3 * hw + p] * u[p + 1];
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

// gamma = g(|grad u|^2) at in-grid pixel (r, c), backward differences u[neighbour] - u[r, c]: across the
// boundary 0 (Neumann) or taken against the zero ghost (Dirichlet).
template <typename T>
SSDOPS_HD T gamma_at(const T* u, int W, int r, int c, int bc, int g, T lam) {
    const T centre = u[(index_t)r * W + c];
    const T outside = bc == NEUMANN ? T(0) : -centre;
    const T dy = r > 0 ? u[(index_t)(r - 1) * W + c] - centre : outside;
    const T dx = c > 0 ? u[(index_t)r * W + c - 1] - centre : outside;
    return diffusivity(g, dy * dy + dx * dx, lam);
}

template <typename T>
SSDOPS_HD T boundary_face(T edge_gamma, int bc, T ghost_gamma) {
    return bc == NEUMANN ? T(0) : bc == DIRICHLET_EDGE ? edge_gamma : (edge_gamma + ghost_gamma) / T(2);
}

// One explicit Perona-Malik step at (r, c) of one image. gamma is recomputed at the four neighbours
// instead of being stored: arithmetic is cheaper than a second pass over memory.
template <typename T>
SSDOPS_HD T perona_malik_pixel(const T* u, T dt, T lam, T ghost_gamma, int H, int W, int r, int c, int g,
                               int bc) {
    const index_t p = (index_t)r * W + c;
    const T centre = u[p];
    const T gc = gamma_at(u, W, r, c, bc, g, lam);
    const T edge = boundary_face(gc, bc, ghost_gamma);
    // Face diffusivities: the mean of the two pixels' gamma inside, the boundary face at the edge.
    const T f_up = r > 0 ? (gamma_at(u, W, r - 1, c, bc, g, lam) + gc) / T(2) : edge;
    const T f_left = c > 0 ? (gamma_at(u, W, r, c - 1, bc, g, lam) + gc) / T(2) : edge;
    const T f_down = r < H - 1 ? (gc + gamma_at(u, W, r + 1, c, bc, g, lam)) / T(2) : edge;
    const T f_right = c < W - 1 ? (gc + gamma_at(u, W, r, c + 1, bc, g, lam)) / T(2) : edge;
    // L u in the order of the operator's FIVE_POINT diagonals (up, left, down, right, centre); a neighbour
    // outside the grid is a zero ghost and adds no term, but its face still counts in the centre.
    T lu = 0;
    if (r > 0) lu += f_up * u[p - W];
    if (c > 0) lu += f_left * u[p - 1];
    if (r < H - 1) lu += f_down * u[p + W];
    if (c < W - 1) lu += f_right * u[p + 1];
    lu += -((f_up + f_down) + (f_left + f_right)) * centre;
    return centre + dt * lu;
}

// --- thread functions: the body of each kernel ----------------------------------------------------------
// Batch strides (elements between consecutive images) are 0 for an operand shared by the whole batch.

template <typename T>
SSDOPS_HD void ssd_apply_thread(index_t block, int block_dim, int thread, const T* d, const T* u, const int* oy,
                                const int* ox, int K, int H, int W, index_t images, index_t d_stride,
                                index_t u_stride, int transpose, T* out) {
    const Pixel px = pixel_of(block, block_dim, thread, images, H, W);
    if (!px.valid) return;
    out[(px.image * H + px.row) * W + px.col] =
        ssd_apply_pixel(d + px.image * d_stride, u + px.image * u_stride, oy, ox, K, H, W, px.row, px.col,
                        transpose != 0);
}

template <typename T>
SSDOPS_HD void filter_step_thread(index_t block, int block_dim, int thread, const T* z, const T* u, const T* dt,
                                  int H, int W, index_t images, index_t z_stride, index_t u_stride, T* out) {
    const Pixel px = pixel_of(block, block_dim, thread, images, H, W);
    if (!px.valid) return;
    out[(px.image * H + px.row) * W + px.col] =
        filter_step_pixel(z + px.image * z_stride, u + px.image * u_stride, dt[0], H, W, px.row, px.col);
}

template <typename T>
SSDOPS_HD void perona_malik_step_thread(index_t block, int block_dim, int thread, const T* u, const T* dt,
                                        const T* lam, const T* ghost_gamma, int H, int W, index_t images, int g,
                                        int bc, T* out) {
    const Pixel px = pixel_of(block, block_dim, thread, images, H, W);
    if (!px.valid) return;
    const index_t hw = (index_t)H * W;
    out[px.image * hw + (index_t)px.row * W + px.col] = perona_malik_pixel(
        u + px.image * hw, dt[0], lam[0], ghost_gamma[0], H, W, px.row, px.col, g, bc);
}

}  // namespace ssdops

// Every kernel, for X(name, T, suffix, (parameters), (arguments)): the extern "C" entry point is
// ssdops_<name>_<suffix> on the GPU (kernels.cu) and emulate_<name>_<suffix> on the host (emulate.cpp);
// both pass their parameters on to ssdops::<name>_thread<T>. backends/_cupy.py builds the argument tuples
// in this order.
#define SSDOPS_KERNELS(X, T, suffix)                                                                        \
    X(ssd_apply, T, suffix,                                                                                 \
      (const T* d, const T* u, const int* oy, const int* ox, int K, int H, int W, ssdops::index_t images,   \
       ssdops::index_t d_stride, ssdops::index_t u_stride, int transpose, T* out),                          \
      (d, u, oy, ox, K, H, W, images, d_stride, u_stride, transpose, out))                                  \
    X(filter_step, T, suffix,                                                                               \
      (const T* z, const T* u, const T* dt, int H, int W, ssdops::index_t images, ssdops::index_t z_stride, \
       ssdops::index_t u_stride, T* out),                                                                   \
      (z, u, dt, H, W, images, z_stride, u_stride, out))                                                    \
    X(perona_malik_step, T, suffix,                                                                         \
      (const T* u, const T* dt, const T* lam, const T* ghost_gamma, int H, int W, ssdops::index_t images,   \
       int g, int bc, T* out),                                                                              \
      (u, dt, lam, ghost_gamma, H, W, images, g, bc, out))

// Both element types: float (f32) and double (f64).
#define SSDOPS_ALL_KERNELS(X) SSDOPS_KERNELS(X, float, f32) SSDOPS_KERNELS(X, double, f64)

#endif  // SSDOPS_STENCIL_CUH
