// Winograd F(2×2, 5×5) convolution (Lavin & Gray, "Fast Algorithms for Convolutional Neural
// Networks", 2016) for stride-1, undilated 5×5 convolutions: the forward pass and the filter
// gradient. conv.cpp dispatches here when winograd_applies (see winograd.h); the input
// gradient reaches the forward pass as conv.cpp's flipped convolution of dy.
//
// The output is cut into 2×2 tiles (tile (ty, tx) covers outputs 2ty.., 2tx..), each computed
// from the 6×6 input patch starting at input (2ty - pad_top, 2tx - pad_left), zero outside the
// input; tiles step 2 so the patches overlap by 4. Outputs of edge tiles past oh/ow are
// computed on zeros and not stored. For every (tile, c, f):
//
//   U = G g Gᵀ (6×6 from the 5×5 filter g), V = Bᵀ d B (6×6 from the patch d),
//   Y = Aᵀ [Σc U ⊙ V] A (2×2)
//
// so the 36 positions ξ of the 6×6 transform domain are 36 independent GEMMs over channels,
// M[ξ] (tiles × F) = V[ξ] (tiles × C) · U[ξ] (C × F): 36 multiplications per tile and channel
// pair where the direct convolution needs 4·25 = 100 (2.78× fewer).
//
// The matrices. F(2, 5) computes the correlation y_i = Σk d_{i+k}·g_k (i < 2, k < 5) from 6
// inputs. It is the transpose (with respect to h) of the linear convolution s = h * g of a
// degree-1 polynomial h by a degree-4 polynomial g, whose degree-5 product is fixed by its
// values at the 6 points 0, 1, -1, 2, -2, ∞ (∞: the leading coefficient). With the Vandermonde
// matrices of those points V (6×6, rows [1, p, .., p⁵], ∞ row [0, .., 0, 1]), V_h (its first 2
// columns, ∞ row [0, 1]) and V_g (first 5, ∞ row [0, 0, 0, 0, 1]): s = V⁻¹ [(V_h h) ⊙ (V_g g)],
// so transposing in h gives y = V_hᵀ [(V_g g) ⊙ (V⁻ᵀ d)], i.e. Aᵀ = V_hᵀ, G = V_g, Bᵀ = V⁻ᵀ.
// Rows of Bᵀ are then scaled to clear denominators (by 4, 6, 6, 24, 24, 1) and the rows of G
// divided by the same factors; computed exactly in rational arithmetic:
//
//   Bᵀ = [4  0 -5  0  1  0]   G = [1/4    0     0    0    0 ]   Aᵀ = [1 1  1 1  1 0]
//        [0  4  4 -1 -1  0]       [1/6   1/6   1/6  1/6  1/6]        [0 1 -1 2 -2 1]
//        [0 -4  4  1 -1  0]       [1/6  -1/6   1/6 -1/6  1/6]
//        [0 -2 -1  2  1  0]       [1/24  1/12  1/6  1/3  2/3]
//        [0  2 -1 -2  1  0]       [1/24 -1/12  1/6 -1/3  2/3]
//        [0  4  0 -5  0  1]       [0     0     0    0    1  ]
//
// (Bᵀ is the well-known F(4, 3) input transform, which uses the same points.) The point sets
// tried in a float32 simulation of the 1-D transform ({0, ±1, ±2}, {0, ±1, ±1/2} and the two
// mixes, each with ∞) had mean errors within 1.5× of each other and worst errors of 1.1e-6 to
// 2.7e-6 of the sum of |terms|; {0, ±1, ±2} was among the best, with small integer Bᵀ and Aᵀ.
// Tests check winograd_f25_1d against a direct correlation.
//
// Forward: U for all (c, f) is computed once per call, split over tasks by channel, packed as
// the GEMM's B operand (per ξ, 16-column slivers of F, C rows of 16). Tasks split blocks of
// kBlock tiles; per block: the input transform writes V[ξ][tile][c]; then per 16-column sliver
// of F, the 36 products M[ξ][tile][16] (product_tile: a 6×16 register tile over the channels,
// reading V and U in place) and the output transform of that sliver into y. A block's V, one
// sliver's M and U make about 0.6 MB for the CNN's 32 → 64 layer, within L2.
//
// Filter gradient: the exact adjoint of the same computation. V from x as in the forward
// pass; dM = A dY Aᵀ (6×6 from each 2×2 tile of dy, zero past oh/ow); dU[ξ] (C × F) +=
// V[ξ]ᵀ · dM[ξ] per task over its blocks into its own partial; the partials are summed in task
// order (bit-identical results for the same thread count) and dw = Gᵀ dU G (5×5 from 6×6).
//
// Transforms and products work on 8 channels at a time as a GNU vector of 8 floats (one AVX
// register; the portable build splits it into what its target has), so they vectorise without
// relying on the loop vectoriser and without intrinsics; with -mfma each product's
// multiply-add contracts into an FMA. One task's results do not depend on how the others run,
// so every pass gives the same bits for the same thread count.
#include "kernels/cpu/winograd.h"

