// Hand-written forward and backward passes of the PPO loss for MLP actor-critics.
//
// LibTorch spends 3-10 µs per op (more under autograd), which dominates on the 64 x 32
// matrices of a PPO minibatch. Here the whole minibatch step is a handful of plain loops:
// activations are stored feature-major, (features x batch) with the batch padded to a
// multiple of 8, so every kernel runs along the batch in 8-float vectors (nn/kernels.h). Padded
// batch columns carry zero gradients, so they never reach the parameter gradients.
//
// Layer l computes  H_l = act(W_l H_{l-1} + b_l)  (H_0 = the observations), and backward
//   dW_l = D_l H_{l-1}^T,  db_l = D_l 1,  D_{l-1} = (W_l^T D_l) * act'(H_{l-1}),
// where D_l = d loss / d (pre-activation of layer l). The loss part (log-probs, entropy,
// clipped surrogate, value loss) is per-sample scalar code mirroring policy.cc's autograd
// version term by term, including torch's conventions at ties (max and clamp).
#include <algorithm>
#include <cmath>

#include "prefrl/core/error.h"
#include "prefrl/nn/aligned.h"
#include "prefrl/nn/kernels.h"
#include "prefrl/rl/policy.h"

namespace prefrl {
namespace {

using nn::matmul;
using nn::relu_backward;
using nn::relu_inplace;
using nn::tanh_backward;
using nn::tanh_inplace;
using nn::transpose_in;
using nn::transpose_out;

int round8(int n) { return static_cast<int>(nn::round8(n)); }

class FastMlpPolicy final : public Policy {
 public:
  FastMlpPolicy(const PolicyLayout& layout, const PPOConfig& cfg, float* params, int max_batch)
      : L_(layout), cfg_(cfg), params_(params), cap_(round8(std::max(max_batch, 8))) {
    if (L_.pixels) throw RuntimeError("the fast MLP path does not handle pixel observations");
    x_.assign(static_cast<size_t>(L_.obs_dim) * cap_, 0.0f);
    for (auto [net, layers] : {std::pair{&actor_, &L_.actor}, std::pair{&critic_, &L_.critic}}) {
      net->layers = *layers;
      for (const auto& s : *layers) {
        net->out.emplace_back(static_cast<size_t>(s.out) * cap_, 0.0f);
        net->delta.emplace_back(static_cast<size_t>(s.out) * cap_, 0.0f);
      }
    }
    logp_row_.resize(L_.head_dim);
    prob_row_.resize(L_.head_dim);
    dlog_std_.resize(L_.head_dim);
  }

  void forward(const float* obs, int n, float* head, float* values) override {
    for (int start = 0; start < n; start += cap_) {
      const int B = std::min(cap_, n - start), Bp = round8(B);
      transpose_in(obs + static_cast<int64_t>(start) * L_.obs_dim, B, L_.obs_dim, Bp, x_.data());
      forward_net(actor_, Bp);
      forward_net(critic_, Bp);
      transpose_out(actor_.out.back().data(), B, L_.head_dim, Bp, head + static_cast<int64_t>(start) * L_.head_dim);
      std::copy_n(critic_.out.back().data(), B, values + start);
    }
  }

