// The two policy implementations agree (forward and PPO-loss gradients) and initialisation is
// orthogonal (the fused Adam and gradient clipping: tests/nn).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <iostream>
#include <memory>
#include <vector>

#include "prefrl/core/rng.h"
#include "prefrl/rl/policy.h"

namespace prefrl {
namespace {

EnvSpec box_spec(int obs, int act) {
  EnvSpec s;
  s.name = "box";
  s.observation = Space::box({obs}, std::vector<float>(obs, -1), std::vector<float>(obs, 1));
  s.action = Space::box({act}, std::vector<float>(act, -1), std::vector<float>(act, 1));
  return s;
}
EnvSpec discrete_spec(int obs, int n) {
  EnvSpec s;
  s.name = "discrete";
  s.observation = Space::box({obs}, std::vector<float>(obs, -1), std::vector<float>(obs, 1));
  s.action = Space::discrete_n(n);
  return s;
}

// A random minibatch whose stored log-probs are the current ones plus noise, so ratios spread
// over both sides of the clip range.
struct RandomBatch {
  int B;
  std::vector<float> obs, actions, logprobs, values, advantages, returns;
  Minibatch mb() const {
    Minibatch m;
    m.size = B; m.obs = obs.data(); m.actions = actions.data(); m.logprobs = logprobs.data();
    m.values = values.data(); m.advantages = advantages.data(); m.returns = returns.data();
    return m;
  }
};

RandomBatch random_batch(const PolicyLayout& L, Policy& ref, const float* params, int B, uint64_t seed) {
  Rng rng(seed);
  RandomBatch b;
  b.B = B;
  b.obs.resize(B * L.obs_dim);
  for (auto& x : b.obs) x = static_cast<float>(rng.normal());
  std::vector<float> head(B * L.head_dim), values(B), logp(B);
  ref.forward(b.obs.data(), B, head.data(), values.data());
  b.actions.resize(B * L.act_dim);
  if (L.discrete) {
    for (int i = 0; i < B; ++i) {
      std::vector<float> lp(L.head_dim);
      log_softmax_row(head.data() + i * L.head_dim, L.head_dim, lp.data());
      const int a = static_cast<int>(rng.integer(L.head_dim));
      b.actions[i] = static_cast<float>(a);
      logp[i] = lp[a];
    }
  } else {
    for (int i = 0; i < B * L.act_dim; ++i) b.actions[i] = head[i] + static_cast<float>(rng.normal() * 0.8);
    gaussian_logprob(head.data(), params + L.log_std, b.actions.data(), B, L.act_dim, logp.data());
  }
  for (int i = 0; i < B; ++i) {
    b.logprobs.push_back(logp[i] + static_cast<float>(rng.normal() * 0.3));
    b.values.push_back(values[i] + static_cast<float>(rng.normal() * 0.3));
    b.advantages.push_back(static_cast<float>(rng.normal() * 2.0 + 0.5));
    b.returns.push_back(static_cast<float>(rng.normal() * 3.0));
  }
  return b;
}

double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, static_cast<double>(std::fabs(x)));
  return m;
}

struct GradCase {
  const char* name;
  bool discrete;
  std::string activation;
  bool clip_vloss;
  double ent_coef;
  int B;
};
void PrintTo(const GradCase& c, std::ostream* os) { *os << c.name; }

class FastVsAutograd : public ::testing::TestWithParam<GradCase> {};

