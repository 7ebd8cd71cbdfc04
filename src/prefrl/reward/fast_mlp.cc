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
// Activations are (features x columns) with the columns padded to a multiple of 8 (the
// kernels of nn/kernels.h); padded columns get a zero D at the output, so they never reach a
// gradient.
#include "prefrl/reward/fast_mlp.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "prefrl/core/error.h"
#include "prefrl/nn/adam.h"
#include "prefrl/nn/kernels.h"

namespace prefrl::reward_detail {
namespace {

constexpr float kLeakySlope = 0.01f;                            // as EnsembleNet::activate
constexpr int64_t kTileColumns = 1024;     // target columns (steps) per tile
constexpr int64_t kTileInputFloats = 1 << 18;  // cap on the transposed input of one tile

using nn::round8;

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
      nn::matmul_activate(w, 1, s.out, params + s.b + m * s.out, in, y, mask, slope, s.out, s.in, Bp);
    } else {
      nn::matmul(w, 1, s.out, params + s.b + m * s.out, in, y, s.out, s.in, Bp);
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
    nn::matmul_nt(d, input, grad_.data() + s.w + m * s.in * s.out, 1, s.out, s.out, s.in, Bp,
                  nn::Output::kAccumulate);
    nn::row_sums(d, grad_.data() + s.b + m * s.out, s.out, Bp, nn::Output::kAccumulate);
    if (l == 0) break;
    float* d_prev = delta_[l - 1].data();
    const float* mask = masks && !masks->empty() ? (*masks)[l - 1] + m * s.in : nullptr;
    nn::matmul_backward(params + s.w + m * s.in * s.out, s.out, 1, d, d_prev, mask, act_[l - 1].data(), slope, s.in,
                    s.out, Bp);
  }
}

void FastEnsembleMlp::forward(const float* rows, int64_t N, float* out) {
  const int64_t tile = std::max<int64_t>(8, std::min(kTileColumns, kTileInputFloats / F_) & ~int64_t{7});
  for (int64_t start = 0; start < N; start += tile) {
    const int64_t n = std::min(tile, N - start), Bp = round8(n);
    reserve(Bp);
    nn::transpose_in(rows + start * F_, n, F_, Bp, x_.data());
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
      for (int64_t p = 0; p < np; ++p) {  // the tile's pairs, transposed side by side
        nn::transpose_cols(pair_rows[active[t0 + p]], cols, F_, Bp, x_.data() + p * cols);
      }
      for (int64_t j = 0; j < F_; ++j) std::fill(x_.data() + j * Bp + n, x_.data() + (j + 1) * Bp, 0.0f);
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
  net_.adam().step_l2(net_.params().data_ptr<float>(), grad_.data(), lr, l2, n_weights_);
}

}  // namespace prefrl::reward_detail
