// The reward model learns hidden rewards from oracle preferences: state rewards, discrete
// action rewards, pixels, and the absorbing state of episodes that ended early.
#include <cmath>
#include <cstdio>
#include <vector>
#include <string>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "reward_test_util.h"

namespace prefrl {
namespace {
using namespace reward_test;

// `n` oracle-labeled pairs of fresh segments.
std::vector<LabeledPair> oracle_pairs(Rng& rng, int n, int L, int64_t D, int64_t A, const StepSampler& sample,
                                      const TrueReward& reward, double absorb_prob = 0.0, int64_t first_id = 0) {
  std::vector<LabeledPair> pairs;
  auto seg = [&]() {
    int absorb_from = -1;
    if (absorb_prob > 0 && rng.uniform() < absorb_prob) absorb_from = 1 + static_cast<int>(rng.integer(L - 1));
    return make_segment(rng, L, D, A, sample, reward, absorb_from);
  };
  for (int i = 0; i < n; ++i) {
    Segment a = seg();
    Segment b = seg();
    pairs.push_back(oracle_pair(std::move(a), std::move(b), first_id + i));
  }
  return pairs;
}

TEST(RewardLearning, LinearStateRewardFromOraclePreferences) {
  const int64_t D = 4, A = 2;
  const int L = 20;
  const std::vector<float> w = {1.0f, -0.5f, 0.8f, 0.3f};
  const TrueReward reward = [&](const float* o, const float*) {
    return w[0] * o[0] + w[1] * o[1] + w[2] * o[2] + w[3] * o[3];
  };
  const StepSampler sample = normal_sampler(D, A);
  Rng data(11);
  RewardConfig cfg;
  cfg.ensemble_size = 3;
  cfg.hidden = {64, 64};
  cfg.epochs_per_round = 50;
  RewardModel model(cfg, {D}, A, false, 0, false, 5);
  model.add_pairs(oracle_pairs(data, 200, L, D, A, sample, reward));
  RewardTrainStats st;
  for (int r = 0; r < 4; ++r) st = model.train_round();
  EXPECT_GT(st.n_val, 40);
  EXPECT_GT(st.val_accuracy, 0.85) << "train acc " << st.train_accuracy << " val loss " << st.val_loss;
  EXPECT_NEAR(model.validation_accuracy(), st.val_accuracy, 1e-12);
  EXPECT_GT(st.train_accuracy, 0.9);

  std::vector<Segment> fresh;
  for (int i = 0; i < 300; ++i) fresh.push_back(make_segment(data, L, D, A, sample, reward));
  const double corr = pearson(predicted_returns(model, fresh), true_returns(fresh));
  EXPECT_GT(corr, 0.9);
  std::printf("linear: val acc %.3f train acc %.3f corr %.4f\n", st.val_accuracy, st.train_accuracy, corr);
}

TEST(RewardLearning, DiscreteActionsAreOneHot) {
  const int64_t D = 2, n_actions = 4;
  const int L = 10;
  const float value[] = {1.0f, -1.0f, 0.4f, 0.0f};
  const TrueReward reward = [&](const float*, const float* a) { return value[static_cast<int>(a[0])]; };
  const StepSampler sample = [&](Rng& rng, float* o, float* a) {
    o[0] = static_cast<float>(rng.normal());
    o[1] = static_cast<float>(rng.normal());
    a[0] = static_cast<float>(rng.integer(n_actions));
  };
  Rng data(12);
  RewardConfig cfg;
  cfg.ensemble_size = 3;
  cfg.hidden = {32, 32};
  cfg.epochs_per_round = 50;
  RewardModel model(cfg, {D}, 1, true, n_actions, false, 6);
  model.add_pairs(oracle_pairs(data, 200, L, D, 1, sample, reward));
  RewardTrainStats st;
  for (int r = 0; r < 3; ++r) st = model.train_round();
  EXPECT_GT(st.val_accuracy, 0.8) << "train acc " << st.train_accuracy;
  std::printf("discrete: val acc %.3f\n", st.val_accuracy);
  // Per-step rewards rank the actions as the true reward does: 0 > 2 > 3 > 1.
  const std::vector<float> obs(8, 0.0f);
  const std::vector<float> acts = {0, 1, 2, 3};
  std::vector<float> r(4);
  model.predict(obs.data(), acts.data(), 4, r.data());
  EXPECT_GT(r[0], r[2]);
  EXPECT_GT(r[2], r[3]);
  EXPECT_GT(r[3], r[1]);
}

// The same pixel task through each pixel encoder (reward.pixel_encoder).
class PixelEncoders : public ::testing::TestWithParam<const char*> {};

TEST_P(PixelEncoders, LearnPositionOfASquare) {
  const int64_t C = 1, H = 16, W = 16, D = C * H * W;
  const int L = 8;
  const StepSampler sample = [&](Rng& rng, float* o, float* a) {
    std::fill(o, o + D, 0.0f);
    const int64_t y = rng.integer(H - 2), x = rng.integer(W - 2);
    for (int64_t dy = 0; dy < 3; ++dy)
      for (int64_t dx = 0; dx < 3; ++dx) o[(y + dy) * W + x + dx] = 1.0f;
    a[0] = 0.0f;
  };
  const TrueReward reward = [&](const float* o, const float*) {
    float left = 0;
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W / 2; ++x) left += o[y * W + x];
    return left >= 4.5f ? 1.0f : -1.0f;
  };
  Rng data(13);
  RewardConfig cfg;
  const std::string encoder = GetParam();
  cfg.pixel_encoder = encoder == "keypoints-stride1" ? "keypoints" : encoder;
  cfg.ensemble_size = 2;
  cfg.conv_channels = {8, 8};
  if (encoder == "keypoints-stride1") cfg.conv_strides = {2, 1};
  cfg.hidden = {32};
  cfg.batch_pairs = 32;
  cfg.epochs_per_round = 40;
  cfg.max_updates_per_round = 60;
  cfg.lr = 2e-3;
  cfg.use_action = false;
  RewardModel model(cfg, {C, H, W}, 1, false, 0, false, 7);
  model.add_pairs(oracle_pairs(data, 160, L, D, 1, sample, reward));
  RewardTrainStats st;
  for (int r = 0; r < 3; ++r) st = model.train_round();
  EXPECT_GT(st.val_accuracy, 0.8) << GetParam() << ": train acc " << st.train_accuracy;
  std::printf("pixels (%s): val acc %.3f\n", GetParam(), st.val_accuracy);
}

INSTANTIATE_TEST_SUITE_P(RewardLearning, PixelEncoders, ::testing::Values("keypoints", "keypoints-stride1", "mlp"),
                         [](const auto& info) { std::string n = info.param; for (char& c : n) if (c == '-') c = '_'; return n; });

TEST(RewardLearning, PixelObservationsThroughTheConvTrunk) {
  // 1 x 16 x 16 images with a 3 x 3 bright square; reward +1 when it is in the left half.
  const int64_t C = 1, H = 16, W = 16, D = C * H * W;
  const int L = 8;
  const StepSampler sample = [&](Rng& rng, float* o, float* a) {
    std::fill(o, o + D, 0.0f);
    const int64_t y = rng.integer(H - 2), x = rng.integer(W - 2);
    for (int64_t dy = 0; dy < 3; ++dy)
      for (int64_t dx = 0; dx < 3; ++dx) o[(y + dy) * W + x + dx] = 1.0f;
    a[0] = 0.0f;
  };
  const TrueReward reward = [&](const float* o, const float*) {
    float left = 0;
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W / 2; ++x) left += o[y * W + x];
    return left >= 4.5f ? 1.0f : -1.0f;  // most of the square's 9 pixels on the left
  };
  Rng data(13);
  RewardConfig cfg;
  cfg.ensemble_size = 2;
  cfg.conv_channels = {8, 8};
  cfg.hidden = {32};
  cfg.batch_pairs = 32;
  cfg.epochs_per_round = 40;
  cfg.max_updates_per_round = 60;
  cfg.lr = 2e-3;
  cfg.use_action = false;
  RewardModel model(cfg, {C, H, W}, 1, false, 0, false, 7);
  model.add_pairs(oracle_pairs(data, 160, L, D, 1, sample, reward));
  RewardTrainStats st;
  for (int r = 0; r < 3; ++r) st = model.train_round();
  EXPECT_GT(st.val_accuracy, 0.8) << "train acc " << st.train_accuracy << " updates " << st.updates;
  std::printf("pixels: val acc %.3f n_val %ld\n", st.val_accuracy, (long)st.n_val);
}

