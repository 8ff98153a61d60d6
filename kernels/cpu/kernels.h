// The CPU backend's kernel set: plain C entry points over raw buffers, no exceptions, no
// allocation, no global state. Compiled twice: natively (kiln_kernels_cpu: tests,
// benchmarks, and the code generator's scratch-size queries) and to LLVM bitcode that the
// code generator links into every generated module, where calls with constant shapes are
// specialised and inlined. The caller passes every buffer, including scratch, whose size
// the matching *_scratch function gives.
//
// Elementwise ops (unary, binary, compare, select, cast, fills, broadcast_to, reshape,
// if_training, assign_state) have no kernel here: the code generator emits them as fused
// loops. Everything here is float32 unless its name says otherwise; the code generator
// reports (op, dtype) pairs it cannot run (see compiler/codegen).
//
// Work is split across threads through kiln_parallel_for, which the host defines: the JIT
// binds it to the runtime's thread pool, an artifact to a serial loop.
#pragma once

#include <cstddef>
#include <cstdint>

extern "C" {

// ---- Threading hook (defined by the host, not by the kernels) ----------------------------
// Calls fn(ctx, i) for every i in [0, count), in any order, possibly in parallel, and
// returns when all have finished. Kernels call it with count <= the `threads` they were given.
typedef void (*kiln_task_fn)(void* ctx, std::int64_t index);
void kiln_parallel_for(std::int64_t count, kiln_task_fn fn, void* ctx);

// ---- Matrix product -----------------------------------------------------------------------
// For each of `batch` products: C_i = op(A_i) op(B_i) (+ bias[j] on every row), then the
// activation: act == 1 relu; act == 2 a relu's gradient, C_i[r][j] kept where
// gate_i[r][j] > 0 and 0 elsewhere (gate_i = gate + i*m*n, the relu's output, m×n; NaN
// gives 0, as select(greater(x, 0), C, 0) does). C row-major m×n. op(A) is m×k (A stored
// m×k, or k×m when trans_a), op(B) is k×n (B stored k×n, or n×k when trans_b).
// A_i = a + i*a_stride (a_stride 0 broadcasts), likewise B_i, C_i = c + i*m*n. bias and
// gate (unless act == 2) may be null. `threads` >= 1 splits each product.
std::size_t kiln_k_matmul_scratch(std::int64_t m, std::int64_t n, std::int64_t k, int threads);
void kiln_k_matmul(std::int64_t batch, std::int64_t m, std::int64_t n, std::int64_t k, bool trans_a, bool trans_b,
                   const float* a, std::int64_t a_stride, const float* b, std::int64_t b_stride, float* c,
                   const float* bias, int act, const float* gate, void* scratch, int threads);
// The same product with C not stored: each finished block of C (bias and act applied) goes
// to chain(chain_ctx, block, ld, r0, rows, c0, cols), where block[i*ld + j] is C[r0 + i][c0 +
// j] with rows counted through the batch (product i's row r is row i*m + r). Every element
// reaches the chain exactly once; blocks (at most 432 × 256, or 144 rows of up to 1024
// columns; with m <= 4 and k > 0, all m rows of a range of columns) are handed out on the
// pool's threads, so the chain must be safe to run on disjoint blocks at once. `c` is not used. Scratch:
// kiln_k_matmul_chained_scratch.
typedef void (*kiln_matmul_chain_fn)(void* ctx, const float* block, std::int64_t ld, std::int64_t r0, std::int64_t rows,
                                     std::int64_t c0, std::int64_t cols);
std::size_t kiln_k_matmul_chained_scratch(std::int64_t m, std::int64_t n, std::int64_t k, int threads);
void kiln_k_matmul_chained(std::int64_t batch, std::int64_t m, std::int64_t n, std::int64_t k, bool trans_a,
                           bool trans_b, const float* a, std::int64_t a_stride, const float* b, std::int64_t b_stride,
                           float* c, const float* bias, int act, const float* gate, kiln_matmul_chain_fn chain,
                           void* chain_ctx, void* scratch, int threads);

// ---- Convolution (NHWC input, [KH, KW, C, F] filter, NHWC output) ---------------------------
// Geometry as kiln::kernels::ref::Conv2dGeometry (pads already resolved).
struct kiln_conv_geometry {
  std::int64_t n, h, w, c;  // input
  std::int64_t kh, kw, f;   // filter
  std::int64_t oh, ow;      // output
  std::int64_t stride, dilation, pad_top, pad_left;
};
std::size_t kiln_k_conv2d_scratch(const kiln_conv_geometry* g, int threads);
void kiln_k_conv2d(const kiln_conv_geometry* g, const float* x, const float* w, float* y, void* scratch, int threads);
// The same, then + bias[f] on every output pixel (bias may be null), then relu when act ==
// 1 (NaN gives 0): the convolution's epilogue, applied while each block of y is in cache.
// Scratch: kiln_k_conv2d_scratch.
void kiln_k_conv2d_bias_relu(const kiln_conv_geometry* g, const float* x, const float* w, const float* bias, int act,
                             float* y, void* scratch, int threads);
std::size_t kiln_k_conv2d_grad_input_scratch(const kiln_conv_geometry* g, int threads);
void kiln_k_conv2d_grad_input(const kiln_conv_geometry* g, const float* dy, const float* w, float* dx, void* scratch,
                              int threads);
std::size_t kiln_k_conv2d_grad_filter_scratch(const kiln_conv_geometry* g, int threads);
void kiln_k_conv2d_grad_filter(const kiln_conv_geometry* g, const float* x, const float* dy, float* dw, void* scratch,
                               int threads);

// ---- Pooling (NHWC); geometry as kiln::kernels::ref::PoolGeometry ----------------------------
struct kiln_pool_geometry {
  std::int64_t n, h, w, c;
  std::int64_t size, stride;  // stride resolved (never 0)
  std::int64_t oh, ow, pad_top, pad_left;
};
// `threads` >= 1 splits the images. positive_only != 0: a window's gradient reaches its
// maximum only when that maximum is > 0 (the gradient of a relu feeding the pool, folded in).
void kiln_k_max_pool2d(const kiln_pool_geometry* g, const float* x, float* y, int threads);
void kiln_k_avg_pool2d(const kiln_pool_geometry* g, const float* x, float* y, int threads);
void kiln_k_max_pool2d_grad(const kiln_pool_geometry* g, const float* x, const float* dy, float* dx, int positive_only,
                            int threads);
void kiln_k_avg_pool2d_grad(const kiln_pool_geometry* g, const float* dy, float* dx, int threads);

// ---- Softmax family: x viewed as [outer, axis, inner] ---------------------------------------
void kiln_k_softmax(const float* x, std::int64_t outer, std::int64_t axis, std::int64_t inner, float* y);
void kiln_k_log_softmax(const float* x, std::int64_t outer, std::int64_t axis, std::int64_t inner, float* y);
// loss[r] = logsumexp(logits[r, :]) - logits[r, label[r]]; a label outside [0, classes) gives NaN.
void kiln_k_softmax_xent_i32(const float* logits, const std::int32_t* labels, std::int64_t rows, std::int64_t classes,
                             float* loss);
void kiln_k_softmax_xent_i64(const float* logits, const std::int64_t* labels, std::int64_t rows, std::int64_t classes,
                             float* loss);
void kiln_k_sigmoid_xent(const float* x, const float* z, float* loss, std::int64_t n);

// ---- Reductions -------------------------------------------------------------------------------
// op: 0 sum, 1 mean, 2 max. x has `rank` (<= 8) dims; reduced[i] != 0 marks a reduced axis;
// the output holds the kept axes in order. Empty reductions as the reference: sum 0, mean NaN,
// max the lowest finite float (-FLT_MAX, not -inf); max propagates NaN.
void kiln_k_reduce(int op, const float* x, int rank, const std::int64_t* dims, const std::uint8_t* reduced, float* out);

// ---- Layout (dtype-agnostic: elements are elem_size-byte blobs) --------------------------------
// rows × row_elems elements from src (row stride src_stride elements) to dst (stride
// dst_stride): slice and concat.
void kiln_k_copy2d(std::size_t elem_size, const void* src, std::int64_t src_stride, void* dst, std::int64_t dst_stride,
                   std::int64_t rows, std::int64_t row_elems);
// out dim k = x dim perm[k]; rank <= 8.
void kiln_k_transpose(std::size_t elem_size, const void* x, int rank, const std::int64_t* dims,
                      const std::int64_t* perm, void* out);

// ---- Indexing -----------------------------------------------------------------------------------
// out[i, :] = table[idx[i], :] (rows of row_bytes); out-of-range index: zero row.
void kiln_k_gather_i32(const void* table, std::int64_t rows, std::size_t row_bytes, const std::int32_t* idx,
                       std::int64_t count, void* out);
void kiln_k_gather_i64(const void* table, std::int64_t rows, std::size_t row_bytes, const std::int64_t* idx,
                       std::int64_t count, void* out);
// out = zeros[rows, row]; out[idx[i], :] += updates[i, :]; out-of-range skipped.
void kiln_k_scatter_add_i32(const std::int32_t* idx, std::int64_t count, const float* updates, std::int64_t row,
                            std::int64_t rows, float* out);
void kiln_k_scatter_add_i64(const std::int64_t* idx, std::int64_t count, const float* updates, std::int64_t row,
                            std::int64_t rows, float* out);
// out[i, :] = one-hot of idx[i] (float 0/1; all zero when out of range).
void kiln_k_one_hot_i32(const std::int32_t* idx, std::int64_t count, std::int64_t depth, float* out);
void kiln_k_one_hot_i64(const std::int64_t* idx, std::int64_t count, std::int64_t depth, float* out);
// x as [outer, axis, inner]: index of the first maximum (NaN counts as maximum).
void kiln_k_argmax(const float* x, std::int64_t outer, std::int64_t axis, std::int64_t inner, std::int32_t* out);

// ---- Random (bit-identical to kernels/reference/random.h for uniform; normal to libm accuracy) ----
void kiln_k_random_uniform(std::uint64_t seed, std::uint64_t stream, std::uint64_t step, double low, double high,
                           float* out, std::int64_t n);
void kiln_k_random_normal(std::uint64_t seed, std::uint64_t stream, std::uint64_t step, double mean, double stddev,
                          float* out, std::int64_t n);

// ---- Optimizer steps (as kernels/reference/optimizers.h; t is Adam's 1-based step) -----------------
void kiln_k_sgd_update(double lr, double momentum, bool nesterov, double weight_decay, const float* param,
                       const float* grad, const float* velocity, float* new_param, std::int64_t n);
void kiln_k_adam_update(double lr, double beta1, double beta2, double eps, double weight_decay, bool decoupled,
                        std::uint64_t t, const float* param, const float* grad, const float* m, const float* v,
                        float* new_param, std::int64_t n);

}  // extern "C"
