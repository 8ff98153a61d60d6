// 2-D convolution (NHWC, [KH, KW, C, F] filters) and its two gradients.
//
// 5×5 filters at stride 1, dilation 1 with C >= 8 and F >= 8 (winograd_applies, any padding)
// run the forward pass and the filter gradient as Winograd F(2×2, 5×5) in winograd.cpp: 2.78×
// fewer multiplications than the direct product, with about 10× its rounding error (up to 3e-6
// of the summed magnitudes in tests/kernels/test_cpu_kernels.cpp, which bounds it by 2e-5).
// The input gradient reaches it through the flipped convolution below (the flipped geometry
// is again 5×5, stride 1, with C and F swapped).
//
// Everything else is a GEMM over the im2col matrix, which is never written out. A "pixel" is
// one (n, oy, ox) output position; its im2col row holds the K = KH·KW·C input taps in filter
// order (zeros where a tap is padding), so the filter is a K×F row-major matrix as stored.
//
//   forward      y[P, F]  = col[P, K] · w[K, F]
//   grad filter  dw[K, F] = Σ col[P, K]ᵀ · dy[P, F]               (per-task partials, summed)
//   grad input   stride 1 and C >= kFlipMinChannels (or the flipped convolution takes the
//                Winograd path): a forward convolution of dy with the flipped, transposed
//                filter (pad (KH-1)·d - pad_top), so dx is written once, never scattered;
//                otherwise (stride > 1, or few input channels, where that GEMM would have
//                only C columns): dcol[P, K] = dy[P, F] · w[K, F]ᵀ, then col2im adds dcol
//                into dx, tasks owning whole images.
//
// Forward and grad filter read col in place: the input is copied once into a zero-padded
// image (skipped when no tap falls outside x), where every tap of a pixel lies at a fixed
// offset from the pixel's first tap, and kiln_sgemm_offset_tile (gemm.cpp) runs the 6×16
// micro-tile with A addressed through six such offsets. Tasks split the pixels (or images)
// evenly; each owns its scratch region.
#include <cstring>

#include "kernels/cpu/common.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/winograd.h"

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

// ---- the padded image and the offset micro-tile ----

constexpr Index kMr = KILN_SGEMM_MR;
constexpr Index kNr = KILN_SGEMM_NR;

// The input as the kernels read it: n images of hp × wp pixels (c channels), pixel (0, 0)
// at input (-pad_top, -pad_left), zeros outside the input, every tap of every output pixel
// inside. Without padding (and with every tap inside the input) x itself, else a copy.
struct Padded {
  Index hp, wp;
  bool copy;
};
Padded padded_of(const kiln_conv_geometry& g) {
  const Index hp = (g.oh - 1) * g.stride + (g.kh - 1) * g.dilation + 1;
  const Index wp = (g.ow - 1) * g.stride + (g.kw - 1) * g.dilation + 1;
  if (g.pad_top == 0 && g.pad_left == 0 && hp <= g.h && wp <= g.w) return {g.h, g.w, false};
  return {hp, wp, true};
}
Index padded_floats(const kiln_conv_geometry& g) {
  const Padded pd = padded_of(g);
  return pd.copy ? g.n * pd.hp * pd.wp * g.c : 0;
}

// Images [b0, b1) of x into the padded layout.
void pad_images(const kiln_conv_geometry& g, const Padded& pd, const float* x, Index b0, Index b1, float* out) {
  const Index row = pd.wp * g.c;
  const Index x0 = min_index(pd.wp, max_index(0, g.pad_left));         // first copied column
  const Index x1 = max_index(x0, min_index(pd.wp, g.w + g.pad_left));  // past the last
  for (Index b = b0; b < b1; ++b)
    for (Index yp = 0; yp < pd.hp; ++yp) {
      float* dst = out + (b * pd.hp + yp) * row;
      const Index iy = yp - g.pad_top;
      if (iy < 0 || iy >= g.h || x0 >= x1) {
        zero_floats(dst, row);
        continue;
      }
      zero_floats(dst, x0 * g.c);
      std::memcpy(dst + x0 * g.c, x + ((b * g.h + iy) * g.w + x0 - g.pad_left) * g.c,
                  static_cast<std::size_t>((x1 - x0) * g.c) * sizeof(float));
      zero_floats(dst + x1 * g.c, (pd.wp - x1) * g.c);
    }
}