TEST(RewardLearning, AbsorbingStateOfEarlyEndsIsLearnedAndSubtracted) {
  // True reward ~ 1 per step while alive, 0 after the end: clips that ended early are worse.
  const int64_t D = 3, A = 1;
  const int L = 15;
  const TrueReward reward = [](const float* o, const float*) { return 1.0f + 0.3f * (o[0] - o[1] + 0.5f * o[2]); };
  const StepSampler sample = normal_sampler(D, A);
  Rng data(14);
  RewardConfig cfg;
  cfg.ensemble_size = 3;
  cfg.hidden = {32, 32};
  cfg.epochs_per_round = 50;
  RewardModel model(cfg, {D}, A, false, 0, true, 8);
  model.add_pairs(oracle_pairs(data, 240, L, D, A, sample, reward, 0.5));
  RewardTrainStats st;
  for (int r = 0; r < 4; ++r) st = model.train_round();
  EXPECT_GT(st.val_accuracy, 0.85);

  // Normalise on ordinary steps: their mean is 0, so r̂_abs must come out clearly negative.
  const int64_t n = 2000;
  std::vector<float> obs(n * D), act(n * A);
  for (int64_t i = 0; i < n; ++i) sample(data, obs.data() + i * D, act.data() + i * A);
  model.update_normalisation(obs.data(), act.data(), n);
  const double r_abs = model.absorbing_value();
  EXPECT_LT(r_abs, -1.0);
  std::printf("absorbing: val acc %.3f r_abs %.3f\n", st.val_accuracy, r_abs);

  // predict() = ensemble mean of normalised outputs - r̂_abs, so typical rewards are > 0.
  std::vector<float> r(n);
  model.predict(obs.data(), act.data(), n, r.data());
  const torch::Tensor mean = model.member_rewards(obs.data(), act.data(), n).mean(0);
  double avg = 0;
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_NEAR(r[i], mean[i].item<double>() - r_abs, 1e-4);
    avg += r[i] / n;
  }
  EXPECT_GT(avg, 1.0);
}

}  // namespace
}  // namespace prefrl