  LossTerms loss_and_grad(const Minibatch& mb, float* grad) override {
    const int B = mb.size, Bp = round8(B), H = L_.head_dim;
    if (B < 1 || B > cap_) throw RuntimeError("fast MLP: minibatch of " + std::to_string(B) + " exceeds its capacity");
    transpose_in(mb.obs, B, L_.obs_dim, Bp, x_.data());
    forward_net(actor_, Bp);
    forward_net(critic_, Bp);
    const float* head = actor_.out.back().data();     // (H x Bp) logits or means
    const float* newvalue = critic_.out.back().data();  // (1 x Bp)
    float* dhead = actor_.delta.back().data();          // (H x Bp) d loss / d head
    float* dvalue = critic_.delta.back().data();        // (1 x Bp) d loss / d value
    std::fill(dhead, dhead + static_cast<int64_t>(H) * Bp, 0.0f);
    std::fill(dvalue, dvalue + Bp, 0.0f);

    // Advantage normalisation statistics (unbiased std, as torch's .std()).
    float adv_mean = 0.0f, adv_scale = 1.0f;
    if (cfg_.norm_adv && B > 1) {
      double s = 0, ss = 0;
      for (int i = 0; i < B; ++i) s += mb.advantages[i];
      const double mean = s / B;
      for (int i = 0; i < B; ++i) ss += (mb.advantages[i] - mean) * (mb.advantages[i] - mean);
      adv_mean = static_cast<float>(mean);
      adv_scale = 1.0f / (static_cast<float>(std::sqrt(ss / (B - 1))) + 1e-8f);
    }

    // Gaussian: per-dimension std terms, shared by every sample.
    const float* log_std = L_.discrete ? nullptr : params_ + L_.log_std;
    float entropy_gauss = 0.0f;
    if (!L_.discrete) {
      for (int a = 0; a < H; ++a) entropy_gauss += 0.5f + static_cast<float>(kLogSqrt2Pi) + log_std[a];
      std::fill(dlog_std_.begin(), dlog_std_.end(), 0.0);
    }

    const float clip = static_cast<float>(cfg_.clip_coef);
    const float lo = static_cast<float>(1.0 - cfg_.clip_coef), hi = static_cast<float>(1.0 + cfg_.clip_coef);
    const float inv_b = 1.0f / B;
    const float ent_coef = static_cast<float>(cfg_.ent_coef), vf_coef = static_cast<float>(cfg_.vf_coef);
    double sum_pg = 0, sum_v = 0, sum_ent = 0, sum_kl = 0, sum_old_kl = 0, sum_clipped = 0;
    for (int i = 0; i < B; ++i) {
      // New log-probability and entropy of the stored action.
      float newlogprob, entropy;
      if (L_.discrete) {
        for (int k = 0; k < H; ++k) prob_row_[k] = head[static_cast<int64_t>(k) * Bp + i];
        log_softmax_row(prob_row_.data(), H, logp_row_.data());
        entropy = 0.0f;
        for (int k = 0; k < H; ++k) {
          prob_row_[k] = std::exp(logp_row_[k]);
          entropy -= prob_row_[k] * logp_row_[k];
        }
        newlogprob = logp_row_[static_cast<int>(mb.actions[i])];
      } else {
        newlogprob = 0.0f;
        for (int a = 0; a < H; ++a) {
          const float sd = std::exp(log_std[a]), var = sd * sd;
          const float d = mb.actions[static_cast<int64_t>(i) * H + a] - head[static_cast<int64_t>(a) * Bp + i];
          newlogprob += -(d * d) / (2.0f * var) - log_std[a] - static_cast<float>(kLogSqrt2Pi);
        }
        entropy = entropy_gauss;
      }
      const float logratio = newlogprob - mb.logprobs[i];
      const float ratio = std::exp(logratio);
      sum_old_kl += -logratio;
      sum_kl += (ratio - 1.0f) - logratio;
      sum_clipped += std::fabs(ratio - 1.0f) > clip ? 1.0 : 0.0;
      sum_ent += entropy;

      // Clipped surrogate: max(pg1, pg2), whose gradient torch splits evenly at ties.
      const float adv = (mb.advantages[i] - adv_mean) * adv_scale;
      const float pg1 = -adv * ratio, pg2 = -adv * std::clamp(ratio, lo, hi);
      sum_pg += std::max(pg1, pg2);
      const float w1 = pg1 > pg2 ? 1.0f : (pg1 == pg2 ? 0.5f : 0.0f);
      const float inside = (ratio >= lo && ratio <= hi) ? 1.0f : 0.0f;
      const float dratio = (w1 * -adv + (1.0f - w1) * -adv * inside) * inv_b;
      const float dlogp = dratio * ratio;

      // Back to the actor head.
      if (L_.discrete) {
        const int a = static_cast<int>(mb.actions[i]);
        for (int k = 0; k < H; ++k) {
          const float p = prob_row_[k];
          const float d_logp = dlogp * ((k == a ? 1.0f : 0.0f) - p);
          const float d_ent = ent_coef * inv_b * p * (logp_row_[k] + entropy);  // of -ent_coef * mean(H)
          dhead[static_cast<int64_t>(k) * Bp + i] = d_logp + d_ent;
        }
      } else {
        for (int a = 0; a < H; ++a) {
          const float sd = std::exp(log_std[a]), var = sd * sd;
          const float d = mb.actions[static_cast<int64_t>(i) * H + a] - head[static_cast<int64_t>(a) * Bp + i];
          dhead[static_cast<int64_t>(a) * Bp + i] = dlogp * d / var;
          dlog_std_[a] += dlogp * (d * d / var - 1.0f);
        }
      }

      // Value loss 0.5 * mean((v - R)^2), or its clipped variant.
      const float v = newvalue[i], ret = mb.returns[i];
      if (cfg_.clip_vloss) {
        const float unclipped = (v - ret) * (v - ret);
        const float dv = v - mb.values[i];
        const float v_clipped = mb.values[i] + std::clamp(dv, -clip, clip);
        const float clipped = (v_clipped - ret) * (v_clipped - ret);
        sum_v += std::max(unclipped, clipped);
        const float w = unclipped > clipped ? 1.0f : (unclipped == clipped ? 0.5f : 0.0f);
        const float in_range = (dv >= -clip && dv <= clip) ? 1.0f : 0.0f;
        dvalue[i] = vf_coef * 0.5f * inv_b * (w * 2.0f * (v - ret) + (1.0f - w) * 2.0f * (v_clipped - ret) * in_range);
      } else {
        sum_v += (v - ret) * (v - ret);
        dvalue[i] = vf_coef * 0.5f * inv_b * 2.0f * (v - ret);
      }
    }
    if (!L_.discrete) {
      for (int a = 0; a < H; ++a) grad[L_.log_std + a] = static_cast<float>(dlog_std_[a]) - ent_coef;
    }
    backward_net(actor_, Bp, grad);
    backward_net(critic_, Bp, grad);

    LossTerms out;
    out.policy_loss = sum_pg / B;
    out.value_loss = 0.5 * sum_v / B;
    out.entropy = sum_ent / B;
    out.approx_kl = sum_kl / B;
    out.old_approx_kl = sum_old_kl / B;
    out.clipfrac = sum_clipped / B;
    out.loss = out.policy_loss - cfg_.ent_coef * out.entropy + cfg_.vf_coef * out.value_loss;
    return out;
  }

