// The paper's reward network for pixels (reward.conv_padding=valid, batch_norm, conv_dropout)
// and what pixel runs need of the reward model: both clips of a pair see the same dropout
// masks and batch-norm statistics, byte storage computes what float storage does, a buffer of
// the newest pairs (max_pairs) that resumes exactly, and inputs hidden from the net.
#include <cmath>
#include <cstdio>
#include <string>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "prefrl/core/error.h"
#include "prefrl/reward/ensemble_net.h"
#include "reward_test_util.h"

namespace prefrl {
namespace {
using namespace reward_test;

// The paper's Atari reward network (Christiano et al. 2017, appendix A.2).
RewardConfig paper_config() {
  RewardConfig cfg;
  cfg.ensemble_size = 3;
  cfg.conv_channels = {16, 16, 16, 16};
  cfg.conv_kernels = {7, 5, 3, 3};
  cfg.conv_strides = {3, 2, 1, 1};
  cfg.conv_padding = "valid";
  cfg.batch_norm = true;
  cfg.conv_dropout = 0.5;
  cfg.hidden = {64};
  cfg.activation = "leaky_relu";
  cfg.use_action = false;
  cfg.batch_pairs = 4;
  cfg.epochs_per_round = 1;
  cfg.output_std = 0.05;
  return cfg;
}

// A clip of L random byte frames (C x H x W); its true reward is the mean of frame 0's top-left pixel.
Segment pixel_segment(Rng& rng, int L, int64_t C, int64_t H, int64_t W) {
  Segment s;
  s.length = L;
  s.obs_size = C * H * W;
  s.act_size = 1;
  s.obs_bytes.resize(static_cast<size_t>(L * s.obs_size));
  for (auto& b : s.obs_bytes) b = static_cast<uint8_t>(rng.integer(256));
  s.actions.assign(static_cast<size_t>(L), 0.0f);
  s.absorbing.assign(static_cast<size_t>(L), 0);
  s.true_rewards.resize(static_cast<size_t>(L));
  for (int t = 0; t < L; ++t) s.true_rewards[t] = s.obs_bytes[t * s.obs_size] / 255.0f;
  return s;
}

std::vector<LabeledPair> pixel_pairs(Rng& rng, int n, int L, int64_t C, int64_t H, int64_t W, int64_t first_id = 0) {
  std::vector<LabeledPair> out;
  for (int i = 0; i < n; ++i)
    out.push_back(oracle_pair(pixel_segment(rng, L, C, H, W), pixel_segment(rng, L, C, H, W), first_id + i));
  return out;
}

struct TempPath {
  std::string path;
  TempPath() {
    char buf[] = "/tmp/prefrl_pixel_reward_XXXXXX";
    const int fd = mkstemp(buf);
    if (fd >= 0) close(fd);
    path = buf;
  }
  ~TempPath() { std::remove(path.c_str()); }
};

TEST(PaperRewardNet, MapsOf84x84FramesAre26_11_9_7) {
  reward_detail::NetShape shape;
  shape.members = 3;
  shape.image = {4, 84, 84};
  shape.conv_channels = {16, 16, 16, 16};
  shape.conv_kernels = {7, 5, 3, 3};
  shape.conv_strides = {3, 2, 1, 1};
  shape.same_padding = false;
  shape.batch_norm = true;
  shape.hidden = {64};
  shape.row_width = 4 * 84 * 84 + 1;
  Rng rng(1);
  reward_detail::EnsembleNet net(shape, rng);
  const auto outs = net.conv_outputs();
  ASSERT_EQ(outs.size(), 4u);
  const int64_t sizes[] = {26, 11, 9, 7};
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(outs[i].c, 16);
    EXPECT_EQ(outs[i].h, sizes[i]);
    EXPECT_EQ(outs[i].w, sizes[i]);
  }
  // Per member: convs 16*4*49+16, 16*16*25+16, 16*16*9+16 (twice), batch norm 2*16 per conv,
  // FC (16*7*7 + 1 absorbing flag) * 64 + 64, output 64 + 1.
  const int64_t per_member = (16 * 4 * 49 + 16) + (16 * 16 * 25 + 16) + 2 * (16 * 16 * 9 + 16) + 4 * 32 +
                             (16 * 49 + 1) * 64 + 64 + 65;
  EXPECT_EQ(net.num_params(), 3 * per_member);
  EXPECT_EQ(net.running_stats().size(), 8u);  // mean and variance per conv
}

TEST(PaperRewardNet, TheTwoClipsOfAPairShareDropoutMasksAndBatchStatistics) {
  const int L = 5;
  RewardModel model(paper_config(), {4, 84, 84}, 1, true, 6, false, 7);
  Rng rng(3);
  std::vector<LabeledPair> pairs = pixel_pairs(rng, 4, L, 4, 84, 84);
  // Every pair compares a clip with itself; pairs 0 and 1 hold the same clip.
  pairs[1].left = pairs[0].left;
  for (auto& p : pairs) {
    p.right = p.left;
    p.target = 0.5f;
  }
  auto [left, right] = model.pair_returns(pairs, /*training=*/true);
  auto [eval_left, eval_right] = model.pair_returns(pairs, /*training=*/false);
  ASSERT_EQ(left.sizes(), (std::vector<int64_t>{3, 4}));
  const double tol = 1e-5 * (1.0 + left.abs().max().item<double>());
  // Same weights, same masks, same batch statistics => identical predicted returns in training mode.
  EXPECT_LT((left - right).abs().max().item<double>(), tol) << left << right;
  EXPECT_LT((eval_left - eval_right).abs().max().item<double>(), tol);
  // The masks are live and drawn per pair: the same clip in pairs 0 and 1 gets different
  // training-mode returns, though the same evaluation-mode ones.
  EXPECT_GT((left.select(1, 0) - left.select(1, 1)).abs().max().item<double>(), 1000 * tol);
  EXPECT_LT((eval_left.select(1, 0) - eval_left.select(1, 1)).abs().max().item<double>(), tol);
  EXPECT_GT((left - eval_left).abs().max().item<double>(), 1000 * tol);

  // The batch statistics are the pair's together: without dropout, a clip's training-mode return
  // depends on the clip it is compared with (it would not if each clip, or each side of the
  // minibatch, were normalised on its own), its evaluation-mode return does not.
  RewardConfig no_drop = paper_config();
  no_drop.conv_dropout = 0.0;
  RewardModel joint(no_drop, {4, 84, 84}, 1, true, 6, false, 7);
  Rng rng2(4);
  std::vector<LabeledPair> ab = pixel_pairs(rng2, 1, L, 4, 84, 84), ac = pixel_pairs(rng2, 1, L, 4, 84, 84);
  ac[0].left = ab[0].left;
  const torch::Tensor with_b = joint.pair_returns(ab, true).first, with_c = joint.pair_returns(ac, true).first;
  EXPECT_GT((with_b - with_c).abs().max().item<double>(), 1000 * tol);
  EXPECT_TRUE(torch::equal(joint.pair_returns(ab, false).first, joint.pair_returns(ac, false).first));

  // Trained on such pairs, every minibatch's loss is exactly log 2 (any difference between the
  // two clips' returns would raise it).
  RewardConfig cfg = paper_config();
  cfg.val_fraction = 0.0;
  cfg.random_response = 0.0;
  RewardModel trained(cfg, {4, 84, 84}, 1, true, 6, false, 9);
  trained.add_pairs(pairs);
  const RewardTrainStats st = trained.train_round();
  EXPECT_GT(st.updates, 0);
  EXPECT_NEAR(st.fit_loss, std::log(2.0), 1e-6);
}

TEST(PaperRewardNet, BatchNormRunningStatisticsFollowTrainingAndTheCheckpoint) {
  const int L = 4;
  RewardConfig cfg = paper_config();
  cfg.epochs_per_round = 2;
  RewardModel model(cfg, {4, 84, 84}, 1, true, 6, false, 11);
  Rng rng(5);
  const std::vector<LabeledPair> pairs = pixel_pairs(rng, 8, L, 4, 84, 84);
  const std::vector<const Segment*> segs = {&pairs[0].left, &pairs[1].right};
  const torch::Tensor before = model.segment_returns(segs);
  model.add_pairs(pairs);
  model.train_round();
  model.update_normalisation_on_labeled();
  const torch::Tensor after = model.segment_returns(segs);
  EXPECT_FALSE(torch::allclose(before, after));
  TempPath tmp;
  model.save(tmp.path);
  RewardModel loaded(cfg, {4, 84, 84}, 1, true, 6, false, 99);
  loaded.load(tmp.path);
  // Evaluation uses the running statistics: they came back with the checkpoint.
  EXPECT_TRUE(torch::equal(loaded.segment_returns(segs), after));
}

// A small conv net on 2 x 12 x 12 frames, for the storage tests.
RewardConfig small_conv_config() {
  RewardConfig cfg;
  cfg.ensemble_size = 2;
  cfg.conv_channels = {4, 4};
  cfg.hidden = {8};
  cfg.use_action = false;
  cfg.batch_pairs = 4;
  cfg.epochs_per_round = 2;
  return cfg;
}

TEST(PixelRewardStorage, ByteClipsTrainExactlyAsTheirFloatValues) {
  Rng rng(8);
  std::vector<LabeledPair> bytes = pixel_pairs(rng, 12, 6, 2, 12, 12);
  std::vector<LabeledPair> floats = bytes;
  for (auto& p : floats) {
    p.left.unpack_obs();
    p.right.unpack_obs();
  }
  RewardModel a(small_conv_config(), {2, 12, 12}, 1, true, 3, false, 4);
  RewardModel b(small_conv_config(), {2, 12, 12}, 1, true, 3, false, 4);
  a.add_pairs(bytes);
  b.add_pairs(floats);
  const RewardTrainStats sa = a.train_round(), sb = b.train_round();
  EXPECT_EQ(sa.fit_loss, sb.fit_loss);
  EXPECT_EQ(sa.val_accuracy == sa.val_accuracy ? sa.val_accuracy : -1, sb.val_accuracy == sb.val_accuracy ? sb.val_accuracy : -1);
  const std::vector<const Segment*> segs = {&floats[0].left, &floats[3].right};
  EXPECT_TRUE(torch::equal(a.segment_returns(segs), b.segment_returns(segs)));
}

TEST(PixelRewardStorage, TheBufferKeepsTheNewestPairsAndResumesExactly) {
  RewardConfig cfg = small_conv_config();
  cfg.max_pairs = 5;
  Rng rng(12);
  const std::vector<LabeledPair> all = pixel_pairs(rng, 13, 4, 2, 12, 12, 100);
  RewardModel model(cfg, {2, 12, 12}, 1, true, 3, false, 6);
  model.add_pairs({all.begin(), all.begin() + 4});
  model.train_round();
  model.add_pairs({all.begin() + 4, all.begin() + 9});
  EXPECT_EQ(model.num_pairs(), 5);
  for (int64_t id : model.validation_label_ids()) EXPECT_GE(id, 104);  // only the newest 5 (104..108) are held
  TempPath tmp;
  model.save(tmp.path);
  // A resumed run loads the checkpoint, then adds every label it had, oldest first.
  RewardModel resumed(cfg, {2, 12, 12}, 1, true, 3, false, 6);
  resumed.load(tmp.path);
  resumed.add_pairs({all.begin(), all.begin() + 9});
  EXPECT_TRUE(torch::equal(resumed.pair_weights(), model.pair_weights()));
  EXPECT_EQ(resumed.validation_flags(), model.validation_flags());
  // Both continue identically, through more evictions.
  model.add_pairs({all.begin() + 9, all.end()});
  resumed.add_pairs({all.begin() + 9, all.end()});
  const RewardTrainStats s1 = model.train_round(), s2 = resumed.train_round();
  EXPECT_EQ(s1.fit_loss, s2.fit_loss);
  EXPECT_EQ(s1.n_train + s1.n_val, 5);
  EXPECT_TRUE(torch::equal(resumed.pair_weights(), model.pair_weights()));
  const std::vector<const Segment*> segs = {&all[12].left};
  EXPECT_TRUE(torch::equal(model.segment_returns(segs), resumed.segment_returns(segs)));
}

TEST(PixelRewardStorage, StatisticsOfTheNewestPairsOnly) {
  RewardConfig cfg = small_conv_config();
  Rng rng(13);
  const std::vector<LabeledPair> all = pixel_pairs(rng, 30, 4, 2, 12, 12);
  RewardConfig few = cfg;
  few.stats_pairs = 10;
  RewardModel a(cfg, {2, 12, 12}, 1, true, 3, false, 2), b(few, {2, 12, 12}, 1, true, 3, false, 2);
  a.add_pairs(all);
  b.add_pairs(all);
  const RewardTrainStats sa = a.train_round(), sb = b.train_round();
  EXPECT_EQ(sa.fit_loss, sb.fit_loss);  // training itself is the same
  EXPECT_NE(sa.train_loss, sb.train_loss);  // the statistics see fewer pairs
  EXPECT_TRUE(std::isfinite(sb.train_loss));
}

TEST(PixelRewardStorage, HiddenInputsAreInvisibleToTheNet) {
  const int64_t C = 2, H = 12, W = 12, D = C * H * W;
  std::vector<int64_t> hidden;  // the top two rows of both frames
  for (int64_t c = 0; c < C; ++c)
    for (int64_t y = 0; y < 2; ++y)
      for (int64_t x = 0; x < W; ++x) hidden.push_back(c * H * W + y * W + x);
  RewardModel model(small_conv_config(), {C, H, W}, 1, true, 3, false, 5);
  model.hide_inputs(hidden);
  EXPECT_THROW(model.hide_inputs({D}), UsageError);
  Rng rng(21);
  std::vector<LabeledPair> pairs = pixel_pairs(rng, 8, 4, C, H, W);
  // Pairs whose clips differ only in the hidden rows: the net cannot tell them apart.
  for (auto& p : pairs) {
    p.right = p.left;
    for (int t = 0; t < p.right.length; ++t)
      for (int64_t j : hidden) p.right.obs_bytes[t * D + j] = static_cast<uint8_t>(255 - p.right.obs_bytes[t * D + j]);
  }
  model.add_pairs(pairs);
  EXPECT_THROW(model.hide_inputs(hidden), RuntimeError);
  model.train_round();
  const std::vector<const Segment*> segs = {&pairs[0].left, &pairs[0].right};
  const torch::Tensor r = model.segment_returns(segs);
  EXPECT_TRUE(torch::equal(r.select(1, 0), r.select(1, 1)));
  Segment shown = pairs[0].right;
  shown.obs_bytes[3 * W] ^= 0xFF;  // a visible pixel (row 3 of frame 0) does change the return
  const std::vector<const Segment*> segs2 = {&pairs[0].left, &shown};
  const torch::Tensor r2 = model.segment_returns(segs2);
  EXPECT_FALSE(torch::equal(r2.select(1, 0), r2.select(1, 1)));
}

}  // namespace
}  // namespace prefrl
