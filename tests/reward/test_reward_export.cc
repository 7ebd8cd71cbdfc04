// RewardModel::to_torchscript: the module computes predict() and member_rewards() for every
// network form (MLP in its hand-written and LibTorch paths, per-action outputs, standardised
// inputs, hidden inputs, absorbing subtraction; pixel CNN with valid padding, batch norm and
// conv dropout, keypoints, potential form), after training has moved the weights, the
// normalisation and batch norm's running statistics away from their initial values.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "prefrl/core/rng.h"
#include "reward_test_util.h"

namespace prefrl {
namespace {
using namespace reward_test;

struct Case {
  const char* name;
  std::vector<int64_t> obs_shape;
  int64_t act_size;
  bool discrete;
  int64_t n_actions;
  bool can_terminate;
  std::function<void(RewardConfig&)> tune;
};

float some_reward(const float* o, const float* a) { return o[0] - 0.3f * o[1] + 0.1f * a[0]; }

// A pixel-ish sampler: values in [0, 1] (byte / 255), actions as discrete indices or normals.
StepSampler sampler(const Case& c) {
  int64_t D = 1;
  for (int64_t d : c.obs_shape) D *= d;
  const bool pixels = c.obs_shape.size() == 3;
  return [=](Rng& rng, float* o, float* a) {
    for (int64_t j = 0; j < D; ++j) o[j] = pixels ? static_cast<float>(rng.integer(256)) / 255.0f : static_cast<float>(rng.normal());
    for (int64_t j = 0; j < c.act_size; ++j)
      a[j] = c.discrete ? static_cast<float>(rng.integer(c.n_actions)) : static_cast<float>(rng.normal());
  };
}

double rel_gap(const torch::Tensor& a, const torch::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  if (a.sizes() != b.sizes()) return 1e9;
  return ((a - b).abs() / b.abs().clamp_min(1.0)).max().item<double>();
}

TEST(RewardExport, TheModuleComputesWhatPredictComputes) {
  torch::set_num_threads(1);
  const std::vector<Case> cases = {
      {"mlp fast", {5}, 2, false, 0, true, [](RewardConfig&) {}},
      {"mlp libtorch, dropout", {5}, 2, false, 0, true, [](RewardConfig& r) { r.fast_mlp = false; r.dropout = 0.3; }},
      {"mlp standardised, no absorbing", {5}, 2, false, 0, true,
       [](RewardConfig& r) { r.standardise_inputs = true; r.subtract_absorbing = false; r.activation = "tanh"; }},
      {"mlp discrete one-hot", {4}, 1, true, 3, false, [](RewardConfig&) {}},
      {"mlp discrete select", {4}, 1, true, 3, true, [](RewardConfig& r) { r.discrete_action = "select"; r.activation = "relu"; }},
      {"cnn paper (valid, batch norm, conv dropout)", {4, 16, 16}, 1, true, 6, true,
       [](RewardConfig& r) {
         r.conv_channels = {4, 4};
         r.conv_kernels = {5, 3};
         r.conv_strides = {2, 1};
         r.conv_padding = "valid";
         r.batch_norm = true;
         r.conv_dropout = 0.5;
         r.use_action = false;
         r.subtract_absorbing = false;
       }},
      {"cnn same padding with actions", {2, 12, 12}, 1, true, 4, true, [](RewardConfig& r) { r.conv_channels = {3, 3}; }},
      {"keypoints", {2, 12, 12}, 1, true, 4, false,
       [](RewardConfig& r) { r.conv_channels = {4}; r.conv_strides = {1}; r.pixel_encoder = "keypoints"; }},
      {"potential", {2, 8, 8}, 1, true, 4, false,
       [](RewardConfig& r) {
         r.form = "potential";
         r.use_action = false;
         r.conv_channels = {2};
         r.conv_kernels = {1};
         r.conv_strides = {1};
         r.pixel_encoder = "keypoints";
       }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    RewardConfig cfg;
    cfg.ensemble_size = 2;
    cfg.hidden = {8, 8};
    cfg.batch_pairs = 8;
    cfg.epochs_per_round = 3;
    cfg.output_std = 0.7;
    c.tune(cfg);
    int64_t D = 1;
    for (int64_t d : c.obs_shape) D *= d;
    RewardModel model(cfg, c.obs_shape, c.act_size, c.discrete, c.n_actions, c.can_terminate, 3);
    if (c.obs_shape.size() == 1) model.hide_inputs({1});
    Rng rng(11);
    const StepSampler sample = sampler(c);
    std::vector<LabeledPair> pairs;
    for (int i = 0; i < 24; ++i) {
      Segment a = make_segment(rng, 6, D, c.act_size, sample, some_reward, i % 4 == 0 ? 4 : -1);
      Segment b = make_segment(rng, 6, D, c.act_size, sample, some_reward);
      pairs.push_back(oracle_pair(std::move(a), std::move(b), i));
    }
    model.add_pairs(pairs);
    model.train_round();
    model.update_normalisation_on_labeled();

    const int64_t n = 37;
    std::vector<float> obs(static_cast<size_t>(n * D)), act(static_cast<size_t>(n * c.act_size));
    for (int64_t i = 0; i < n; ++i) sample(rng, obs.data() + i * D, act.data() + i * c.act_size);
    std::vector<float> r(n);
    model.predict(obs.data(), act.data(), n, r.data());
    const torch::Tensor members = model.member_rewards(obs.data(), act.data(), n);

    torch::jit::Module m = model.to_torchscript();
    std::vector<int64_t> shape = {n};
    shape.insert(shape.end(), c.obs_shape.begin(), c.obs_shape.end());
    const torch::Tensor o = torch::from_blob(obs.data(), shape, torch::kFloat32);
    const torch::Tensor a = torch::from_blob(act.data(), {n, c.act_size}, torch::kFloat32);
    torch::NoGradGuard no_grad;
    const torch::Tensor ex = m.forward({o, a}).toTensor();
    const torch::Tensor ex_members = m.run_method("members", o, a).toTensor();
    EXPECT_LT(rel_gap(ex, torch::from_blob(r.data(), {n})), 1e-6);
    EXPECT_LT(rel_gap(ex_members, members), 1e-6);
    EXPECT_GT(members.std().item<double>(), 1e-3) << "a constant reward proves nothing";
    if (!cfg.use_action) {  // observations alone: no actions needed
      EXPECT_LT(rel_gap(m.forward({o}).toTensor(), torch::from_blob(r.data(), {n})), 1e-6);
    } else {
      EXPECT_THROW(m.forward({o}), std::exception);
    }
  }
}

}  // namespace
}  // namespace prefrl
