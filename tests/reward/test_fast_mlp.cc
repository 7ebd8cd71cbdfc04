// The hand-written reward MLP (reward/fast_mlp.h) against the LibTorch autograd path it
// replaces: forward outputs, the bootstrap-weighted Bradley–Terry loss and its gradient (with
// and without dropout and random-response mixing), the Adam step, and whole training rounds
// of RewardModel with reward.fast_mlp on and off.
#include <cmath>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "prefrl/core/rng.h"
#include "prefrl/reward/ensemble_net.h"
#include "prefrl/reward/fast_mlp.h"
#include "reward_test_util.h"

namespace prefrl {
namespace {
using reward_detail::EnsembleNet;
using reward_detail::FastEnsembleMlp;
using reward_detail::NetShape;

NetShape mlp_shape(int64_t members, int64_t width, std::vector<int> hidden, const std::string& activation) {
  NetShape s;
  s.members = members;
  s.row_width = width;
  s.hidden = std::move(hidden);
  s.activation = activation;
  return s;
}

// Random rows (n x F): normal features, the last column (absorbing flag) 0 or 1.
torch::Tensor random_rows(Rng& rng, int64_t n, int64_t F) {
  std::vector<float> v(static_cast<size_t>(n * F));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j + 1 < F; ++j) v[i * F + j] = static_cast<float>(rng.normal());
    v[i * F + F - 1] = rng.uniform() < 0.1 ? 1.0f : 0.0f;
  }
  return torch::tensor(v, torch::kFloat32).view({n, F});
}

// Max |a - b| / (1 + |b|) over all elements.
double max_rel_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs() / (b.to(torch::kFloat64).abs() + 1.0)).max().item<double>();
}

struct Case {
  std::vector<int> hidden;
  std::string activation;
};

class FastRewardMlp : public ::testing::TestWithParam<Case> {};

TEST_P(FastRewardMlp, ForwardMatchesLibTorch) {
  const Case c = GetParam();
  Rng init(1), rng(2);
  EnsembleNet net(mlp_shape(3, 5, c.hidden, c.activation), init);
  ASSERT_TRUE(FastEnsembleMlp::supports(net));
  FastEnsembleMlp fast(net);
  for (int64_t n : {1, 7, 200, 1037, 2500}) {
    const torch::Tensor x = random_rows(rng, n, 5);
    torch::Tensor want;
    {
      torch::NoGradGuard no_grad;
      want = net.forward(x, {});
    }
    torch::Tensor got = torch::empty({3, n});
    fast.forward(x.data_ptr<float>(), n, got.data_ptr<float>());
    EXPECT_LT(max_rel_diff(got, want), 1e-6) << "n = " << n;
  }
}