// Offset in the padded image of pixel p's first tap, and of tap t from there.
Index pixel_offset(const kiln_conv_geometry& g, const Padded& pd, Index p) {
  const Pixel px = pixel_at(g, p);
  return ((px.b * pd.hp + px.oy * g.stride) * pd.wp + px.ox * g.stride) * g.c;
}
Index tap_offset(const kiln_conv_geometry& g, const Padded& pd, Index t) {
  const Index ch = t % g.c, j = (t / g.c) % g.kw, i = t / (g.c * g.kw);
  return (i * g.dilation * pd.wp + j * g.dilation) * g.c + ch;
}

// The filter (K × F, row-major) as NR-column slivers, each K × NR with zero columns past F.
Index slivers_of(Index f) {
  return ceil_div(f, kNr);
}
void pack_filter(const float* w, Index taps, Index f, float* out) {
  for (Index s = 0; s < slivers_of(f); ++s) {
    const Index cols = min_index(kNr, f - s * kNr);
    for (Index t = 0; t < taps; ++t) {
      float* dst = out + (s * taps + t) * kNr;
      for (Index j = 0; j < cols; ++j) dst[j] = w[t * f + s * kNr + j];
      for (Index j = cols; j < kNr; ++j) dst[j] = 0.0f;
    }
  }
}

// ---- forward ----
//
// y[P, F] = col[P, K] · w[K, F] with col read in place: a micro-tile's six pixels are six
// offsets into the padded image, and the taps are runs along it (one per filter row, or per
// filter tap when dilated), matching the packed filter's rows.

// Pixels per block: the block's micro-tiles share the filter sliver while it is in cache.
constexpr Index kForwardBlock = 96;
static_assert(kForwardBlock % kMr == 0, "blocks hold whole micro-tiles");

Index forward_runs(const kiln_conv_geometry& g) {
  return g.dilation == 1 ? g.kh : g.kh * g.kw;
}

struct ForwardLayout {
  std::size_t filter_bytes, runs_bytes, padded_bytes;
  std::size_t total() const { return filter_bytes + runs_bytes + padded_bytes; }
};
ForwardLayout forward_layout(const kiln_conv_geometry& g) {
  return {float_bytes(slivers_of(g.f) * taps_of(g) * kNr),
          aligned_bytes(static_cast<std::size_t>(forward_runs(g)) * sizeof(kiln_sgemm_run)),
          float_bytes(padded_floats(g))};
}

struct ForwardPlan {
  const kiln_conv_geometry* g;
  const float* x;
  const float* w;
  const float* bias;  // per filter, or null
  int act;            // 1: relu
  float* y;
  Padded pd;
  const float* image;  // x or its padded copy
  float* padded;       // the copy (null without)
  float* filter;       // packed
  kiln_sgemm_run* runs;
  Index run_count, tasks;
};

// Setup, split over tasks: images to pad, and (task 0) the packed filter and the runs.
void forward_setup_task(void* ctx, Index task) {
  const ForwardPlan& p = *static_cast<const ForwardPlan*>(ctx);
  const kiln_conv_geometry& g = *p.g;
  if (p.padded != nullptr) {
    const Range images = split_range(g.n, p.tasks, task);
    pad_images(g, p.pd, p.x, images.begin, images.end, p.padded);
  }
  if (task != 0) return;
  const Index taps = taps_of(g);
  pack_filter(p.w, taps, g.f, p.filter);
  Index r = 0;
  for (Index i = 0; i < g.kh; ++i) {
    if (g.dilation == 1) {
      p.runs[r++] = {i * p.pd.wp * g.c, i * g.kw * g.c * kNr, g.kw * g.c};
      continue;
    }
    for (Index j = 0; j < g.kw; ++j)
      p.runs[r++] = {(i * g.dilation * p.pd.wp + j * g.dilation) * g.c, (i * g.kw + j) * g.c * kNr, g.c};
  }
}

void forward_task(void* ctx, Index task) {
  const ForwardPlan& p = *static_cast<const ForwardPlan*>(ctx);
  const kiln_conv_geometry& g = *p.g;
  const Index taps = taps_of(g);
  const Range range = split_range(pixels_of(g), p.tasks, task);
  Index offsets[kForwardBlock];
  for (Index p0 = range.begin; p0 < range.end; p0 += kForwardBlock) {
    const Index rows = min_index(kForwardBlock, range.end - p0);
    const Index padded_rows = round_up(rows, kMr);
    for (Index r = 0; r < padded_rows; ++r) offsets[r] = pixel_offset(g, p.pd, p0 + min_index(r, rows - 1));
    for (Index s = 0; s < slivers_of(g.f); ++s) {
      const float* b = p.filter + s * taps * kNr;
      const Index cols = min_index(kNr, g.f - s * kNr);
      for (Index r = 0; r < rows; r += kMr)
        kiln_sgemm_offset_tile(p.image, offsets + r, 1, b, kNr, p.runs, p.run_count, false,
                               p.y + (p0 + r) * g.f + s * kNr, g.f, min_index(kMr, rows - r), cols);
    }
    if (p.bias != nullptr || p.act != 0) bias_relu(p.y + p0 * g.f, g.f, rows, g.f, p.bias, p.act);  // while in cache
  }
}