 private:
  struct Net {
    std::vector<LinearSlot> layers;
    std::vector<nn::AlignedFloats> out;    // per layer: (out_l x cap) outputs, feature-major
    std::vector<nn::AlignedFloats> delta;  // per layer: (out_l x cap) d loss / d pre-activation
  };

  // Runs a network on x_ (obs_dim x Bp).
  void forward_net(Net& net, int Bp) {
    const float* x = x_.data();
    for (size_t l = 0; l < net.layers.size(); ++l) {
      const LinearSlot& s = net.layers[l];
      float* y = net.out[l].data();
      matmul(params_ + s.w, s.in, 1, params_ + s.b, x, y, s.out, s.in, Bp);
      if (l + 1 < net.layers.size()) {
        if (L_.relu) relu_inplace(y, static_cast<int64_t>(s.out) * Bp);
        else tanh_inplace(y, static_cast<int64_t>(s.out) * Bp);
      }
      x = y;
    }
  }

  // Backpropagates net.delta.back() (set by the loss) through the network into grad.
  void backward_net(Net& net, int Bp, float* grad) {
    for (size_t l = net.layers.size(); l-- > 0;) {
      const LinearSlot& s = net.layers[l];
      const float* input = l == 0 ? x_.data() : net.out[l - 1].data();
      const float* d = net.delta[l].data();
      nn::matmul_nt(d, input, grad + s.w, s.in, 1, s.out, s.in, Bp, nn::Output::kStore);
      nn::row_sums(d, grad + s.b, s.out, Bp, nn::Output::kStore);
      if (l == 0) break;
      float* d_prev = net.delta[l - 1].data();
      matmul(params_ + s.w, 1, s.in, nullptr, d, d_prev, s.in, s.out, Bp);
      const int64_t count = static_cast<int64_t>(s.in) * Bp;
      if (L_.relu) relu_backward(net.out[l - 1].data(), d_prev, count);
      else tanh_backward(net.out[l - 1].data(), d_prev, count);
    }
  }

  PolicyLayout L_;
  PPOConfig cfg_;
  float* params_;                // (P) owned by the agent
  int cap_;                      // batch capacity (a multiple of 8)
  Net actor_, critic_;
  nn::AlignedFloats x_;         // (obs_dim x cap) input, feature-major
  std::vector<float> logp_row_;  // (H) scratch: log-softmax of one sample
  std::vector<float> prob_row_;  // (H) scratch: logits, then probabilities
  std::vector<double> dlog_std_; // (H) d loss / d log-std, accumulated over the batch
};

}  // namespace

std::unique_ptr<Policy> make_fast_mlp_policy(const PolicyLayout& layout, const PPOConfig& cfg, float* params,
                                             int max_batch) {
  return std::make_unique<FastMlpPolicy>(layout, cfg, params, max_batch);
}

}  // namespace prefrl