TEST_P(FastRewardMlp, LossAndGradientMatchAutograd) {
  const Case c = GetParam();
  const int64_t M = 3, F = 5, L = 13, B = 50;  // 2L not a multiple of 8; several tiles per member
  for (double eps : {0.0, 0.1}) {
    for (bool dropout : {false, true}) {
      Rng init(3), rng(4);
      EnsembleNet net(mlp_shape(M, F, c.hidden, c.activation), init);
      FastEnsembleMlp fast(net);
      const torch::Tensor x = random_rows(rng, B * 2 * L, F) * 0.5;  // (B*2L x F): pair k's rows are block k
      std::vector<float> targets(B), weights(M * B);
      for (int64_t k = 0; k < B; ++k) targets[k] = k % 5 == 0 ? 0.5f : (rng.uniform() < 0.5 ? 1.0f : 0.0f);
      for (float& w : weights) w = static_cast<float>(static_cast<int>(rng.uniform() * 3.0));  // 0, 1 or 2
      std::vector<torch::Tensor> masks;
      if (dropout) {
        for (int h : c.hidden) {
          std::vector<float> mv(static_cast<size_t>(M * h));
          for (float& v : mv) v = rng.uniform() < 0.7 ? 1.0f / 0.7f : 0.0f;
          masks.push_back(torch::tensor(mv, torch::kFloat32).view({M, 1, h}));
        }
      }

      // Autograd: the loss exactly as RewardModel::train_round builds it.
      const torch::Tensor w_all = torch::tensor(weights, torch::kFloat32).view({M, B});
      const torch::Tensor ret = net.forward(x, masks).view({M, B, 2, L}).sum(3);
      const torch::Tensor nll = preference_nll(ret.select(2, 0), ret.select(2, 1), torch::tensor(targets), eps);
      const torch::Tensor part = (nll * w_all).sum(1) / w_all.sum(1).clamp_min(1.0);  // (M)
      part.sum().backward();
      const torch::Tensor want_grad = net.params().grad().clone();

      std::vector<const float*> pair_rows, mask_ptrs;
      for (int64_t k = 0; k < B; ++k) pair_rows.push_back(x.data_ptr<float>() + k * 2 * L * F);
      for (const torch::Tensor& t : masks) mask_ptrs.push_back(t.data_ptr<float>());
      std::vector<double> loss(M);
      fast.loss_and_grad(pair_rows, L, targets.data(), weights.data(), mask_ptrs, eps, loss.data());
      const torch::Tensor got_grad = torch::tensor(c10::ArrayRef<float>(fast.grad().data(), fast.grad().size()), torch::kFloat32);
      const std::string what = "eps " + std::to_string(eps) + (dropout ? ", dropout" : "");
      EXPECT_LT(max_rel_diff(torch::tensor(loss, torch::kFloat64), part.detach()), 1e-6) << what;
      const double scale = want_grad.abs().max().item<double>();
      EXPECT_GT(scale, 1e-3) << what;
      EXPECT_LT(((got_grad - want_grad).abs().max().item<double>()) / scale, 1e-5) << what;
      // Weight-0 pairs are skipped, not merely scaled: still no gradient through them.
      net.params().mutable_grad().zero_();
    }
  }
}

TEST_P(FastRewardMlp, AdamStepMatchesEnsembleNet) {
  const Case c = GetParam();
  Rng init_a(5), init_b(5), rng(6);
  EnsembleNet a(mlp_shape(2, 4, c.hidden, c.activation), init_a), b(mlp_shape(2, 4, c.hidden, c.activation), init_b);
  FastEnsembleMlp fast(b);
  const int64_t L = 8, B = 6;
  for (int step = 0; step < 5; ++step) {
    const torch::Tensor x = random_rows(rng, B * 2 * L, 4);
    std::vector<float> targets(B, 1.0f), weights(2 * B, 1.0f);
    std::vector<const float*> pair_rows;
    for (int64_t k = 0; k < B; ++k) pair_rows.push_back(x.data_ptr<float>() + k * 2 * L * 4);
    std::vector<double> loss(2);
    fast.loss_and_grad(pair_rows, L, targets.data(), weights.data(), {}, 0.1, loss.data());
    {
      torch::NoGradGuard no_grad;
      a.params().mutable_grad() = torch::tensor(c10::ArrayRef<float>(fast.grad().data(), fast.grad().size()), torch::kFloat32);
    }
    a.adam_step(0.01, 0.05);
    fast.adam_step(0.01, 0.05);
    EXPECT_EQ(a.adam().steps(), b.adam().steps());
    EXPECT_LT(max_rel_diff(b.params().detach(), a.params().detach()), 1e-6) << "step " << step;
    EXPECT_LT(max_rel_diff(b.adam().exp_avg(), a.adam().exp_avg()), 1e-6);
    EXPECT_LT(max_rel_diff(b.adam().exp_avg_sq(), a.adam().exp_avg_sq()), 1e-6);
  }
}

INSTANTIATE_TEST_SUITE_P(Reward, FastRewardMlp,
                         ::testing::Values(Case{{32, 32}, "leaky_relu"}, Case{{16}, "relu"}, Case{{}, "leaky_relu"},
                                           Case{{7, 12, 5}, "leaky_relu"}));