std::size_t forward_scratch(const kiln_conv_geometry& g, int threads) {
  if (winograd_applies(g)) return winograd_forward_scratch(g, threads) + kScratchAlign;
  return forward_layout(g).total() + kScratchAlign;
}

// y = conv2d(x, w), + bias[f] (bias may be null), then relu when act == 1.
void forward(const kiln_conv_geometry& g, const float* x, const float* w, const float* bias, int act, float* y,
             char* scratch, int threads) {
  const Index pixels = pixels_of(g);
  if (pixels <= 0 || g.f <= 0) return;
  if (taps_of(g) <= 0) {
    zero_floats(y, pixels * g.f);
    bias_relu(y, g.f, pixels, g.f, bias, act);
    return;
  }
  if (winograd_applies(g)) return winograd_forward(g, x, w, bias, act, y, scratch, threads);
  const ForwardLayout layout = forward_layout(g);
  ForwardPlan p{};
  p.g = &g, p.x = x, p.w = w, p.bias = bias, p.act = act, p.y = y;
  p.pd = padded_of(g);
  p.filter = reinterpret_cast<float*>(scratch);
  p.runs = reinterpret_cast<kiln_sgemm_run*>(scratch + layout.filter_bytes);
  p.padded = p.pd.copy ? reinterpret_cast<float*>(scratch + layout.filter_bytes + layout.runs_bytes) : nullptr;
  p.image = p.pd.copy ? p.padded : x;
  p.run_count = forward_runs(g);
  p.tasks = min_index(useful_tasks(pixels * taps_of(g) * g.f, kConvGrain, threads), ceil_div(pixels, kMr));
  if (p.tasks <= 1) {
    forward_setup_task(&p, 0);
    return forward_task(&p, 0);
  }
  kiln_parallel_for(p.tasks, forward_setup_task, &p);
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
  return g.stride == 1 && (g.c >= kFlipMinChannels || winograd_applies(flipped_geometry(g)));
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
    return forward(t, dy, flipped, nullptr, 0, dx, scratch + float_bytes(taps_of(g) * g.f), threads);
  }
  ScatterPlan p{&g, dy, w, dx, scratch, scatter_task_scratch(g), 1, forward_block(g)};
  p.tasks = min_index(useful_tasks(pixels_of(g) * taps_of(g) * g.f, kConvGrain, threads), g.n);
  if (p.tasks <= 1) return scatter_task(&p, 0);
  kiln_parallel_for(p.tasks, scatter_task, &p);
}

// ---- grad filter ----
//
// dw[K, F] = Σ col[P, K]ᵀ · dy[P, F]: a micro-tile's six rows are six taps (offsets from a
// pixel's first tap in the padded image), the shared dimension runs along output rows of
// pixels, and dy is packed a block of pixels at a time into NR-column slivers. Tasks split
// the pixels; each sums into its own K × F partial (task 0 into dw), added up at the end.

constexpr Index kFilterBlock = 512;  // pixels per block: its dy slivers and image rows stay in L2

struct FilterLayout {
  std::size_t padded_bytes, partial_bytes, dy_bytes, runs_bytes;
  std::size_t task_bytes() const { return dy_bytes + runs_bytes; }
};
FilterLayout filter_layout(const kiln_conv_geometry& g) {
  return {float_bytes(padded_floats(g)), float_bytes(taps_of(g) * g.f),
          float_bytes(slivers_of(g.f) * kFilterBlock * kNr),
          aligned_bytes(static_cast<std::size_t>(kFilterBlock) * sizeof(kiln_sgemm_run))};
}

struct FilterPlan {
  const kiln_conv_geometry* g;
  const float* x;
  const float* dy;
  float* dw;
  Padded pd;
  const float* image;  // x or its padded copy
  float* padded;       // the copy (null without)
  char* partials;      // tasks - 1 K×F partial sums (task 0 writes dw)
  char* scratch;       // per task: a packed dy block and its runs
  FilterLayout layout;
  Index tasks;
};

float* partial_of(const FilterPlan& p, Index task) {
  return task == 0 ? p.dw
                   : reinterpret_cast<float*>(p.partials + static_cast<std::size_t>(task - 1) * p.layout.partial_bytes);
}