TEST_P(FastVsAutograd, SameForwardLossAndGradient) {
  const GradCase& c = GetParam();
  PPOConfig cfg;
  cfg.hidden = {32, 24};
  cfg.activation = c.activation;
  cfg.clip_vloss = c.clip_vloss;
  cfg.ent_coef = c.ent_coef;
  cfg.init_log_std = -0.3;
  const EnvSpec spec = c.discrete ? discrete_spec(5, 4) : box_spec(5, 2);
  const PolicyLayout L = make_layout(cfg, spec);
  std::vector<float> params(L.num_params);
  Rng init(3);
  init_params(L, cfg.init_log_std, init, params.data());
  // Larger-than-init output layers, so the losses are not dominated by tiny heads.
  for (auto* net : {&L.actor, &L.critic})
    for (int64_t k = net->back().w; k < net->back().b; ++k) params[k] *= 30.0f;

  auto slow = make_autograd_policy(L, cfg, params.data());
  auto fast = make_fast_mlp_policy(L, cfg, params.data(), 64);
  const RandomBatch batch = random_batch(L, *slow, params.data(), c.B, 11);

  std::vector<float> h_slow(c.B * L.head_dim), h_fast(c.B * L.head_dim), v_slow(c.B), v_fast(c.B);
  slow->forward(batch.obs.data(), c.B, h_slow.data(), v_slow.data());
  fast->forward(batch.obs.data(), c.B, h_fast.data(), v_fast.data());
  for (size_t k = 0; k < h_slow.size(); ++k) EXPECT_NEAR(h_fast[k], h_slow[k], 1e-5 * (1 + std::fabs(h_slow[k])));
  for (size_t k = 0; k < v_slow.size(); ++k) EXPECT_NEAR(v_fast[k], v_slow[k], 1e-5 * (1 + std::fabs(v_slow[k])));

  std::vector<float> g_slow(L.num_params), g_fast(L.num_params);
  const LossTerms ls = slow->loss_and_grad(batch.mb(), g_slow.data());
  const LossTerms lf = fast->loss_and_grad(batch.mb(), g_fast.data());
  EXPECT_GT(ls.clipfrac, 0.05) << "the batch should exercise clipping";
  EXPECT_NEAR(lf.loss, ls.loss, 1e-5 * (1 + std::fabs(ls.loss)));
  EXPECT_NEAR(lf.policy_loss, ls.policy_loss, 1e-5 * (1 + std::fabs(ls.policy_loss)));
  EXPECT_NEAR(lf.value_loss, ls.value_loss, 1e-5 * (1 + std::fabs(ls.value_loss)));
  EXPECT_NEAR(lf.entropy, ls.entropy, 1e-5 * (1 + std::fabs(ls.entropy)));
  EXPECT_NEAR(lf.approx_kl, ls.approx_kl, 1e-5);
  EXPECT_NEAR(lf.clipfrac, ls.clipfrac, 1e-6);  // torch averages in float

  // Per-tensor relative agreement, and global relative error.
  const double scale = max_abs(g_slow);
  ASSERT_GT(scale, 0.0);
  double diff2 = 0, norm2 = 0;
  for (int64_t k = 0; k < L.num_params; ++k) {
    diff2 += (g_fast[k] - g_slow[k]) * static_cast<double>(g_fast[k] - g_slow[k]);
    norm2 += static_cast<double>(g_slow[k]) * g_slow[k];
    ASSERT_NEAR(g_fast[k], g_slow[k], 2e-5 * scale) << "parameter " << k;
  }
  const double rel = std::sqrt(diff2 / norm2);
  std::cout << c.name << ": |g_fast - g_autograd| / |g_autograd| = " << rel << "\n";
  EXPECT_LT(rel, 1e-5);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, FastVsAutograd,
    ::testing::Values(GradCase{"gaussian_tanh", false, "tanh", false, 0.0, 64},
                      GradCase{"categorical_tanh", true, "tanh", false, 0.01, 64},
                      GradCase{"gaussian_relu_clipv_ent", false, "relu", true, 0.05, 64},
                      GradCase{"categorical_relu_clipv_odd_batch", true, "relu", true, 0.02, 37},
                      GradCase{"gaussian_tanh_tiny_batch", false, "tanh", true, 0.01, 5}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(FastMlp, ForwardHandlesBatchesLargerThanItsCapacity) {
  PPOConfig cfg;
  cfg.hidden = {16};
  const PolicyLayout L = make_layout(cfg, box_spec(3, 1));
  std::vector<float> params(L.num_params);
  Rng init(5);
  init_params(L, 0.0, init, params.data());
  auto slow = make_autograd_policy(L, cfg, params.data());
  auto fast = make_fast_mlp_policy(L, cfg, params.data(), 8);
  const int n = 29;
  std::vector<float> obs(n * 3);
  Rng rng(1);
  for (auto& x : obs) x = static_cast<float>(rng.normal());
  std::vector<float> h1(n), h2(n), v1(n), v2(n);
  slow->forward(obs.data(), n, h1.data(), v1.data());
  fast->forward(obs.data(), n, h2.data(), v2.data());
  for (int i = 0; i < n; ++i) {
    EXPECT_NEAR(h1[i], h2[i], 1e-5);
    EXPECT_NEAR(v1[i], v2[i], 1e-5);
  }
}

TEST(Init, OrthogonalWeightsZeroBiasesAndLogStd) {
  PPOConfig cfg;
  cfg.hidden = {64, 64};
  cfg.init_log_std = -0.5;
  const PolicyLayout L = make_layout(cfg, box_spec(3, 2));
  std::vector<float> params(L.num_params, 123.0f);
  Rng init(9);
  init_params(L, cfg.init_log_std, init, params.data());
  for (const auto* net : {&L.actor, &L.critic}) {
    for (const auto& s : *net) {
      // W W^T = gain^2 I when out <= in, else W^T W = gain^2 I.
      auto W = torch::from_blob(params.data() + s.w, {s.out, s.in}).to(torch::kFloat64);
      auto G = s.out <= s.in ? W.mm(W.t()) : W.t().mm(W);
      auto I = torch::eye(G.size(0), torch::kFloat64) * (s.gain * s.gain);
      EXPECT_LT((G - I).abs().max().item<double>(), 1e-5 * s.gain * s.gain) << s.out << "x" << s.in;
      for (int j = 0; j < s.out; ++j) EXPECT_EQ(params[s.b + j], 0.0f);
    }
  }
  EXPECT_FLOAT_EQ(params[L.log_std], -0.5f);
  EXPECT_FLOAT_EQ(params[L.log_std + 1], -0.5f);
  EXPECT_EQ(L.actor.back().gain, 0.01);
  EXPECT_EQ(L.critic.back().gain, 1.0);
}

TEST(Layout, PixelsUseTheConvTrunk) {
  EnvSpec s;
  s.name = "pix";
  s.pixels = true;
  s.observation = Space::box({3, 16, 12}, std::vector<float>(3 * 16 * 12, 0), std::vector<float>(3 * 16 * 12, 1));
  s.action = Space::discrete_n(5);
  PPOConfig cfg;
  cfg.conv_channels = {8, 16};
  const PolicyLayout L = make_layout(cfg, s);
  ASSERT_EQ(L.convs.size(), 2u);
  EXPECT_EQ(L.convs[0].h_out, 8);
  EXPECT_EQ(L.convs[0].w_out, 6);
  EXPECT_EQ(L.convs[1].h_out, 4);
  EXPECT_EQ(L.convs[1].w_out, 3);
  EXPECT_EQ(L.trunk_fc.in, 16 * 4 * 3);
  EXPECT_EQ(L.actor.size(), 1u);
  EXPECT_EQ(L.actor[0].out, 5);
  EXPECT_THROW(make_fast_mlp_policy(L, cfg, nullptr, 8), std::exception);
}

// forward_kept keeps the graph of the forward that acted: loss_and_grad of the kept rows
// differentiates those outputs (whatever observations the minibatch points to), with a fresh
// forward's gradient, and refuses a minibatch of another size.
TEST(KeptForward, TheKeptGraphIsTheOneDifferentiated) {
  EnvSpec s;
  s.name = "pix";
  s.pixels = true;
  s.observation = Space::box({1, 8, 8}, std::vector<float>(64, 0), std::vector<float>(64, 1));
  s.action = Space::discrete_n(3);
  PPOConfig cfg;
  cfg.conv_channels = {4, 8};
  cfg.norm_adv = false;
  const PolicyLayout L = make_layout(cfg, s);
  std::vector<float> params(L.num_params);
  Rng init(5);
  init_params(L, 0.0, init, params.data());
  std::unique_ptr<Policy> pol = make_autograd_policy(L, cfg, params.data());
  const RandomBatch b = random_batch(L, *pol, params.data(), 12, 9);

  // Two acting forwards of 5 and 7 rows, as a rollout's steps.
  std::vector<float> head(12 * L.head_dim), values(12), ref_head(12 * L.head_dim), ref_values(12);
  ASSERT_TRUE(pol->forward_kept(b.obs.data(), 5, head.data(), values.data()));
  ASSERT_TRUE(pol->forward_kept(b.obs.data() + 5 * L.obs_dim, 7, head.data() + 5 * L.head_dim, values.data() + 5));
  EXPECT_EQ(pol->kept_rows(), 12);
  pol->forward(b.obs.data(), 12, ref_head.data(), ref_values.data());
  for (int i = 0; i < 12; ++i) EXPECT_NEAR(values[i], ref_values[i], 1e-6);
  for (size_t k = 0; k < head.size(); ++k) EXPECT_NEAR(head[k], ref_head[k], 1e-6);

  // The kept minibatch points at other observations: they are not run through the network.
  RandomBatch other = b;
  for (auto& x : other.obs) x = 1.0f - x;
  Minibatch mb = other.mb();
  mb.kept = true;
  std::vector<float> g_kept(L.num_params), g_fresh(L.num_params), g_other(L.num_params);
  const LossTerms kept = pol->loss_and_grad(mb, g_kept.data());
  EXPECT_EQ(pol->kept_rows(), 0);
  const LossTerms fresh = pol->loss_and_grad(b.mb(), g_fresh.data());
  const LossTerms recomputed_other = pol->loss_and_grad(other.mb(), g_other.data());
  EXPECT_NEAR(kept.loss, fresh.loss, 1e-6);
  EXPECT_GT(std::fabs(kept.loss - recomputed_other.loss), 1e-4) << "the minibatch's observations were run again";
  double diff = 0;
  for (int64_t k = 0; k < L.num_params; ++k) diff = std::max(diff, static_cast<double>(std::fabs(g_kept[k] - g_fresh[k])));
  EXPECT_LT(diff, 1e-6 * std::max(1.0, max_abs(g_fresh)));

  // Kept rows that are not the minibatch's: refused; drop_kept forgets them.
  ASSERT_TRUE(pol->forward_kept(b.obs.data(), 5, head.data(), values.data()));
  EXPECT_THROW(pol->loss_and_grad(mb, g_kept.data()), std::exception);
  ASSERT_TRUE(pol->forward_kept(b.obs.data(), 5, head.data(), values.data()));
  pol->drop_kept();
  EXPECT_EQ(pol->kept_rows(), 0);
  // The hand-written MLP keeps nothing.
  const PolicyLayout M = make_layout(PPOConfig{}, discrete_spec(3, 2));
  std::vector<float> mp(M.num_params);
  Rng r2(1);
  init_params(M, 0.0, r2, mp.data());
  std::unique_ptr<Policy> fast = make_fast_mlp_policy(M, PPOConfig{}, mp.data(), 8);
  std::vector<float> obs3(3, 0.1f), h2(2), v1(1);
  EXPECT_FALSE(fast->forward_kept(obs3.data(), 1, h2.data(), v1.data()));
  EXPECT_EQ(fast->kept_rows(), 0);
}

}  // namespace
}  // namespace prefrl