TEST(FastRewardMlpScope, AppliesOnlyToPlainMlps) {
  Rng init(7);
  EXPECT_TRUE(FastEnsembleMlp::supports(EnsembleNet(mlp_shape(3, 5, {32, 32}, "leaky_relu"), init)));
  EXPECT_FALSE(FastEnsembleMlp::supports(EnsembleNet(mlp_shape(3, 5, {32, 32}, "tanh"), init)));
  NetShape select = mlp_shape(3, 8, {16}, "relu");
  select.select_offset = 3;
  select.select_width = 4;
  EXPECT_FALSE(FastEnsembleMlp::supports(EnsembleNet(select, init)));
  NetShape conv = mlp_shape(2, 1 * 8 * 8 + 1, {16}, "relu");
  conv.image = {1, 8, 8};
  conv.conv_channels = {4};
  EXPECT_FALSE(FastEnsembleMlp::supports(EnsembleNet(conv, init)));

  RewardConfig cfg;
  cfg.hidden = {16, 16};
  EXPECT_TRUE(RewardModel(cfg, {3}, 1, false, 0, false, 1).uses_fast_mlp());
  cfg.fast_mlp = false;
  EXPECT_FALSE(RewardModel(cfg, {3}, 1, false, 0, false, 1).uses_fast_mlp());
  cfg.fast_mlp = true;
  cfg.activation = "tanh";
  EXPECT_FALSE(RewardModel(cfg, {3}, 1, false, 0, false, 1).uses_fast_mlp());
  cfg.activation = "leaky_relu";
  cfg.discrete_action = "select";
  EXPECT_FALSE(RewardModel(cfg, {3}, 1, true, 4, false, 1).uses_fast_mlp());
  EXPECT_TRUE(RewardModel(cfg, {3}, 1, false, 0, false, 1).uses_fast_mlp());  // continuous: nothing to select
  cfg.discrete_action = "input";
  EXPECT_FALSE(RewardModel(cfg, {1, 8, 8}, 1, true, 4, false, 1).uses_fast_mlp());  // conv trunk
}

// Whole rounds (splits, bootstrap, dropout, L2 adaptation, statistics, normalisation) agree
// with the LibTorch path to float rounding.
TEST(FastRewardMlpScope, TrainingRoundsMatchTheLibTorchPath) {
  using namespace reward_test;
  Rng data(8);
  auto reward_fn = [](const float* o, const float* a) { return o[0] - 0.5f * o[1] + 0.3f * a[0]; };
  std::vector<LabeledPair> pairs;
  for (int i = 0; i < 60; ++i) {
    Segment l = make_segment(data, 20, 3, 1, normal_sampler(3, 1), reward_fn, i % 7 == 0 ? 15 : -1);
    Segment r = make_segment(data, 20, 3, 1, normal_sampler(3, 1), reward_fn);
    pairs.push_back(oracle_pair(std::move(l), std::move(r), i));
  }
  RewardConfig cfg;
  cfg.hidden = {32, 32};
  cfg.batch_pairs = 16;
  cfg.epochs_per_round = 2;
  cfg.dropout = 0.1;
  auto run = [&](bool fast) {
    RewardConfig c = cfg;
    c.fast_mlp = fast;
    RewardModel model(c, {3}, 1, false, 0, true, 9);
    EXPECT_EQ(model.uses_fast_mlp(), fast);
    std::vector<double> out;
    for (int r = 0; r < 3; ++r) {
      model.add_pairs(std::vector<LabeledPair>(pairs.begin() + 20 * r, pairs.begin() + 20 * (r + 1)));
      const RewardTrainStats st = model.train_round();
      model.update_normalisation_on_labeled();
      for (double v : {st.train_loss, st.val_loss, st.train_accuracy, st.val_accuracy, st.l2, st.fit_loss}) out.push_back(v);
      out.push_back(static_cast<double>(st.updates));
    }
    std::vector<float> pred(20);
    model.predict(pairs[0].left.obs.data(), pairs[0].left.actions.data(), 20, pred.data());
    out.insert(out.end(), pred.begin(), pred.end());
    return out;
  };
  const std::vector<double> fast = run(true), slow = run(false);
  ASSERT_EQ(fast.size(), slow.size());
  // Statistics to 1e-4. Predictions drift further apart: the loss is blind to a shift of r̂,
  // so the output bias gets only float-rounding noise as gradient, which Adam's normalised
  // step turns into small random moves that differ between the two paths (harmless: only
  // differences of returns are learned, and normalisation removes the mean); 3 rounds of it
  // move normalised predictions by ~3e-4.
  for (size_t i = 0; i < fast.size(); ++i) {
    const double tol = (i < 21 ? 1e-4 : 3e-3) * (1 + std::fabs(slow[i]));
    EXPECT_NEAR(fast[i], slow[i], tol) << i;
  }
}

}  // namespace
}  // namespace prefrl
