// 2-D convolution (NHWC, [KH, KW, C, F] filters) and its two gradients as GEMMs over
// im2col blocks in scratch. A "pixel" is one (n, oy, ox) output position; its im2col row
// holds the K = KH·KW·C input taps in filter order (zeros where a tap is padding), so the
// filter is a K×F row-major matrix as stored.
//
//   forward      y[P, F]  = col[P, K] · w[K, F]                   (per block of pixels)
//   grad filter  dw[K, F] = Σ col[P, K]ᵀ · dy[P, F]               (per-task partials, summed)
//   grad input   stride 1 and C >= kFlipMinChannels: a forward convolution of dy with the
//                flipped, transposed filter (pad (KH-1)·d - pad_top), so dx is written once,
//                never scattered; otherwise (stride > 1, or few input channels, where that
//                GEMM would have only C columns): dcol[P, K] = dy[P, F] · w[K, F]ᵀ, then
//                col2im adds dcol into dx, tasks owning whole images.
//
// Tasks split the pixels (or images) evenly; each owns an im2col buffer and a GEMM
// workspace in scratch. A 1×1, stride-1, unpadded convolution reads x as the column matrix.
#include <cstring>

#include "kernels/cpu/common.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/kernels.h"

namespace kiln::cpu {
namespace {

// Multiply-adds per task below which another thread is not worth waking.
constexpr Index kConvGrain = Index{1} << 17;
// Below this many input channels the flipped convolution's GEMM is too narrow (N = C).
constexpr Index kFlipMinChannels = 16;

Index taps_of(const kiln_conv_geometry& g) {
  return g.kh * g.kw * g.c;
}
Index pixels_of(const kiln_conv_geometry& g) {
  return g.n * g.oh * g.ow;
}
bool is_pointwise(const kiln_conv_geometry& g) {
  return g.kh == 1 && g.kw == 1 && g.stride == 1 && g.pad_top == 0 && g.pad_left == 0 && g.oh == g.h && g.ow == g.w;
}

// Pixels per im2col block: about `target_floats` of column matrix, at least `min_rows`.
Index block_rows(Index taps, Index target_floats, Index min_rows, Index max_rows) {
  Index rows = round_up(target_floats / (taps > 0 ? taps : 1), 8);
  if (rows < min_rows) rows = min_rows;
  if (rows > max_rows) rows = max_rows;
  return rows;
}
Index forward_block(const kiln_conv_geometry& g) {
  return block_rows(taps_of(g), Index{1} << 16, 96, 1536);
}
Index filter_block(const kiln_conv_geometry& g) {
  return block_rows(taps_of(g), Index{1} << 16, 256, 2048);
}

// Pixel p's coordinates.
struct Pixel {
  Index b, oy, ox;
};
Pixel pixel_at(const kiln_conv_geometry& g, Index p) {
  const Index plane = g.oh * g.ow;
  const Index rem = p % plane;
  return {p / plane, rem / g.ow, rem % g.ow};
}
void next_pixel(const kiln_conv_geometry& g, Pixel& px) {
  if (++px.ox < g.ow) return;
  px.ox = 0;
  if (++px.oy < g.oh) return;
  px.oy = 0;
  ++px.b;
}

void copy_floats(float* dst, const float* src, Index count) {
  for (Index t = 0; t < count; ++t) dst[t] = src[t];
}
void zero_floats(float* dst, Index count) {
  for (Index t = 0; t < count; ++t) dst[t] = 0.0f;
}

// The in-bounds filter columns [j0, j1) of output column ox.
struct TapRange {
  Index j0, j1;
};
TapRange tap_columns(const kiln_conv_geometry& g, Index ox) {
  const Index left = ox * g.stride - g.pad_left;
  Index j0 = 0, j1 = g.kw;
  if (left < 0) j0 = (-left + g.dilation - 1) / g.dilation;
  const Index past = left + (g.kw - 1) * g.dilation - (g.w - 1);  // > 0: taps past the right edge
  if (past > 0) j1 = g.kw - (past + g.dilation - 1) / g.dilation;
  if (j0 > g.kw) j0 = g.kw;
  if (j1 < j0) j1 = j0;
  return {j0, j1};
}

// col[r, :] = the taps of pixels p0 .. p0 + rows.
void im2col(const kiln_conv_geometry& g, const float* x, Index p0, Index rows, float* col) {
  const Index taps = taps_of(g);
  const Index row_len = g.kw * g.c;
  Pixel px = pixel_at(g, p0);
  for (Index r = 0; r < rows; ++r, next_pixel(g, px)) {
    float* dst = col + r * taps;
    const float* image = x + px.b * g.h * g.w * g.c;
    const TapRange cols = tap_columns(g, px.ox);
    const Index left = px.ox * g.stride - g.pad_left;
    for (Index i = 0; i < g.kh; ++i, dst += row_len) {
      const Index iy = px.oy * g.stride + i * g.dilation - g.pad_top;
      if (iy < 0 || iy >= g.h) {
        zero_floats(dst, row_len);
        continue;
      }
      const float* src_row = image + iy * g.w * g.c;
      zero_floats(dst, cols.j0 * g.c);
      if (g.dilation == 1) {
        copy_floats(dst + cols.j0 * g.c, src_row + (left + cols.j0) * g.c, (cols.j1 - cols.j0) * g.c);
      } else {
        for (Index j = cols.j0; j < cols.j1; ++j)
          copy_floats(dst + j * g.c, src_row + (left + j * g.dilation) * g.c, g.c);
      }
      zero_floats(dst + cols.j1 * g.c, (g.kw - cols.j1) * g.c);
    }
  }
}

// dx (image of pixel p0 onwards) += col2im of dcol for pixels p0 .. p0 + rows.
void col2im_add(const kiln_conv_geometry& g, const float* dcol, Index p0, Index rows, float* dx) {
  const Index taps = taps_of(g);
  Pixel px = pixel_at(g, p0);
  for (Index r = 0; r < rows; ++r, next_pixel(g, px)) {
    const float* src = dcol + r * taps;
    float* image = dx + px.b * g.h * g.w * g.c;
    const TapRange cols = tap_columns(g, px.ox);
    const Index left = px.ox * g.stride - g.pad_left;
    for (Index i = 0; i < g.kh; ++i) {
      const Index iy = px.oy * g.stride + i * g.dilation - g.pad_top;
      if (iy < 0 || iy >= g.h) continue;
      float* dst_row = image + iy * g.w * g.c;
      for (Index j = cols.j0; j < cols.j1; ++j) {
        float* dst = dst_row + (left + j * g.dilation) * g.c;
        const float* s = src + (i * g.kw + j) * g.c;
        for (Index ch = 0; ch < g.c; ++ch) dst[ch] += s[ch];
      }
    }
  }
}

// Per-task scratch of a blocked pass: an im2col block and a GEMM workspace.
struct TaskScratch {
  std::size_t col_bytes, workspace_bytes;
  std::size_t total() const { return col_bytes + workspace_bytes; }
};
TaskScratch forward_task_scratch(const kiln_conv_geometry& g) {
  const Index rows = forward_block(g);
  return {is_pointwise(g) ? 0 : float_bytes(rows * taps_of(g)),
          aligned_bytes(kiln_sgemm_workspace_size(rows, g.f, taps_of(g)))};
}

// ---- forward ----

struct ForwardPlan {
  const kiln_conv_geometry* g;
  const float* x;
  const float* w;
  float* y;
  char* scratch;
  TaskScratch per_task;
  Index tasks, block;
};

void forward_task(void* ctx, Index task) {
  const ForwardPlan& p = *static_cast<const ForwardPlan*>(ctx);
  const kiln_conv_geometry& g = *p.g;
  char* mine = p.scratch + static_cast<std::size_t>(task) * p.per_task.total();
  float* col = reinterpret_cast<float*>(mine);
  void* workspace = mine + p.per_task.col_bytes;
  const Index taps = taps_of(g);
  const Range range = split_range(pixels_of(g), p.tasks, task);
  const bool pointwise = is_pointwise(g);
  for (Index p0 = range.begin; p0 < range.end; p0 += p.block) {
    const Index rows = min_index(p.block, range.end - p0);
    const float* a = col;
    if (pointwise) {
      a = p.x + p0 * g.c;
    } else {
      im2col(g, p.x, p0, rows, col);
    }
    kiln_sgemm_slice(false, false, rows, g.f, taps, 1.0f, a, taps, p.w, g.f, 0.0f, p.y + p0 * g.f, g.f, workspace, 0,
                     1);
  }
}

std::size_t forward_scratch(const kiln_conv_geometry& g, int threads) {
  return forward_task_scratch(g).total() * static_cast<std::size_t>(threads < 1 ? 1 : threads) + kScratchAlign;
}

void forward(const kiln_conv_geometry& g, const float* x, const float* w, float* y, char* scratch, int threads) {
  const Index pixels = pixels_of(g);
  if (pixels <= 0 || g.f <= 0) return;
  if (taps_of(g) <= 0) {
    zero_floats(y, pixels * g.f);
    return;
  }
  ForwardPlan p{&g, x, w, y, scratch, forward_task_scratch(g), 1, forward_block(g)};
  p.tasks = useful_tasks(pixels * taps_of(g) * g.f, kConvGrain, threads);
  p.tasks = min_index(p.tasks, pixels);
  if (p.tasks <= 1) return forward_task(&p, 0);
  kiln_parallel_for(p.tasks, forward_task, &p);
}

// ---- grad input ----

// The stride-1 adjoint as a forward convolution: over dy (oh × ow × f) with the filter
// flipped in both axes and its channel axes swapped, giving h × w × c.
kiln_conv_geometry flipped_geometry(const kiln_conv_geometry& g) {
  kiln_conv_geometry t{};
  t.n = g.n, t.h = g.oh, t.w = g.ow, t.c = g.f;
  t.kh = g.kh, t.kw = g.kw, t.f = g.c;
  t.oh = g.h, t.ow = g.w;
  t.stride = 1, t.dilation = g.dilation;
  t.pad_top = (g.kh - 1) * g.dilation - g.pad_top;
  t.pad_left = (g.kw - 1) * g.dilation - g.pad_left;
  return t;
}

void flip_filter(const kiln_conv_geometry& g, const float* w, float* flipped) {
  for (Index i = 0; i < g.kh; ++i)
    for (Index j = 0; j < g.kw; ++j) {
      const float* src = w + ((g.kh - 1 - i) * g.kw + (g.kw - 1 - j)) * g.c * g.f;
      float* dst = flipped + (i * g.kw + j) * g.f * g.c;
      for (Index ch = 0; ch < g.c; ++ch)
        for (Index k = 0; k < g.f; ++k) dst[k * g.c + ch] = src[ch * g.f + k];
    }
}

bool grad_input_by_flip(const kiln_conv_geometry& g) {
  return g.stride == 1 && g.c >= kFlipMinChannels;
}

// The scatter path: tasks own whole images; blocks of at most one image's pixels.
struct ScatterPlan {
  const kiln_conv_geometry* g;
  const float* dy;
  const float* w;
  float* dx;
  char* scratch;
  TaskScratch per_task;
  Index tasks, block;
};

TaskScratch scatter_task_scratch(const kiln_conv_geometry& g) {
  const Index rows = forward_block(g);
  return {float_bytes(rows * taps_of(g)), aligned_bytes(kiln_sgemm_workspace_size(rows, taps_of(g), g.f))};
}

void scatter_task(void* ctx, Index task) {
  const ScatterPlan& p = *static_cast<const ScatterPlan*>(ctx);
  const kiln_conv_geometry& g = *p.g;
  char* mine = p.scratch + static_cast<std::size_t>(task) * p.per_task.total();
  float* dcol = reinterpret_cast<float*>(mine);
  void* workspace = mine + p.per_task.col_bytes;
  const Index taps = taps_of(g);
  const Range images = split_range(g.n, p.tasks, task);
  const Index image_floats = g.h * g.w * g.c;
  zero_floats(p.dx + images.begin * image_floats, (images.end - images.begin) * image_floats);
  const Index end = images.end * g.oh * g.ow;
  for (Index p0 = images.begin * g.oh * g.ow; p0 < end; p0 += p.block) {
    const Index rows = min_index(p.block, end - p0);
    kiln_sgemm_slice(false, true, rows, taps, g.f, 1.0f, p.dy + p0 * g.f, g.f, p.w, g.f, 0.0f, dcol, taps, workspace, 0,
                     1);
    col2im_add(g, dcol, p0, rows, p.dx);
  }
}

std::size_t grad_input_scratch(const kiln_conv_geometry& g, int threads) {
  if (threads < 1) threads = 1;
  if (grad_input_by_flip(g)) {
    const kiln_conv_geometry t = flipped_geometry(g);
    return float_bytes(taps_of(g) * g.f) + forward_scratch(t, threads);
  }
  return scatter_task_scratch(g).total() * static_cast<std::size_t>(threads) + kScratchAlign;
}

void grad_input(const kiln_conv_geometry& g, const float* dy, const float* w, float* dx, char* scratch, int threads) {
  const Index dx_floats = g.n * g.h * g.w * g.c;
  if (dx_floats <= 0) return;
  if (pixels_of(g) <= 0 || g.f <= 0 || taps_of(g) <= 0) {
    zero_floats(dx, dx_floats);
    return;
  }
  if (grad_input_by_flip(g)) {
    const kiln_conv_geometry t = flipped_geometry(g);
    float* flipped = reinterpret_cast<float*>(scratch);
    flip_filter(g, w, flipped);
    return forward(t, dy, flipped, dx, scratch + float_bytes(taps_of(g) * g.f), threads);
  }
  ScatterPlan p{&g, dy, w, dx, scratch, scatter_task_scratch(g), 1, forward_block(g)};
  p.tasks = min_index(useful_tasks(pixels_of(g) * taps_of(g) * g.f, kConvGrain, threads), g.n);
  if (p.tasks <= 1) return scatter_task(&p, 0);
  kiln_parallel_for(p.tasks, scatter_task, &p);
}

// ---- grad filter ----

struct FilterPlan {
  const kiln_conv_geometry* g;
  const float* x;
  const float* dy;
  float* dw;
  char* partials;  // tasks - 1 K×F partial sums (task 0 writes dw)
  char* scratch;   // per-task im2col + workspace
  TaskScratch per_task;
  std::size_t partial_bytes;
  Index tasks, block;
};

TaskScratch filter_task_scratch(const kiln_conv_geometry& g) {
  const Index rows = filter_block(g);
  return {is_pointwise(g) ? 0 : float_bytes(rows * taps_of(g)),
          aligned_bytes(kiln_sgemm_workspace_size(taps_of(g), g.f, rows))};
}

float* partial_of(const FilterPlan& p, Index task) {
  return task == 0 ? p.dw : reinterpret_cast<float*>(p.partials + static_cast<std::size_t>(task - 1) * p.partial_bytes);
}

void filter_task(void* ctx, Index task) {
  const FilterPlan& p = *static_cast<const FilterPlan*>(ctx);
  const kiln_conv_geometry& g = *p.g;
  char* mine = p.scratch + static_cast<std::size_t>(task) * p.per_task.total();
  float* col = reinterpret_cast<float*>(mine);
  void* workspace = mine + p.per_task.col_bytes;
  const Index taps = taps_of(g);
  float* out = partial_of(p, task);
  const Range range = split_range(pixels_of(g), p.tasks, task);
  if (range.begin >= range.end) return zero_floats(out, taps * g.f);
  const bool pointwise = is_pointwise(g);
  for (Index p0 = range.begin; p0 < range.end; p0 += p.block) {
    const Index rows = min_index(p.block, range.end - p0);
    const float* a = col;
    if (pointwise) {
      a = p.x + p0 * g.c;
    } else {
      im2col(g, p.x, p0, rows, col);
    }
    kiln_sgemm_slice(true, false, taps, g.f, rows, 1.0f, a, taps, p.dy + p0 * g.f, g.f, p0 == range.begin ? 0.0f : 1.0f,
                     out, g.f, workspace, 0, 1);
  }
}

// dw += the other tasks' partials, over a slice of dw's elements.
void sum_partials_task(void* ctx, Index task) {
  const FilterPlan& p = *static_cast<const FilterPlan*>(ctx);
  const Range r = split_range(taps_of(*p.g) * p.g->f, p.tasks, task);
  for (Index t = 1; t < p.tasks; ++t) {
    const float* part = partial_of(p, t);
    for (Index e = r.begin; e < r.end; ++e) p.dw[e] += part[e];
  }
}

std::size_t grad_filter_scratch(const kiln_conv_geometry& g, int threads) {
  if (threads < 1) threads = 1;
  return (float_bytes(taps_of(g) * g.f) + filter_task_scratch(g).total()) * static_cast<std::size_t>(threads) +
         kScratchAlign;
}

void grad_filter(const kiln_conv_geometry& g, const float* x, const float* dy, float* dw, char* scratch, int threads) {
  const Index taps = taps_of(g);
  if (taps <= 0 || g.f <= 0) return;
  const Index pixels = pixels_of(g);
  if (pixels <= 0) return zero_floats(dw, taps * g.f);
  FilterPlan p{};
  p.g = &g, p.x = x, p.dy = dy, p.dw = dw;
  p.per_task = filter_task_scratch(g);
  p.partial_bytes = float_bytes(taps * g.f);
  p.block = filter_block(g);
  p.tasks = min_index(useful_tasks(pixels * taps * g.f, kConvGrain, threads), pixels);
  p.partials = scratch;
  p.scratch = scratch + static_cast<std::size_t>(p.tasks) * p.partial_bytes;
  if (p.tasks <= 1) return filter_task(&p, 0);
  kiln_parallel_for(p.tasks, filter_task, &p);
  kiln_parallel_for(p.tasks, sum_partials_task, &p);
}

}  // namespace
}  // namespace kiln::cpu

