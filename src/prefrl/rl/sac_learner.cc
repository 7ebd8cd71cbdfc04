// SAC's gradient steps written out (sac_learner.h). The actor's loss differentiated by hand, for
// one row b of B and action dimension j (u = mu + sigma eps, a = tanh(u), the env action
// a * scale + bias, t = scale (1 - a^2) + 1e-6, q = min_i Q_i(s, env action)):
//   L = 1/B sum_b [alpha log pi - q],  log pi = sum_j [-eps^2/2 - log sigma - log(2 pi)/2 - log t]
//   dL/du       = -1/B dq/d(env action) scale (1 - a^2) + alpha/B 2 a scale (1 - a^2) / t
//   dL/dmu      = dL/du
//   dL/dlog sig = dL/du sigma eps - alpha/B
//   dL/dz       = dL/dlog sig (hi - lo)/2 (1 - tanh(z)^2)   (log sigma = lo + (hi - lo)/2 (tanh z + 1))
#include "prefrl/rl/sac_learner.h"

#include <algorithm>
#include <cmath>

#include "prefrl/core/error.h"
#include "prefrl/nn/kernels.h"

namespace prefrl {
namespace {

constexpr float kLogStdMin = -5.0f, kLogStdMax = 2.0f;
constexpr float kHalfLog2Pi = 0.91893853320467274178f;

int64_t cap_of(int max_batch) { return nn::round8(std::max(max_batch, 8)); }

// The actor's log-std from its pre-activation z: tanh-mapped into [kLogStdMin, kLogStdMax].
float log_std_of(float z) { return kLogStdMin + 0.5f * (kLogStdMax - kLogStdMin) * (std::tanh(z) + 1.0f); }

}  // namespace

SacLearner::SacLearner(int obs_dim, int act_dim, std::vector<float> low, std::vector<float> high,
                       const SacSettings& s, uint64_t seed)
    : D_(obs_dim),
      A_(act_dim),
      low_(std::move(low)),
      high_(std::move(high)),
      s_(s),
      actor_shape_(nn::mlp_shape(obs_dim, s.hidden, 2 * act_dim)),
      q1_shape_(nn::mlp_shape(obs_dim + act_dim, s.hidden, 1)),
      q2_shape_(nn::mlp_shape(obs_dim + act_dim, s.hidden, 1, q1_shape_.end)),
      actor_(actor_shape_, s.max_batch),
      q1_(q1_shape_, s.max_batch),
      q2_(q2_shape_, s.max_batch),
      actor_p_(static_cast<size_t>(actor_shape_.end)),
      critic_p_(static_cast<size_t>(q2_shape_.end)),
      log_alpha_(1, 0.0f),
      actor_g_(actor_p_.size()),
      critic_g_(critic_p_.size()),
      scratch_g_(critic_p_.size()),
      alpha_g_(1),
      actor_opt_(actor_shape_.end, 0.9, 0.999, 1e-8),
      critic_opt_(q2_shape_.end, 0.9, 0.999, 1e-8),
      alpha_opt_(1, 0.9, 0.999, 1e-8),
      rng_(seed),
      target_entropy_(s.target_entropy != 0 ? s.target_entropy : -static_cast<double>(act_dim)) {
  if (obs_dim <= 0 || act_dim <= 0) throw UsageError("sac: observations and actions must have at least one value");
  if (static_cast<int>(low_.size()) != act_dim || static_cast<int>(high_.size()) != act_dim)
    throw UsageError("sac: the action box needs " + std::to_string(act_dim) + " bounds on each side");
  for (int j = 0; j < act_dim; ++j) {
    if (!(std::isfinite(low_[j]) && std::isfinite(high_[j]) && high_[j] > low_[j]))
      throw UsageError("sac: action " + std::to_string(j) + "'s box [" + std::to_string(low_[j]) + ", " +
                       std::to_string(high_[j]) + "] is not finite and non-empty (SAC squashes into a bounded box)");
    scale_.push_back((high_[j] - low_[j]) / 2);
    bias_.push_back((high_[j] + low_[j]) / 2);
  }
  if (s.policy_frequency < 1) throw UsageError("sac: policy_frequency must be >= 1");
  if (s.max_batch < 1) throw UsageError("sac: the batch size must be >= 1");
  nn::init_mlp(actor_shape_, rng_, actor_p_.data());
  nn::init_mlp(q1_shape_, rng_, critic_p_.data());
  nn::init_mlp(q2_shape_, rng_, critic_p_.data());
  target_p_ = critic_p_;
  const int64_t cap = cap_of(s.max_batch);
  obs_t_.assign(static_cast<size_t>(D_ * cap), 0.0f);
  next_t_.assign(obs_t_.size(), 0.0f);
  qin_.assign(static_cast<size_t>((D_ + A_) * cap), 0.0f);
  eps_.assign(static_cast<size_t>(A_ * cap), 0.0f);
  dq_.assign(static_cast<size_t>(2 * cap), 0.0f);
  dqin_.assign(static_cast<size_t>(2 * (D_ + A_) * cap), 0.0f);
  dhead_.assign(static_cast<size_t>(2 * A_ * cap), 0.0f);
}

double SacLearner::alpha() const { return s_.autotune ? std::exp(static_cast<double>(log_alpha_[0])) : s_.alpha; }

void SacLearner::sample(const float* obs_t, int n, int64_t Bp, const float* eps, Sample* out) {
  const float* head = actor_.forward(actor_p_.data(), obs_t, Bp);
  out->head.assign(head, head + 2 * A_ * Bp);
  out->log_std.assign(static_cast<size_t>(A_ * Bp), 0.0f);
  out->squashed.assign(out->log_std.size(), 0.0f);
  out->action.assign(out->log_std.size(), 0.0f);
  out->logp.assign(static_cast<size_t>(Bp), 0.0f);
  for (int j = 0; j < A_; ++j)
    for (int64_t c = 0; c < Bp; ++c) {
      const int64_t k = j * Bp + c;
      const float ls = log_std_of(head[(A_ + j) * Bp + c]);
      const float e = c < n ? eps[k] : 0.0f;
      const float u = head[k] + std::exp(ls) * e;
      const float a = std::tanh(u);
      out->log_std[k] = ls;
      out->squashed[k] = a;
      out->action[k] = a * scale_[j] + bias_[j];
      out->logp[c] += -0.5f * e * e - ls - kHalfLog2Pi - std::log(scale_[j] * (1.0f - a * a) + 1e-6f);
    }
}

void SacLearner::act(const float* obs, int n, bool deterministic, Rng& rng, float* actions) {
  const int64_t cap = cap_of(s_.max_batch);
  std::vector<float> xt(static_cast<size_t>(D_ * cap)), out(static_cast<size_t>(A_ * cap));
  for (int start = 0; start < n; start += static_cast<int>(cap)) {
    const int m = std::min<int>(static_cast<int>(cap), n - start);
    const int64_t Bp = nn::round8(m);
    nn::transpose_in(obs + static_cast<int64_t>(start) * D_, m, D_, Bp, xt.data());
    const float* head = actor_.forward(actor_p_.data(), xt.data(), Bp);
    for (int c = 0; c < m; ++c)
      for (int j = 0; j < A_; ++j) {
        float u = head[j * Bp + c];
        if (!deterministic) {
          u += std::exp(log_std_of(head[(A_ + j) * Bp + c])) * static_cast<float>(rng.normal());
        }
        actions[static_cast<int64_t>(start + c) * A_ + j] = std::tanh(u) * scale_[j] + bias_[j];
      }
  }
}

SacStats SacLearner::update(const SacBatch& b) {
  if (b.size < 1 || b.size > s_.max_batch)
    throw RuntimeError("sac: a batch of " + std::to_string(b.size) + " rows (1 to " + std::to_string(s_.max_batch) +
                       " expected)");
  const int64_t Bp = nn::round8(b.size);
  SacStats st;
  critic_step(b, Bp, &st);
  if (updates_ % s_.policy_frequency == 0)
    for (int k = 0; k < s_.policy_frequency; ++k) actor_step(b.size, Bp, &st);
  const float tau = static_cast<float>(s_.tau);
  for (size_t i = 0; i < target_p_.size(); ++i) target_p_[i] = tau * critic_p_[i] + (1.0f - tau) * target_p_[i];
  ++updates_;
  st.alpha = alpha();
  return st;
}

void SacLearner::draw_noise(int n, int64_t Bp) {
  for (int j = 0; j < A_; ++j)
    for (int64_t c = 0; c < Bp; ++c) eps_[j * Bp + c] = c < n ? static_cast<float>(rng_.normal()) : 0.0f;
}

void SacLearner::critic_step(const SacBatch& b, int64_t Bp, SacStats* st) {
  const int n = b.size;
  nn::transpose_in(b.obs, n, D_, Bp, obs_t_.data());
  nn::transpose_in(b.next_obs, n, D_, Bp, next_t_.data());
  draw_noise(n, Bp);
  sample(next_t_.data(), n, Bp, eps_.data(), &next_sample_);
  // Targets from the target critics on (s', a').
  std::copy_n(next_t_.data(), D_ * Bp, qin_.data());
  std::copy_n(next_sample_.action.data(), A_ * Bp, qin_.data() + D_ * Bp);
  std::vector<float> y(static_cast<size_t>(Bp), 0.0f);
  {
    const float* t1 = q1_.forward(target_p_.data(), qin_.data(), Bp);
    std::vector<float> q1t(t1, t1 + Bp);
    const float* t2 = q2_.forward(target_p_.data(), qin_.data(), Bp);
    const float a = static_cast<float>(alpha()), gamma = static_cast<float>(s_.gamma);
    for (int c = 0; c < n; ++c) {
      const float soft = std::min(q1t[c], t2[c]) - a * next_sample_.logp[c];
      y[c] = b.rewards[c] + gamma * (1.0f - b.terminated[c]) * soft;
    }
  }
  // The online critics on (s, a).
  std::copy_n(obs_t_.data(), D_ * Bp, qin_.data());
  nn::transpose_in(b.actions, n, A_, Bp, qin_.data() + D_ * Bp);
  const float* q1 = q1_.forward(critic_p_.data(), qin_.data(), Bp);
  const float* q2 = q2_.forward(critic_p_.data(), qin_.data(), Bp);
  float* d1 = dq_.data();
  float* d2 = dq_.data() + Bp;
  double loss = 0, m1 = 0, m2 = 0;
  for (int64_t c = 0; c < Bp; ++c) {
    if (c >= n) { d1[c] = d2[c] = 0.0f; continue; }
    const float e1 = q1[c] - y[c], e2 = q2[c] - y[c];
    loss += static_cast<double>(e1) * e1 + static_cast<double>(e2) * e2;
    m1 += q1[c];
    m2 += q2[c];
    d1[c] = 2.0f * e1 / static_cast<float>(n);
    d2[c] = 2.0f * e2 / static_cast<float>(n);
  }
  q1_.backward(critic_p_.data(), d1, critic_g_.data(), false, nullptr);
  q2_.backward(critic_p_.data(), d2, critic_g_.data(), false, nullptr);
  critic_opt_.step(critic_p_.data(), critic_g_.data(), s_.q_lr);
  st->q_loss = loss / n;
  st->q1 = m1 / n;
  st->q2 = m2 / n;
}

void SacLearner::actor_step(int n, int64_t Bp, SacStats* st) {
  draw_noise(n, Bp);
  sample(obs_t_.data(), n, Bp, eps_.data(), &actor_sample_);
  const Sample& sm = actor_sample_;
  std::copy_n(obs_t_.data(), D_ * Bp, qin_.data());
  std::copy_n(sm.action.data(), A_ * Bp, qin_.data() + D_ * Bp);
  const float* q1p = q1_.forward(critic_p_.data(), qin_.data(), Bp);
  std::vector<float> q1(q1p, q1p + Bp);
  const float* q2 = q2_.forward(critic_p_.data(), qin_.data(), Bp);
  const float a = static_cast<float>(alpha()), inv_n = 1.0f / static_cast<float>(n);
  float* d1 = dq_.data();
  float* d2 = dq_.data() + Bp;
  double loss = 0, logp_sum = 0;
  for (int64_t c = 0; c < Bp; ++c) {
    if (c >= n) { d1[c] = d2[c] = 0.0f; continue; }
    const bool first = q1[c] <= q2[c];
    loss += a * sm.logp[c] - (first ? q1[c] : q2[c]);
    logp_sum += sm.logp[c];
    d1[c] = first ? -inv_n : 0.0f;
    d2[c] = first ? 0.0f : -inv_n;
  }
  const int64_t in_rows = D_ + A_;
  float* dx1 = dqin_.data();
  float* dx2 = dqin_.data() + in_rows * Bp;
  q1_.backward(critic_p_.data(), d1, scratch_g_.data(), false, dx1);
  q2_.backward(critic_p_.data(), d2, scratch_g_.data(), false, dx2);
  const float half_range = 0.5f * (kLogStdMax - kLogStdMin);
  for (int j = 0; j < A_; ++j)
    for (int64_t c = 0; c < Bp; ++c) {
      const int64_t k = j * Bp + c;
      float& dmu = dhead_[k];
      float& dz = dhead_[(A_ + j) * Bp + c];
      if (c >= n) { dmu = dz = 0.0f; continue; }
      const float sq = sm.squashed[k], one_minus = 1.0f - sq * sq, scl = scale_[j];
      const float t = scl * one_minus + 1e-6f;
      const float dact = dx1[(D_ + j) * Bp + c] + dx2[(D_ + j) * Bp + c];  // d L / d env action (via -q)
      const float du = dact * scl * one_minus + a * inv_n * 2.0f * sq * scl * one_minus / t;
      const float sigma = std::exp(sm.log_std[k]);
      const float dls = du * sigma * eps_[k] - a * inv_n;
      const float th = std::tanh(sm.head[(A_ + j) * Bp + c]);
      dmu = du;
      dz = dls * half_range * (1.0f - th * th);
    }
  actor_.backward(actor_p_.data(), dhead_.data(), actor_g_.data(), false, nullptr);
  actor_opt_.step(actor_p_.data(), actor_g_.data(), s_.policy_lr);
  const double mean_logp = logp_sum / n;
  st->actor_loss = loss / n;
  st->entropy = -mean_logp;
  st->actor_stepped = true;
  if (s_.autotune) {
    // d/d log alpha of mean_b [-alpha (log pi + target)] = -alpha (mean log pi + target).
    alpha_g_[0] = static_cast<float>(-std::exp(static_cast<double>(log_alpha_[0])) * (mean_logp + target_entropy_));
    st->alpha_loss = alpha_g_[0];
    alpha_opt_.step(log_alpha_.data(), alpha_g_.data(), s_.alpha_lr);
  }
}

}  // namespace prefrl