#include <cstring>

#include "kernels/cpu/common.h"
#include "kernels/cpu/kernels.h"

namespace kiln::cpu {
namespace {

constexpr Index kAlpha = 6;               // input tile side
constexpr Index kXi = kAlpha * kAlpha;    // transform positions
constexpr Index kTaps = 5;                // filter side
constexpr Index kOut = 2;                 // output tile side
constexpr Index kMinChannels = 8;         // C and F at least this (see winograd_applies)
constexpr Index kLanes = 8;               // channels per transform step
constexpr Index kMr = 6;                  // product tile rows
constexpr Index kNr = 16;                 // product tile columns: a sliver of F
constexpr Index kBlock = 48;              // tiles per block
constexpr Index kGrain = Index{1} << 17;  // multiply-adds per task below which a thread is not woken

static_assert(kNr % kLanes == 0, "slivers hold whole lane groups");

typedef float Vec __attribute__((vector_size(kLanes * sizeof(float))));

// Vectors go by reference, never by value: a by-value vector changes the calling convention
// between the AVX and the portable build (-Wpsabi), even for functions that are inlined.

// v = the n (<= kLanes) floats at p, zeros after.
void load(Vec& v, const float* p, Index n = kLanes) {
  if (n == kLanes) {
    std::memcpy(&v, p, sizeof v);
    return;
  }
  float lanes[kLanes] = {};
  for (Index l = 0; l < n; ++l) lanes[l] = p[l];
  std::memcpy(&v, lanes, sizeof v);
}
// The first n (<= kLanes) lanes of v to p.
void store(float* p, const Vec& v, Index n = kLanes) {
  if (n == kLanes) {
    std::memcpy(p, &v, sizeof v);
    return;
  }
  float lanes[kLanes];
  std::memcpy(lanes, &v, sizeof v);
  for (Index l = 0; l < n; ++l) p[l] = lanes[l];
}

// ---- 1-D transforms on arrays of T (float or Vec) ----

// v = Bᵀ d (6 → 6).
template <typename T>
inline void input_1d(const T* d, T* v) {
  v[0] = 4.0f * d[0] - 5.0f * d[2] + d[4];
  v[1] = 4.0f * (d[1] + d[2]) - (d[3] + d[4]);
  v[2] = 4.0f * (d[2] - d[1]) + (d[3] - d[4]);
  v[3] = 2.0f * (d[3] - d[1]) + (d[4] - d[2]);
  v[4] = 2.0f * (d[1] - d[3]) + (d[4] - d[2]);
  v[5] = 4.0f * d[1] - 5.0f * d[3] + d[5];
}

// u = G g (5 → 6).
template <typename T>
inline void filter_1d(const T* g, T* u) {
  const T even1 = g[0] + g[2] + g[4], odd1 = g[1] + g[3];
  const T even2 = g[0] + 4.0f * g[2] + 16.0f * g[4], odd2 = 2.0f * g[1] + 8.0f * g[3];
  u[0] = 0.25f * g[0];
  u[1] = (even1 + odd1) * (1.0f / 6.0f);
  u[2] = (even1 - odd1) * (1.0f / 6.0f);
  u[3] = (even2 + odd2) * (1.0f / 24.0f);
  u[4] = (even2 - odd2) * (1.0f / 24.0f);
  u[5] = g[4];
}

// y = Aᵀ m (6 → 2).
template <typename T>
inline void output_1d(const T* m, T* y) {
  y[0] = m[0] + (m[1] + m[2]) + (m[3] + m[4]);
  y[1] = (m[1] - m[2]) + 2.0f * (m[3] - m[4]) + m[5];
}

// dm = A dy (2 → 6): the adjoint of output_1d.
template <typename T>
inline void output_adjoint_1d(const T* dy, T* dm) {
  dm[0] = dy[0];
  dm[1] = dy[0] + dy[1];
  dm[2] = dy[0] - dy[1];
  dm[3] = dy[0] + 2.0f * dy[1];
  dm[4] = dy[0] - 2.0f * dy[1];
  dm[5] = dy[1];
}

// dg = Gᵀ du (6 → 5): the adjoint of filter_1d.
template <typename T>
inline void filter_adjoint_1d(const T* du, T* dg) {
  const T s12 = du[1] + du[2], d12 = du[1] - du[2];
  const T s34 = du[3] + du[4], d34 = du[3] - du[4];
  dg[0] = 0.25f * du[0] + s12 * (1.0f / 6.0f) + s34 * (1.0f / 24.0f);
  dg[1] = d12 * (1.0f / 6.0f) + d34 * (1.0f / 12.0f);
  dg[2] = (s12 + s34) * (1.0f / 6.0f);
  dg[3] = d12 * (1.0f / 6.0f) + d34 * (1.0f / 3.0f);
  dg[4] = s12 * (1.0f / 6.0f) + s34 * (2.0f / 3.0f) + du[5];
}

// A 2-D transform: `one_d` (n → m) along the columns of an n×n tile `in` (row-major), then
// along the rows, giving m×m in `out`.
template <Index N, Index M, typename F>
inline void transform_2d(const Vec* in, Vec* out, F one_d) {
  Vec t[M * N];
  for (Index j = 0; j < N; ++j) {
    Vec col[N], res[M];
    for (Index i = 0; i < N; ++i) col[i] = in[i * N + j];
    one_d(col, res);
    for (Index i = 0; i < M; ++i) t[i * N + j] = res[i];
  }
  for (Index i = 0; i < M; ++i) one_d(t + i * N, out + i * M);
}

// ---- the products ----

// A whole row of the product tile: 16 lanes, one zmm register where the CPU has AVX-512,
// two ymm ones with AVX2 (the compiler splits it; the arithmetic is the same lane by lane).
typedef float Row __attribute__((vector_size(kNr * sizeof(float))));
static_assert(kNr == 16, "splat_row lists the lanes");
void splat_row(Row& v, float x) {
  v = Row{x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x};
}

// One 6×16 tile of C: C[i][0..16) (= or +=) Σ_{p < k} A(p, i)·B[p][0..16), A(p, i) at
// a[p·a_step + min(i, mr - 1)·a_row], B row p the 16 floats at b + p·16, C rows i < mr
// (stride ldc) written. Six accumulators of 16 lanes (6 zmm registers, or 12 ymm ones); each
// multiply-add contracts into an FMA. The six rows are written out, as in gemm.cpp's
// offset_tile: through an array of row pointers clang-16 keeps them in memory.
template <bool kAccumulate>
inline void product_tile(const float* a, Index a_row, Index a_step, const float* b, Index k, float* c, Index ldc,
                         Index mr) {
  const float* a0 = a;
  const float* a1 = a + min_index(1, mr - 1) * a_row;
  const float* a2 = a + min_index(2, mr - 1) * a_row;
  const float* a3 = a + min_index(3, mr - 1) * a_row;
  const float* a4 = a + min_index(4, mr - 1) * a_row;
  const float* a5 = a + min_index(5, mr - 1) * a_row;
  Row c0{}, c1{}, c2{}, c3{}, c4{}, c5{};
  for (Index p = 0; p < k; ++p) {
    Row bp, ai;
    std::memcpy(&bp, b + p * kNr, sizeof bp);
    const Index o = p * a_step;
    splat_row(ai, a0[o]);
    c0 += ai * bp;
    splat_row(ai, a1[o]);
    c1 += ai * bp;
    splat_row(ai, a2[o]);
    c2 += ai * bp;
    splat_row(ai, a3[o]);
    c3 += ai * bp;
    splat_row(ai, a4[o]);
    c4 += ai * bp;
    splat_row(ai, a5[o]);
    c5 += ai * bp;
  }
  const Row acc[kMr] = {c0, c1, c2, c3, c4, c5};
  // A constant trip count and no early exit, so that the loop unrolls under every tuning:
  // acc[i] with a variable i would put acc in memory (gemm.cpp's store_tile).
  for (Index i = 0; i < kMr; ++i) {
    if (i < mr) {
      float* row = c + i * ldc;
      if (kAccumulate) {
        Row old;
        std::memcpy(&old, row, sizeof old);
        const Row sum = old + acc[i];
        std::memcpy(row, &sum, sizeof sum);
      } else {
        std::memcpy(row, &acc[i], sizeof acc[i]);
      }
    }
  }
}

// ---- geometry, tiles, scratch ----

struct Tiles {
  Index th, tw, count;
};
Tiles tiles_of(const kiln_conv_geometry& g) {
  const Index th = ceil_div(g.oh, kOut), tw = ceil_div(g.ow, kOut);
  return {th, tw, g.n * th * tw};
}
Index blocks_of(const Tiles& t) {
  return ceil_div(t.count, kBlock);
}
Index slivers_of(Index f) {
  return ceil_div(f, kNr);
}
Index lane_round(Index c) {
  return round_up(c, kLanes);
}
// Multiply-adds of the 36 products.
Index product_work(const kiln_conv_geometry& g, const Tiles& t) {
  return kXi * t.count * g.c * g.f;
}
int task_count(const kiln_conv_geometry& g, const Tiles& t, int threads) {
  return static_cast<int>(min_index(useful_tasks(product_work(g, t), kGrain, threads), blocks_of(t)));
}

// Per task: a block's V (36 planes of kBlock tiles × C rounded to lanes) and one sliver's
// M or dM (36 planes of kBlock tiles × 16). The transforms touch all 36 planes at once, so
// planes are a cache line longer than their data: strides of a multiple of 4 KiB would map
// them all to the same few L1 sets.
Index v_plane(const kiln_conv_geometry& g) {
  return kBlock * lane_round(g.c) + 16;
}
constexpr Index kMPlane = kBlock * kNr + 16;
std::size_t v_bytes(const kiln_conv_geometry& g) {
  return float_bytes(kXi * v_plane(g));
}
std::size_t m_bytes() {
  return float_bytes(kXi * kMPlane);
}
std::size_t task_bytes(const kiln_conv_geometry& g) {
  return v_bytes(g) + m_bytes();
}

struct TileAt {
  Index b, y0, x0;  // image, first output row and column
};
TileAt tile_at(const Tiles& t, Index index) {
  const Index plane = t.th * t.tw;
  const Index rem = index % plane;
  return {index / plane, rem / t.tw * kOut, rem % t.tw * kOut};
}

void zero_floats(float* dst, Index count) {
  for (Index i = 0; i < count; ++i) dst[i] = 0.0f;
}

// V[ξ][r][c] (plane stride v_plane, row stride cp = C rounded to lanes; channels past C
// zero) for tiles t0 .. t0 + rows; patch elements outside the input are zero.
void input_block(const kiln_conv_geometry& g, const Tiles& tiles, const float* x, Index t0, Index rows, float* v) {
  const Index cp = lane_round(g.c), plane = v_plane(g);
  Vec d[kXi];  // a patch gathered with zeros (tiles at the edges, channels past C)
  for (Index r = 0; r < rows; ++r) {
    const TileAt at = tile_at(tiles, t0 + r);
    const Index iy0 = at.y0 - g.pad_top, ix0 = at.x0 - g.pad_left;
    const Index i0 = min_index(kAlpha, max_index(0, -iy0)), i1 = max_index(i0, min_index(kAlpha, g.h - iy0));
    const Index j0 = min_index(kAlpha, max_index(0, -ix0)), j1 = max_index(j0, min_index(kAlpha, g.w - ix0));
    const bool inside = i0 == 0 && j0 == 0 && i1 == kAlpha && j1 == kAlpha;
    const float* image = x + at.b * g.h * g.w * g.c;
    // The next row of tiles reads 2 input rows that this one does not: fetch the part of them
    // below this tile's first 2 columns (below all of its columns at the end of the row),
    // which their first read would otherwise wait for.
    {
      const Index pj0 = max_index(0, ix0), pj1 = min_index(g.w, ix0 + (at.x0 + kOut >= g.ow ? kAlpha : kOut));
      for (Index iy = max_index(0, iy0 + kAlpha); iy < min_index(g.h, iy0 + kAlpha + kOut) && pj0 < pj1; ++iy) {
        const char* first = reinterpret_cast<const char*>(image + (iy * g.w + pj0) * g.c);
        const char* last = reinterpret_cast<const char*>(image + (iy * g.w + pj1) * g.c);
        for (const char* line = first; line < last; line += 64) __builtin_prefetch(line);
      }
    }
    for (Index c0 = 0; c0 < g.c; c0 += kLanes) {
      const Index cn = min_index(kLanes, g.c - c0);
      // Patch element (i, j) at src + i·row + j·col: in place inside the input, else gathered.
      const float* src = reinterpret_cast<const float*>(d);
      Index row = kAlpha * kLanes, col = kLanes;
      if (inside && cn == kLanes) {
        src = image + (iy0 * g.w + ix0) * g.c + c0, row = g.w * g.c, col = g.c;
      } else {
        for (Index e = 0; e < kXi; ++e) d[e] = Vec{};
        for (Index i = i0; i < i1; ++i)
          for (Index j = j0; j < j1; ++j) load(d[i * kAlpha + j], image + ((iy0 + i) * g.w + ix0 + j) * g.c + c0, cn);
      }
      // Bᵀ along the columns, then along the rows, into the 36 planes.
      Vec in[kXi], out[kXi];
      for (Index i = 0; i < kAlpha; ++i)
        for (Index j = 0; j < kAlpha; ++j) load(in[i * kAlpha + j], src + i * row + j * col);
      transform_2d<kAlpha, kAlpha>(in, out, [](const Vec* a, Vec* b) { input_1d(a, b); });
      float* dst = v + r * cp + c0;
      for (Index e = 0; e < kXi; ++e) store(dst + e * plane, out[e]);
    }
  }
}

// ---- forward ----

struct ForwardPlan {
  const kiln_conv_geometry* g;
  const float* x;
  const float* w;
  const float* bias;  // per filter, or null
  int act;            // 1: relu
  float* y;
  float* u;       // 36 × slivers × C × 16
  char* scratch;  // per task: task_bytes
  Tiles tiles;
  Index tasks;
};

std::size_t u_bytes(const kiln_conv_geometry& g) {
  return float_bytes(kXi * slivers_of(g.f) * g.c * kNr);
}

// U for the task's channels, packed per (ξ, sliver) as C rows of 16 (zeros past F).
void filter_transform_task(void* ctx, Index task) {
  const ForwardPlan& p = *static_cast<const ForwardPlan*>(ctx);
  const kiln_conv_geometry& g = *p.g;
  const Index slivers = slivers_of(g.f);
  const Range channels = split_range(g.c, p.tasks, task);
  Vec taps[kTaps * kTaps], out[kXi];
  for (Index c = channels.begin; c < channels.end; ++c)
    for (Index f0 = 0; f0 < slivers * kNr; f0 += kLanes) {
      const Index fn = max_index(0, min_index(kLanes, g.f - f0));
      for (Index t = 0; t < kTaps * kTaps; ++t) {
        const float* from = p.w + (t * g.c + c) * g.f + f0;
        load(taps[t], from, fn);
      }
      transform_2d<kTaps, kAlpha>(taps, out, [](const Vec* a, Vec* b) { filter_1d(a, b); });
      const Index s = f0 / kNr;
      for (Index e = 0; e < kXi; ++e) store(p.u + ((e * slivers + s) * g.c + c) * kNr + f0 % kNr, out[e]);
    }
}

// y for tiles t0 .. t0 + rows and filters of sliver s from m[ξ][r][16] (plane stride kMPlane),
// + bias (may be null), then relu when act == 1 (NaN gives 0, as the reference's relu).
void output_block(const kiln_conv_geometry& g, const Tiles& tiles, const float* m, Index s, Index t0, Index rows,
                  const float* bias, int act, float* y) {
  Vec out[kOut * kOut];
  const Vec zero = {};
  Vec bias_at[kNr / kLanes] = {};  // this sliver's bias, a vector per lane group
  for (Index f0 = 0; f0 < kNr && bias != nullptr; f0 += kLanes) {
    const Index fn = min_index(kLanes, g.f - s * kNr - f0);
    if (fn > 0) load(bias_at[f0 / kLanes], bias + s * kNr + f0, fn);
  }
  for (Index r = 0; r < rows; ++r) {
    const TileAt at = tile_at(tiles, t0 + r);
    for (Index f0 = 0; f0 < kNr; f0 += kLanes) {
      const Index fn = min_index(kLanes, g.f - s * kNr - f0);
      if (fn <= 0) break;
      const Vec& b = bias_at[f0 / kLanes];
      // Aᵀ along the columns straight from m (two rows of 6 stay in registers), then the rows.
      const float* src = m + r * kNr + f0;
      Vec t[kOut][kAlpha];
      for (Index j = 0; j < kAlpha; ++j) {
        Vec col[kAlpha], res[kOut];
        for (Index i = 0; i < kAlpha; ++i) load(col[i], src + (i * kAlpha + j) * kMPlane);
        output_1d(col, res);
        t[0][j] = res[0], t[1][j] = res[1];
      }
      for (Index i = 0; i < kOut; ++i) output_1d(t[i], out + i * kOut);
      for (Vec& o : out) {
        if (bias != nullptr) o += b;
        if (act == 1) o = o > zero ? o : zero;
      }
      for (Index i = 0; i < kOut && at.y0 + i < g.oh; ++i)
        for (Index j = 0; j < kOut && at.x0 + j < g.ow; ++j) {
          float* dst = y + ((at.b * g.oh + at.y0 + i) * g.ow + at.x0 + j) * g.f + s * kNr + f0;
          store(dst, out[i * kOut + j], fn);
        }
    }
  }
}

void forward_task(void* ctx, Index task) {
  const ForwardPlan& p = *static_cast<const ForwardPlan*>(ctx);
  const kiln_conv_geometry& g = *p.g;
  char* mine = p.scratch + static_cast<std::size_t>(task) * task_bytes(g);
  float* v = reinterpret_cast<float*>(mine);
  float* m = reinterpret_cast<float*>(mine + v_bytes(g));
  const Index cp = lane_round(g.c), slivers = slivers_of(g.f);
  const Range blocks = split_range(blocks_of(p.tiles), p.tasks, task);
  for (Index blk = blocks.begin; blk < blocks.end; ++blk) {
    const Index t0 = blk * kBlock, rows = min_index(kBlock, p.tiles.count - t0);
    input_block(g, p.tiles, p.x, t0, rows, v);
    for (Index s = 0; s < slivers; ++s) {
      for (Index e = 0; e < kXi; ++e) {
        const float* a = v + e * v_plane(g);
        const float* b = p.u + (e * slivers + s) * g.c * kNr;
        for (Index r0 = 0; r0 < rows; r0 += kMr)
          product_tile<false>(a + r0 * cp, cp, 1, b, g.c, m + e * kMPlane + r0 * kNr, kNr, min_index(kMr, rows - r0));
      }
      output_block(g, p.tiles, m, s, t0, rows, p.bias, p.act, p.y);
    }
  }
}

// ---- grad filter ----

struct FilterPlan {
  const kiln_conv_geometry* g;
  const float* x;
  const float* dy;
  float* dw;
  float* partials;  // per task: 36 × C × fp (fp = F rounded to slivers)
  char* scratch;    // per task: task_bytes
  Tiles tiles;
  Index tasks;
};

Index partial_floats(const kiln_conv_geometry& g) {
  return kXi * g.c * slivers_of(g.f) * kNr;
}

// dm[ξ][r][16] (plane stride kMPlane) = A dy Aᵀ for tiles t0 .. t0 + rows and the filters of
// sliver s (zero past oh, ow and F).
void output_adjoint_block(const kiln_conv_geometry& g, const Tiles& tiles, const float* dy, Index s, Index t0,
                          Index rows, float* dm) {
  for (Index r = 0; r < rows; ++r) {
    const TileAt at = tile_at(tiles, t0 + r);
    for (Index f0 = 0; f0 < kNr; f0 += kLanes) {
      const Index fn = max_index(0, min_index(kLanes, g.f - s * kNr - f0));
      Vec in[kOut * kOut], out[kXi];
      for (Index i = 0; i < kOut; ++i)
        for (Index j = 0; j < kOut; ++j) {
          const Index n = at.y0 + i < g.oh && at.x0 + j < g.ow ? fn : 0;
          const float* from = dy + ((at.b * g.oh + at.y0 + i) * g.ow + at.x0 + j) * g.f + s * kNr + f0;
          load(in[i * kOut + j], from, n);
        }
      // A along the columns, then along the rows, into the 36 planes.
      transform_2d<kOut, kAlpha>(in, out, [](const Vec* a, Vec* b) { output_adjoint_1d(a, b); });
      float* dst = dm + r * kNr + f0;
      for (Index e = 0; e < kXi; ++e) store(dst + e * kMPlane, out[e]);
    }
  }
}

void filter_task(void* ctx, Index task) {
  const FilterPlan& p = *static_cast<const FilterPlan*>(ctx);
  const kiln_conv_geometry& g = *p.g;
  char* mine = p.scratch + static_cast<std::size_t>(task) * task_bytes(g);
  float* v = reinterpret_cast<float*>(mine);
  float* dm = reinterpret_cast<float*>(mine + v_bytes(g));
  const Index cp = lane_round(g.c), slivers = slivers_of(g.f), fp = slivers * kNr;
  float* out = p.partials + task * partial_floats(g);
  const Range blocks = split_range(blocks_of(p.tiles), p.tasks, task);
  if (blocks.begin >= blocks.end) return zero_floats(out, partial_floats(g));
  for (Index blk = blocks.begin; blk < blocks.end; ++blk) {
    const Index t0 = blk * kBlock, rows = min_index(kBlock, p.tiles.count - t0);
    const bool accumulate = blk != blocks.begin;
    input_block(g, p.tiles, p.x, t0, rows, v);
    for (Index s = 0; s < slivers; ++s) {
      output_adjoint_block(g, p.tiles, p.dy, s, t0, rows, dm);
      for (Index e = 0; e < kXi; ++e) {
        const float* a = v + e * v_plane(g);
        const float* b = dm + e * kMPlane;
        for (Index c0 = 0; c0 < g.c; c0 += kMr) {
          const Index mr = min_index(kMr, g.c - c0);
          float* tile = out + (e * g.c + c0) * fp + s * kNr;
          if (accumulate)
            product_tile<true>(a + c0, 1, cp, b, rows, tile, fp, mr);
          else
            product_tile<false>(a + c0, 1, cp, b, rows, tile, fp, mr);
        }
      }
    }
  }
}

// For the task's channels: dU = Σ partials (in task order), then dw = Gᵀ dU G.
void filter_finish_task(void* ctx, Index task) {
  const FilterPlan& p = *static_cast<const FilterPlan*>(ctx);
  const kiln_conv_geometry& g = *p.g;
  const Index fp = slivers_of(g.f) * kNr, per_task = partial_floats(g);
  const Range channels = split_range(g.c, p.tasks, task);
  for (Index t = 1; t < p.tasks; ++t) {
    const float* part = p.partials + t * per_task;
    for (Index e = 0; e < kXi; ++e) {
      const Index first = (e * g.c + channels.begin) * fp, last = (e * g.c + channels.end) * fp;
      for (Index k = first; k < last; ++k) p.partials[k] += part[k];
    }
  }
  Vec in[kXi], out[kTaps * kTaps];
  for (Index c = channels.begin; c < channels.end; ++c)
    for (Index f0 = 0; f0 < g.f; f0 += kLanes) {
      const Index fn = min_index(kLanes, g.f - f0);
      for (Index e = 0; e < kXi; ++e) load(in[e], p.partials + (e * g.c + c) * fp + f0);
      transform_2d<kAlpha, kTaps>(in, out, [](const Vec* a, Vec* b) { filter_adjoint_1d(a, b); });
      for (Index t = 0; t < kTaps * kTaps; ++t) {
        float* dst = p.dw + (t * g.c + c) * g.f + f0;
        store(dst, out[t], fn);
      }
    }
}

}  // namespace

bool winograd_applies(const kiln_conv_geometry& g) {
  return g.kh == kTaps && g.kw == kTaps && g.stride == 1 && g.dilation == 1 && g.c >= kMinChannels &&
         g.f >= kMinChannels;
}

std::size_t winograd_forward_scratch(const kiln_conv_geometry& g, int threads) {
  if (threads < 1) threads = 1;
  return u_bytes(g) + task_bytes(g) * static_cast<std::size_t>(threads);
}

[[gnu::noinline]] void winograd_forward(const kiln_conv_geometry& g, const float* x, const float* w, const float* bias,
                                        int act, float* y, char* scratch, int threads) {
  ForwardPlan p{};
  p.g = &g, p.x = x, p.w = w, p.bias = bias, p.act = act, p.y = y;
  p.tiles = tiles_of(g);
  if (p.tiles.count <= 0) return;
  p.u = reinterpret_cast<float*>(scratch);
  p.scratch = scratch + u_bytes(g);
  p.tasks = task_count(g, p.tiles, threads);
  if (p.tasks <= 1) {
    filter_transform_task(&p, 0);
    return forward_task(&p, 0);
  }
  kiln_parallel_for(p.tasks, filter_transform_task, &p);
  kiln_parallel_for(p.tasks, forward_task, &p);
}

std::size_t winograd_grad_filter_scratch(const kiln_conv_geometry& g, int threads) {
  if (threads < 1) threads = 1;
  return (float_bytes(partial_floats(g)) + task_bytes(g)) * static_cast<std::size_t>(threads);
}

[[gnu::noinline]] void winograd_grad_filter(const kiln_conv_geometry& g, const float* x, const float* dy, float* dw,
                                            char* scratch, int threads) {
  FilterPlan p{};
  p.g = &g, p.x = x, p.dy = dy, p.dw = dw;
  p.tiles = tiles_of(g);
  if (p.tiles.count <= 0) return zero_floats(dw, kTaps * kTaps * g.c * g.f);
  p.tasks = task_count(g, p.tiles, threads);
  // partial_floats is a multiple of 16 floats, so every partial stays 64-byte aligned.
  p.partials = reinterpret_cast<float*>(scratch);
  p.scratch = scratch + float_bytes(partial_floats(g) * p.tasks);
  if (p.tasks <= 1) {
    filter_task(&p, 0);
    return filter_finish_task(&p, 0);
  }
  kiln_parallel_for(p.tasks, filter_task, &p);
  kiln_parallel_for(p.tasks, filter_finish_task, &p);
}

void winograd_f25_1d(const float* d, const float* g, float* y) {
  float u[kAlpha], v[kAlpha];
  filter_1d(g, u);
  input_1d(d, v);
  for (Index e = 0; e < kAlpha; ++e) u[e] *= v[e];
  output_1d(u, y);
}

void winograd_f25_1d_grad_filter(const float* d, const float* dy, float* dg) {
  float dm[kAlpha], v[kAlpha];
  output_adjoint_1d(dy, dm);
  input_1d(d, v);
  for (Index e = 0; e < kAlpha; ++e) dm[e] *= v[e];
  filter_adjoint_1d(dm, dg);
}

}  // namespace kiln::cpu
