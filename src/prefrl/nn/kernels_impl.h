// The feature-major kernels' definitions (see kernels.h, which includes this file last). The
// public functions are built twice (PREFRL_SIMD_CLONES); the templates below them are always
// inlined into each clone. Internal linkage: each user compiles its own, specialised copy.
#pragma once
#include <algorithm>

#include "prefrl/nn/simd.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"

namespace prefrl::nn {
namespace {

using simd::hsum;
using simd::load8;
using simd::store8;
using simd::v8;
#define SPLAT PREFRL_SPLAT

namespace detail {

// What a matmul does with each output element c (row r) before storing it.
enum class Epilogue {
  kNone,      // c
  kActivate,  // act(c) * mask[r]: a hidden layer's forward (slope 0: relu)
  kBackward,  // c * mask[r] * act'(h): D of the layer below from (W D), given its output h
};

// Rows [r0, r0+R) x columns [n, n + 8C) of y (O x Bp) = A (O x K) x (K x Bp) + bias, then the
// epilogue; A(i, k) = a[i * sm + k * sk].
template <int R, int C, Epilogue E>
PREFRL_INLINE void matmul_tile(const float* a, int64_t sm, int64_t sk, const float* bias, const float* x, float* y,
                               const float* mask, const float* h, float slope, int64_t r0, int64_t n, int64_t K,
                               int64_t Bp) {
  v8 c[R][C];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < C; ++j) c[r][j] = SPLAT(bias ? bias[r0 + r] : 0.0f);
  for (int64_t k = 0; k < K; ++k) {
    v8 xv[C];
    for (int j = 0; j < C; ++j) xv[j] = load8(x + k * Bp + n + 8 * j);
    for (int r = 0; r < R; ++r) {
      const float w = a[(r0 + r) * sm + k * sk];
      for (int j = 0; j < C; ++j) c[r][j] += w * xv[j];
    }
  }
  const v8 zero = SPLAT(0.0f);
  for (int r = 0; r < R; ++r) {
    for (int j = 0; j < C; ++j) {
      v8 v = c[r][j];
      float* dst = y + (r0 + r) * Bp + n + 8 * j;
      if constexpr (E == Epilogue::kActivate) {
        v = v > zero ? v : v * slope;
        if (mask) v = v * mask[r0 + r];
      } else if constexpr (E == Epilogue::kBackward) {
        if (mask) v = v * mask[r0 + r];
        const v8 hv = load8(h + (r0 + r) * Bp + n + 8 * j);
        v = hv > zero ? v : v * slope;
      }
      store8(dst, v);
    }
  }
}

template <int R, Epilogue E>
PREFRL_INLINE void matmul_rows(const float* a, int64_t sm, int64_t sk, const float* bias, const float* x, float* y,
                               const float* mask, const float* h, float slope, int64_t r0, int64_t K, int64_t Bp) {
  int64_t n = 0;
  for (; n + 24 <= Bp; n += 24) matmul_tile<R, 3, E>(a, sm, sk, bias, x, y, mask, h, slope, r0, n, K, Bp);
  for (; n < Bp; n += 8) matmul_tile<R, 1, E>(a, sm, sk, bias, x, y, mask, h, slope, r0, n, K, Bp);
}

// y (O x Bp) = epilogue(A (O x K) x (K x Bp) + bias (O, or null)); A(i, k) = a[i * sm + k * sk].
template <Epilogue E>
PREFRL_INLINE void matmul_impl(const float* a, int64_t sm, int64_t sk, const float* bias, const float* x, float* y,
                               const float* mask, const float* h, float slope, int64_t O, int64_t K, int64_t Bp) {
  int64_t r = 0;
  for (; r + 4 <= O; r += 4) matmul_rows<4, E>(a, sm, sk, bias, x, y, mask, h, slope, r, K, Bp);
  for (; r < O; ++r) matmul_rows<1, E>(a, sm, sk, bias, x, y, mask, h, slope, r, K, Bp);
}

// Block [j, j+R) x [k, k+C) of out(o, k) (=|+=) d (O x Bp) x (K x Bp)^T, out(o, k) = out[o * so + k * sk].
template <int R, int C, bool kAcc>
PREFRL_INLINE void matmul_nt_block(const float* d, const float* x, float* out, int64_t so, int64_t sk, int64_t j,
                                   int64_t k, int64_t Bp) {
  v8 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = SPLAT(0.0f);
  for (int64_t n = 0; n < Bp; n += 8) {
    v8 dv[R], xv[C];
    for (int r = 0; r < R; ++r) dv[r] = load8(d + (j + r) * Bp + n);
    for (int c = 0; c < C; ++c) xv[c] = load8(x + (k + c) * Bp + n);
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c) acc[r][c] += dv[r] * xv[c];
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) {
      float& dst = out[(j + r) * so + (k + c) * sk];
      if constexpr (kAcc) dst += hsum(acc[r][c]);
      else dst = hsum(acc[r][c]);
    }
}

template <bool kAcc>
PREFRL_INLINE void matmul_nt_impl(const float* d, const float* x, float* out, int64_t so, int64_t sk, int64_t O,
                                  int64_t K, int64_t Bp) {
  int64_t j = 0;
  for (; j + 2 <= O; j += 2) {
    int64_t k = 0;
    for (; k + 4 <= K; k += 4) matmul_nt_block<2, 4, kAcc>(d, x, out, so, sk, j, k, Bp);
    for (; k < K; ++k) matmul_nt_block<2, 1, kAcc>(d, x, out, so, sk, j, k, Bp);
  }
  for (; j < O; ++j) {
    int64_t k = 0;
    for (; k + 4 <= K; k += 4) matmul_nt_block<1, 4, kAcc>(d, x, out, so, sk, j, k, Bp);
    for (; k < K; ++k) matmul_nt_block<1, 1, kAcc>(d, x, out, so, sk, j, k, Bp);
  }
}

template <bool kAcc>
PREFRL_INLINE void row_sums_impl(const float* d, float* out, int64_t O, int64_t Bp) {
  for (int64_t j = 0; j < O; ++j) {
    v8 s = SPLAT(0.0f);
    for (int64_t n = 0; n < Bp; n += 8) s += load8(d + j * Bp + n);
    if constexpr (kAcc) out[j] += hsum(s);
    else out[j] = hsum(s);
  }
}

}  // namespace detail

