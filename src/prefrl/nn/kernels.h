// The hand-written dense-layer kernels shared by rl/ (the PPO MLP policy, rl/fast_mlp.cc) and
// reward/ (the reward ensemble's MLP, reward/fast_mlp.cc).
//
// Activations are feature-major: a (features x columns) row-major block whose columns (batch
// rows, steps) are padded to a multiple of 8, Bp = round8(columns), so every kernel runs along
// the columns in 8-float vectors (GCC vector extensions; an AVX2+FMA clone is picked at load
// time where the CPU has it, see nn/simd.h). A layer y = act(A x + b) and its backward
//   dW = D x^T,  db = D 1,  D_below = (W^T D) * act'(x)
// are built from matmul*, matmul_nt and row_sums below. Each output element is computed in a
// fixed order whatever the blocking: acc = bias (or 0), then acc += A(i, k) x(k, n) for k
// ascending; a matmul_nt / row_sums element sums each of its 8 lanes over columns ascending,
// then the lanes pairwise (simd.h's hsum).
//
// Compiled into each user: the kernels have internal linkage (an anonymous namespace) and their
// definitions are in nn/kernels_impl.h, included at the end of this header, so that the
// compiler specialises them for each caller's constant arguments (strides, masks, output mode),
// as when each module had its own copy; measured: 18% faster reward minibatches than one
// out-of-line copy (bench_reward BM_FastRewardMinibatch, 865 vs 1020 us).
#pragma once
#include <cstdint>

namespace prefrl::nn {

// n rounded up to a multiple of 8.
inline int64_t round8(int64_t n) { return (n + 7) & ~int64_t{7}; }

namespace {

// y (O x Bp) = A (O x K) x (K x Bp) + bias (O, or null for none); A(i, k) = a[i * sm + k * sk],
// so A can be W (sm = K, sk = 1) or W^T (sm = 1, sk = O).
void matmul(const float* a, int64_t sm, int64_t sk, const float* bias, const float* x, float* y, int64_t O,
            int64_t K, int64_t Bp);

// y (O x Bp) = leaky_relu(A x + bias, slope) * mask (O, per row; null: none); slope 0 is relu
// written as c > 0 ? c : c * 0 (so a negative c gives -0, unlike relu_inplace).
void matmul_activate(const float* a, int64_t sm, int64_t sk, const float* bias, const float* x, float* y,
                     const float* mask, float slope, int64_t O, int64_t K, int64_t Bp);

// y (O x Bp) = D of the layer below from D (x here) and its output h (O x Bp, after mask):
// c = (A x)(i, n) * mask[i] (null: no mask), then y(i, n) = h(i, n) > 0 ? c : c * slope.
void matmul_backward(const float* a, int64_t sm, int64_t sk, const float* x, float* y, const float* mask,
                     const float* h, float slope, int64_t O, int64_t K, int64_t Bp);

// Whether matmul_nt / row_sums overwrite their output or add to it.
enum class Output { kStore, kAccumulate };

// out(o, k) (=|+=) sum_n d(o, n) x(k, n) for d (O x Bp), x (K x Bp): a weight gradient D H^T,
// stored at out[o * so + k * sk] (so = K, sk = 1: (O x K) row-major; so = 1, sk = O: its transpose).
void matmul_nt(const float* d, const float* x, float* out, int64_t so, int64_t sk, int64_t O, int64_t K,
               int64_t Bp, Output mode);

// out (O) (=|+=) row sums of d (O x Bp): a bias gradient.
void row_sums(const float* d, float* out, int64_t O, int64_t Bp, Output mode);

// p (count, a multiple of 8) = tanh(p): Eigen's rational approximation (error < 4e-7 absolute).
void tanh_inplace(float* p, int64_t count);

// p (count, a multiple of 8) = max(p, 0) (+0 for negatives).
void relu_inplace(float* p, int64_t count);

// d (count) *= tanh'(pre-activation) = 1 - h^2, given h (count) = tanh(pre-activation).
void tanh_backward(const float* h, float* d, int64_t count);

// d (count) = h > 0 ? d : 0 (relu'), given h (count) = relu(pre-activation).
void relu_backward(const float* h, float* d, int64_t count);

// xt (D x ld) columns [0, n) = x (n x D, row-major) transposed; other columns untouched.
void transpose_cols(const float* x, int64_t n, int64_t D, int64_t ld, float* xt);

// xt (D x Bp) = x (n x D) transposed, columns n..Bp-1 zero.
void transpose_in(const float* x, int64_t n, int64_t D, int64_t Bp, float* xt);

// y (n x D) = the first n columns of yt (D x Bp), transposed.
void transpose_out(const float* yt, int64_t n, int64_t D, int64_t Bp, float* y);

}  // namespace
}  // namespace prefrl::nn

#include "prefrl/nn/kernels_impl.h"