extern "C" {

std::size_t kiln_k_conv2d_scratch(const kiln_conv_geometry* g, int threads) {
  return kiln::cpu::forward_scratch(*g, threads);
}

void kiln_k_conv2d(const kiln_conv_geometry* g, const float* x, const float* w, float* y, void* scratch, int threads) {
  kiln::cpu::forward(*g, x, w, y, kiln::cpu::align_scratch(scratch), threads);
}

std::size_t kiln_k_conv2d_grad_input_scratch(const kiln_conv_geometry* g, int threads) {
  return kiln::cpu::grad_input_scratch(*g, threads);
}

void kiln_k_conv2d_grad_input(const kiln_conv_geometry* g, const float* dy, const float* w, float* dx, void* scratch,
                              int threads) {
  kiln::cpu::grad_input(*g, dy, w, dx, kiln::cpu::align_scratch(scratch), threads);
}

std::size_t kiln_k_conv2d_grad_filter_scratch(const kiln_conv_geometry* g, int threads) {
  return kiln::cpu::grad_filter_scratch(*g, threads);
}

void kiln_k_conv2d_grad_filter(const kiln_conv_geometry* g, const float* x, const float* dy, float* dw, void* scratch,
                               int threads) {
  kiln::cpu::grad_filter(*g, x, dy, dw, kiln::cpu::align_scratch(scratch), threads);
}

}  // extern "C"
