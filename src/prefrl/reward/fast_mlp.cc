// The reward ensemble's MLP written out by hand (see fast_mlp.h for when and why).
//
// Member m's layer l computes  H_l = act(W_l^T H_{l-1} + b_l) * mask_l  with W_l stored
// (in x out) as in EnsembleNet (a row h of the LibTorch path is multiplied as h W), H_0 the
// input rows transposed to (F x steps), and the last layer linear with one output. Backward:
//   dW_l = H_{l-1} D_l^T,  db_l = D_l 1,  D_{l-1} = (W_l D_l) * mask_{l-1} * act'(H_{l-1}),
// where D_l = d loss / d (pre-activation of layer l). The loss of a pair depends on the
// outputs only through its two summed returns, so D of the output layer is one number per
// clip: d part_m / d R_left on every step of the left clip, its negative on the right clip.
//
// Activations are (features x columns) with the columns padded to a multiple of 8; padded
// columns get a zero D at the output, so they never reach a gradient.
#include "prefrl/reward/fast_mlp.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "prefrl/core/error.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define PREFRL_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define PREFRL_SIMD_CLONES
#endif
#define PREFRL_INLINE inline __attribute__((always_inline))
// The 32-byte vector helpers are always inlined, so the ABI note about passing them by value is moot.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace prefrl::reward_detail {
namespace {

constexpr double kBeta1 = 0.9, kBeta2 = 0.999, kAdamEps = 1e-8;  // as EnsembleNet::adam_step
constexpr float kLeakySlope = 0.01f;                            // as EnsembleNet::activate
constexpr int64_t kTileColumns = 1024;     // target columns (steps) per tile
constexpr int64_t kTileInputFloats = 1 << 18;  // cap on the transposed input of one tile

typedef float v8 __attribute__((vector_size(32)));  // 8 floats: one AVX register or two SSE ones

PREFRL_INLINE v8 load8(const float* p) { v8 v; std::memcpy(&v, p, sizeof v); return v; }
PREFRL_INLINE void store8(float* p, v8 v) { std::memcpy(p, &v, sizeof v); }
// A broadcast written as a scalar-vector operation, expanded inside each SIMD clone.
#define SPLAT(x) (v8{} + (x))
PREFRL_INLINE float hsum(v8 v) { return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7])); }

int64_t round8(int64_t n) { return (n + 7) & ~int64_t{7}; }

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

// y = A x + bias (no activation).
PREFRL_SIMD_CLONES void matmul(const float* a, int64_t sm, int64_t sk, const float* bias, const float* x, float* y,
                               int64_t O, int64_t K, int64_t Bp) {
  matmul_impl<Epilogue::kNone>(a, sm, sk, bias, x, y, nullptr, nullptr, 0.0f, O, K, Bp);
}
// y = act(A x + bias) * mask (per row; mask may be null); slope 0 is relu.
PREFRL_SIMD_CLONES void matmul_activate(const float* a, int64_t sm, int64_t sk, const float* bias, const float* x,
                                        float* y, const float* mask, float slope, int64_t O, int64_t K, int64_t Bp) {
  matmul_impl<Epilogue::kActivate>(a, sm, sk, bias, x, y, mask, nullptr, slope, O, K, Bp);
}
// y = (A x) * mask * act'(pre-activation), given h = act(pre-activation) * mask (mask may be null).
PREFRL_SIMD_CLONES void matmul_backward(const float* a, int64_t sm, int64_t sk, const float* x, float* y,
                                        const float* mask, const float* h, float slope, int64_t O, int64_t K,
                                        int64_t Bp) {
  matmul_impl<Epilogue::kBackward>(a, sm, sk, nullptr, x, y, mask, h, slope, O, K, Bp);
}

// Block [j, j+R) x [k, k+C) of out(o, k) += d (O x Bp) x (K x Bp)^T, out(o, k) = out[o * so + k * sk].
template <int R, int C>
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
    for (int c = 0; c < C; ++c) out[(j + r) * so + (k + c) * sk] += hsum(acc[r][c]);
}