using detail::Epilogue;
using detail::matmul_impl;
using detail::matmul_nt_impl;
using detail::row_sums_impl;

PREFRL_SIMD_CLONES void matmul(const float* a, int64_t sm, int64_t sk, const float* bias, const float* x, float* y,
                               int64_t O, int64_t K, int64_t Bp) {
  matmul_impl<Epilogue::kNone>(a, sm, sk, bias, x, y, nullptr, nullptr, 0.0f, O, K, Bp);
}

PREFRL_SIMD_CLONES void matmul_activate(const float* a, int64_t sm, int64_t sk, const float* bias, const float* x,
                                        float* y, const float* mask, float slope, int64_t O, int64_t K, int64_t Bp) {
  matmul_impl<Epilogue::kActivate>(a, sm, sk, bias, x, y, mask, nullptr, slope, O, K, Bp);
}

PREFRL_SIMD_CLONES void matmul_backward(const float* a, int64_t sm, int64_t sk, const float* x, float* y,
                                        const float* mask, const float* h, float slope, int64_t O, int64_t K,
                                        int64_t Bp) {
  matmul_impl<Epilogue::kBackward>(a, sm, sk, nullptr, x, y, mask, h, slope, O, K, Bp);
}

PREFRL_SIMD_CLONES void matmul_nt(const float* d, const float* x, float* out, int64_t so, int64_t sk, int64_t O,
                                  int64_t K, int64_t Bp, Output mode) {
  if (mode == Output::kAccumulate) matmul_nt_impl<true>(d, x, out, so, sk, O, K, Bp);
  else matmul_nt_impl<false>(d, x, out, so, sk, O, K, Bp);
}

PREFRL_SIMD_CLONES void row_sums(const float* d, float* out, int64_t O, int64_t Bp, Output mode) {
  if (mode == Output::kAccumulate) row_sums_impl<true>(d, out, O, Bp);
  else row_sums_impl<false>(d, out, O, Bp);
}

PREFRL_SIMD_CLONES void tanh_inplace(float* p, int64_t count) {
  const v8 lim = SPLAT(7.99881172180175781f), neg_lim = -lim;
  for (int64_t i = 0; i < count; i += 8) {
    v8 x = load8(p + i);
    x = x > lim ? lim : x;
    x = x < neg_lim ? neg_lim : x;
    const v8 x2 = x * x;
    v8 num = SPLAT(-2.76076847742355e-16f);
    num = num * x2 + 2.00018790482477e-13f;
    num = num * x2 + -8.60467152213735e-11f;
    num = num * x2 + 5.12229709037114e-08f;
    num = num * x2 + 1.48572235717979e-05f;
    num = num * x2 + 6.37261928875436e-04f;
    num = num * x2 + 4.89352455891786e-03f;
    num = num * x;
    v8 den = SPLAT(1.19825839466702e-06f);
    den = den * x2 + 1.18534705686654e-04f;
    den = den * x2 + 2.26843463243900e-03f;
    den = den * x2 + 4.89352518554385e-03f;
    store8(p + i, num / den);
  }
}

PREFRL_SIMD_CLONES void relu_inplace(float* p, int64_t count) {
  const v8 zero = SPLAT(0.0f);
  for (int64_t i = 0; i < count; i += 8) {
    const v8 x = load8(p + i);
    store8(p + i, x > zero ? x : zero);
  }
}

PREFRL_SIMD_CLONES void tanh_backward(const float* h, float* d, int64_t count) {
  const v8 one = SPLAT(1.0f);
  for (int64_t i = 0; i < count; i += 8) {
    const v8 hv = load8(h + i);
    store8(d + i, load8(d + i) * (one - hv * hv));
  }
}

PREFRL_SIMD_CLONES void relu_backward(const float* h, float* d, int64_t count) {
  const v8 zero = SPLAT(0.0f);
  for (int64_t i = 0; i < count; i += 8) {
    const v8 hv = load8(h + i), dv = load8(d + i);
    store8(d + i, hv > zero ? dv : zero);
  }
}

void transpose_cols(const float* x, int64_t n, int64_t D, int64_t ld, float* xt) {
  for (int64_t j = 0; j < D; ++j) {
    float* row = xt + j * ld;
    for (int64_t b = 0; b < n; ++b) row[b] = x[b * D + j];
  }
}

void transpose_in(const float* x, int64_t n, int64_t D, int64_t Bp, float* xt) {
  transpose_cols(x, n, D, Bp, xt);
  for (int64_t j = 0; j < D; ++j) std::fill(xt + j * Bp + n, xt + (j + 1) * Bp, 0.0f);
}

void transpose_out(const float* yt, int64_t n, int64_t D, int64_t Bp, float* y) {
  for (int64_t b = 0; b < n; ++b)
    for (int64_t j = 0; j < D; ++j) y[b * D + j] = yt[j * Bp + b];
}

}  // namespace
}  // namespace prefrl::nn

#undef SPLAT
#pragma GCC diagnostic pop