void filter_pad_task(void* ctx, Index task) {
  const FilterPlan& p = *static_cast<const FilterPlan*>(ctx);
  const Range images = split_range(p.g->n, p.tasks, task);
  pad_images(*p.g, p.pd, p.x, images.begin, images.end, p.padded);
}

void filter_task(void* ctx, Index task) {
  const FilterPlan& p = *static_cast<const FilterPlan*>(ctx);
  const kiln_conv_geometry& g = *p.g;
  char* mine = p.scratch + static_cast<std::size_t>(task) * p.layout.task_bytes();
  float* packed_dy = reinterpret_cast<float*>(mine);
  auto* runs = reinterpret_cast<kiln_sgemm_run*>(mine + p.layout.dy_bytes);
  const Index taps = taps_of(g), slivers = slivers_of(g.f);
  float* out = partial_of(p, task);
  const Range range = split_range(pixels_of(g), p.tasks, task);
  if (range.begin >= range.end) return zero_floats(out, taps * g.f);
  for (Index p0 = range.begin; p0 < range.end; p0 += kFilterBlock) {
    const Index rows = min_index(kFilterBlock, range.end - p0);
    for (Index s = 0; s < slivers; ++s) {
      const Index cols = min_index(kNr, g.f - s * kNr);
      for (Index r = 0; r < rows; ++r) {
        float* dst = packed_dy + (s * rows + r) * kNr;
        const float* src = p.dy + (p0 + r) * g.f + s * kNr;
        for (Index j = 0; j < cols; ++j) dst[j] = src[j];
        for (Index j = cols; j < kNr; ++j) dst[j] = 0.0f;
      }
    }
    // Runs of pixels along an output row: one step moves `stride` pixels in the image.
    Index run_count = 0;
    for (Index r = 0; r < rows;) {
      const Index ox = (p0 + r) % g.ow;
      const Index len = min_index(g.ow - ox, rows - r);
      runs[run_count++] = {pixel_offset(g, p.pd, p0 + r), r * kNr, len};
      r += len;
    }
    const bool accumulate = p0 != range.begin;
    for (Index t0 = 0; t0 < taps; t0 += kMr) {
      const Index mr = min_index(kMr, taps - t0);
      Index offsets[kMr];
      for (Index i = 0; i < kMr; ++i) offsets[i] = tap_offset(g, p.pd, t0 + min_index(i, mr - 1));
      for (Index s = 0; s < slivers; ++s)
        kiln_sgemm_offset_tile(p.image, offsets, g.stride * g.c, packed_dy + s * rows * kNr, kNr, runs, run_count,
                               accumulate, out + t0 * g.f + s * kNr, g.f, mr, min_index(kNr, g.f - s * kNr));
    }
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
  if (winograd_applies(g)) return winograd_grad_filter_scratch(g, threads) + kScratchAlign;
  const FilterLayout layout = filter_layout(g);
  return layout.padded_bytes + (layout.partial_bytes + layout.task_bytes()) * static_cast<std::size_t>(threads) +
         kScratchAlign;
}

void grad_filter(const kiln_conv_geometry& g, const float* x, const float* dy, float* dw, char* scratch, int threads) {
  const Index taps = taps_of(g);
  if (taps <= 0 || g.f <= 0) return;
  const Index pixels = pixels_of(g);
  if (pixels <= 0) return zero_floats(dw, taps * g.f);
  if (winograd_applies(g)) return winograd_grad_filter(g, x, dy, dw, scratch, threads);
  FilterPlan p{};
  p.g = &g, p.x = x, p.dy = dy, p.dw = dw;
  p.pd = padded_of(g);
  p.layout = filter_layout(g);
  p.padded = p.pd.copy ? reinterpret_cast<float*>(scratch) : nullptr;
  p.image = p.pd.copy ? p.padded : x;
  p.tasks = min_index(useful_tasks(pixels * taps * g.f, kConvGrain, threads), pixels);
  p.partials = scratch + p.layout.padded_bytes;
  p.scratch = p.partials + static_cast<std::size_t>(p.tasks) * p.layout.partial_bytes;
  if (p.tasks <= 1) {
    if (p.padded != nullptr) filter_pad_task(&p, 0);
    return filter_task(&p, 0);
  }
  if (p.padded != nullptr) kiln_parallel_for(p.tasks, filter_pad_task, &p);
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
  kiln::cpu::forward(*g, x, w, nullptr, 0, y, kiln::cpu::align_scratch(scratch), threads);
}

void kiln_k_conv2d_bias_relu(const kiln_conv_geometry* g, const float* x, const float* w, const float* bias, int act,
                             float* y, void* scratch, int threads) {
  kiln::cpu::forward(*g, x, w, bias, act, y, kiln::cpu::align_scratch(scratch), threads);
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