// out(o, k) += sum_n d(o, n) x(k, n): a weight gradient, stored at out[o * so + k * sk].
PREFRL_SIMD_CLONES void matmul_nt_acc(const float* d, const float* x, float* out, int64_t so, int64_t sk, int64_t O,
                                      int64_t K, int64_t Bp) {
  int64_t j = 0;
  for (; j + 2 <= O; j += 2) {
    int64_t k = 0;
    for (; k + 4 <= K; k += 4) matmul_nt_block<2, 4>(d, x, out, so, sk, j, k, Bp);
    for (; k < K; ++k) matmul_nt_block<2, 1>(d, x, out, so, sk, j, k, Bp);
  }
  for (; j < O; ++j) {
    int64_t k = 0;
    for (; k + 4 <= K; k += 4) matmul_nt_block<1, 4>(d, x, out, so, sk, j, k, Bp);
    for (; k < K; ++k) matmul_nt_block<1, 1>(d, x, out, so, sk, j, k, Bp);
  }
}

// out (O) += row sums of d (O x Bp): a bias gradient.
PREFRL_SIMD_CLONES void row_sums_acc(const float* d, float* out, int64_t O, int64_t Bp) {
  for (int64_t j = 0; j < O; ++j) {
    v8 s = SPLAT(0.0f);
    for (int64_t n = 0; n < Bp; n += 8) s += load8(d + j * Bp + n);
    out[j] += hsum(s);
  }
}

// Logistic sigmoid, stable for any x.
double sigmoid(double x) {
  if (x >= 0) return 1.0 / (1.0 + std::exp(-x));
  const double e = std::exp(x);
  return e / (1.0 + e);
}
// log(1 + exp(x)), stable for any x.
double softplus(double x) { return std::max(x, 0.0) + std::log1p(std::exp(-std::fabs(x))); }

// log of the mixed probability that the clip with advantage d wins (preference_loss.cc's
// log_mixed_prob) => value, and its derivative in d.
void log_mixed_prob(double d, double eps, double* value, double* deriv) {
  const double log_sig = -softplus(-d);  // log sigmoid(d)
  const double dlog_sig = sigmoid(-d);   // d log sigmoid(d) / dd
  if (eps <= 0.0) {
    *value = log_sig;
    *deriv = dlog_sig;
    return;
  }
  const double log_keep = std::log1p(-eps), log_random = std::log(eps / 2);
  const double u = log_sig + (log_keep - log_random);
  *value = softplus(u) + log_random;
  *deriv = sigmoid(u) * dlog_sig;
}

}  // namespace

bool FastEnsembleMlp::supports(const EnsembleNet& net) {
  const NetShape& s = net.shape();
  if (!s.image.empty() || s.select_width != 0) return false;
  if (s.activation != "relu" && s.activation != "leaky_relu") return false;
  const std::vector<EnsembleNet::HeadLayer> layers = net.head_layers();
  if (layers.empty() || layers.front().in != s.row_width || layers.back().out != 1) return false;
  int64_t head = 0;
  for (const auto& l : layers) head += s.members * (l.in * l.out + l.out);
  return head == net.num_params();  // nothing else (e.g. conv or keypoint parameters)
}

FastEnsembleMlp::FastEnsembleMlp(EnsembleNet& net) : net_(net) {
  if (!supports(net)) throw RuntimeError("the fast reward MLP supports plain relu/leaky_relu MLP heads only");
  layers_ = net.head_layers();
  M_ = net.shape().members;
  F_ = net.shape().row_width;
  P_ = net.num_params();
  n_weights_ = net.num_weights();
  leaky_ = net.shape().activation == "leaky_relu";
  act_.resize(layers_.size());
  delta_.resize(layers_.size());
  grad_.assign(static_cast<size_t>(P_), 0.0f);
}

void FastEnsembleMlp::reserve(int64_t Bp) {
  if (Bp <= cap_) return;
  cap_ = Bp;
  x_.assign(static_cast<size_t>(F_ * cap_), 0.0f);
  for (size_t l = 0; l < layers_.size(); ++l) {
    act_[l].assign(static_cast<size_t>(layers_[l].out * cap_), 0.0f);
    delta_[l].assign(static_cast<size_t>(layers_[l].out * cap_), 0.0f);
  }
}

void FastEnsembleMlp::load_input(const float* rows, int64_t n, int64_t Bp) {
  for (int64_t j = 0; j < F_; ++j) {
    float* row = x_.data() + j * Bp;
    for (int64_t b = 0; b < n; ++b) row[b] = rows[b * F_ + j];
    std::fill(row + n, row + Bp, 0.0f);
  }
}

void FastEnsembleMlp::forward_member(int64_t m, int64_t Bp, const std::vector<const float*>* masks) {
  const float* params = net_.params().data_ptr<float>();
  const float slope = leaky_ ? kLeakySlope : 0.0f;
  const float* in = x_.data();
  for (size_t l = 0; l < layers_.size(); ++l) {
    const EnsembleNet::HeadLayer& s = layers_[l];
    float* y = act_[l].data();
    const float* w = params + s.w + m * s.in * s.out;
    if (l + 1 < layers_.size()) {
      const float* mask = masks && !masks->empty() ? (*masks)[l] + m * s.out : nullptr;
      matmul_activate(w, 1, s.out, params + s.b + m * s.out, in, y, mask, slope, s.out, s.in, Bp);
    } else {
      matmul(w, 1, s.out, params + s.b + m * s.out, in, y, s.out, s.in, Bp);
    }
    in = y;
  }
}

void FastEnsembleMlp::backward_member(int64_t m, int64_t Bp, const std::vector<const float*>* masks) {
  const float* params = net_.params().data_ptr<float>();
  const float slope = leaky_ ? kLeakySlope : 0.0f;
  for (size_t l = layers_.size(); l-- > 0;) {
    const EnsembleNet::HeadLayer& s = layers_[l];
    const float* input = l == 0 ? x_.data() : act_[l - 1].data();
    const float* d = delta_[l].data();
    matmul_nt_acc(d, input, grad_.data() + s.w + m * s.in * s.out, 1, s.out, s.out, s.in, Bp);
    row_sums_acc(d, grad_.data() + s.b + m * s.out, s.out, Bp);
    if (l == 0) break;
    float* d_prev = delta_[l - 1].data();
    const float* mask = masks && !masks->empty() ? (*masks)[l - 1] + m * s.in : nullptr;
    matmul_backward(params + s.w + m * s.in * s.out, s.out, 1, d, d_prev, mask, act_[l - 1].data(), slope, s.in,
                    s.out, Bp);
  }
}

void FastEnsembleMlp::forward(const float* rows, int64_t N, float* out) {
  const int64_t tile = std::max<int64_t>(8, std::min(kTileColumns, kTileInputFloats / F_) & ~int64_t{7});
  for (int64_t start = 0; start < N; start += tile) {
    const int64_t n = std::min(tile, N - start), Bp = round8(n);
    reserve(Bp);
    load_input(rows + start * F_, n, Bp);
    for (int64_t m = 0; m < M_; ++m) {
      forward_member(m, Bp, nullptr);
      std::memcpy(out + m * N + start, act_.back().data(), sizeof(float) * n);
    }
  }
}

void FastEnsembleMlp::loss_and_grad(const std::vector<const float*>& pair_rows, int64_t L, const float* targets,
                                    const float* weights, const std::vector<const float*>& masks,
                                    double random_response, double* loss) {
  std::fill(grad_.begin(), grad_.end(), 0.0f);
  const int64_t B = static_cast<int64_t>(pair_rows.size());
  const int64_t cols = 2 * L;  // columns of one pair
  const int64_t pairs_per_tile =
      std::max<int64_t>(1, std::min(kTileColumns, kTileInputFloats / F_) / cols);
  std::vector<int64_t> active;  // pairs with a nonzero bootstrap count for the member
  for (int64_t m = 0; m < M_; ++m) {
    const float* w = weights + m * B;
    double w_sum = 0.0;
    active.clear();
    for (int64_t k = 0; k < B; ++k) {
      w_sum += w[k];
      if (w[k] != 0.0f) active.push_back(k);
    }
    w_sum = std::max(w_sum, 1.0);
    double part = 0.0;
    for (size_t t0 = 0; t0 < active.size(); t0 += static_cast<size_t>(pairs_per_tile)) {
      const int64_t np = std::min<int64_t>(pairs_per_tile, static_cast<int64_t>(active.size() - t0));
      const int64_t n = np * cols, Bp = round8(n);
      reserve(Bp);
      for (int64_t j = 0; j < F_; ++j) {  // the tile's pairs, transposed side by side
        float* row = x_.data() + j * Bp;
        for (int64_t p = 0; p < np; ++p) {
          const float* src = pair_rows[active[t0 + p]];
          float* dst = row + p * cols;
          for (int64_t b = 0; b < cols; ++b) dst[b] = src[b * F_ + j];
        }
        std::fill(row + n, row + Bp, 0.0f);
      }
      forward_member(m, Bp, &masks);
      const float* r = act_.back().data();  // (1 x Bp) per-step outputs
      float* d = delta_.back().data();
      std::fill(d + n, d + Bp, 0.0f);
      for (int64_t p = 0; p < np; ++p) {
        const int64_t k = active[t0 + p];
        const float* rp = r + p * cols;
        double left = 0.0, right = 0.0;
        for (int64_t s = 0; s < L; ++s) left += rp[s];
        for (int64_t s = L; s < cols; ++s) right += rp[s];
        const double diff = left - right, t = targets[k];
        double log_left, dlog_left, log_right, dlog_right;
        log_mixed_prob(diff, random_response, &log_left, &dlog_left);
        log_mixed_prob(-diff, random_response, &log_right, &dlog_right);
        const double nll = -(t * log_left + (1.0 - t) * log_right);
        const double dnll = -(t * dlog_left - (1.0 - t) * dlog_right);  // d nll / d diff
        part += w[k] * nll / w_sum;
        const float g = static_cast<float>(w[k] * dnll / w_sum);
        std::fill(d + p * cols, d + p * cols + L, g);
        std::fill(d + p * cols + L, d + (p + 1) * cols, -g);
      }
      backward_member(m, Bp, &masks);
    }
    loss[m] = part;
  }
}

void FastEnsembleMlp::adam_step(double lr, double l2) {
  float* p = net_.params().data_ptr<float>();
  float* mm = net_.adam_m().data_ptr<float>();
  float* vv = net_.adam_v().data_ptr<float>();
  float* g = grad_.data();
  if (l2 > 0) {
    const float l2f = static_cast<float>(l2);
    for (int64_t i = 0; i < n_weights_; ++i) g[i] += l2f * p[i];
  }
  const int64_t step = ++net_.adam_steps();
  const float b1 = static_cast<float>(kBeta1), one_minus_b1 = static_cast<float>(1.0 - kBeta1);
  const float b2 = static_cast<float>(kBeta2), one_minus_b2 = static_cast<float>(1.0 - kBeta2);
  const double bc1 = 1.0 - std::pow(kBeta1, static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(kBeta2, static_cast<double>(step));
  const float sqrt_bc2 = static_cast<float>(std::sqrt(bc2)), eps = static_cast<float>(kAdamEps);
  const float step_size = static_cast<float>(-lr / bc1);
  for (int64_t i = 0; i < P_; ++i) {
    mm[i] = mm[i] * b1 + one_minus_b1 * g[i];
    vv[i] = vv[i] * b2 + one_minus_b2 * g[i] * g[i];
    const float denom = std::sqrt(vv[i]) / sqrt_bc2 + eps;
    p[i] = p[i] + step_size * (mm[i] / denom);
  }
}

}  // namespace prefrl::reward_detail
