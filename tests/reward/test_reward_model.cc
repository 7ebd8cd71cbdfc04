// RewardModel mechanics: shared dropout masks, splits and bootstrap counts, normalisation,
// L2 adaptation, save/load, determinism and input checks.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "prefrl/core/error.h"
#include "reward_test_util.h"

namespace prefrl {
namespace {
using namespace reward_test;

constexpr int64_t kD = 3, kA = 1;
constexpr int kL = 10;

float linear_reward(const float* o, const float*) { return o[0] - 0.5f * o[1] + 0.2f * o[2]; }

// n oracle pairs of random segments (obs 3, action 1, L 10); label ids first_id...
std::vector<LabeledPair> pairs_of(Rng& rng, int n, int64_t first_id = 0) {
  std::vector<LabeledPair> out;
  for (int i = 0; i < n; ++i) {
    Segment a = make_segment(rng, kL, kD, kA, normal_sampler(kD, kA), linear_reward);
    Segment b = make_segment(rng, kL, kD, kA, normal_sampler(kD, kA), linear_reward);
    out.push_back(oracle_pair(std::move(a), std::move(b), first_id + i));
  }
  return out;
}

RewardConfig small_config() {
  RewardConfig cfg;
  cfg.ensemble_size = 3;
  cfg.hidden = {16, 16};
  cfg.epochs_per_round = 5;
  cfg.batch_pairs = 16;
  return cfg;
}

// A temporary file path, removed at scope exit.
struct TempPath {
  std::string path;
  TempPath() {
    char buf[] = "/tmp/prefrl_reward_test_XXXXXX";
    const int fd = mkstemp(buf);
    if (fd >= 0) close(fd);
    path = buf;
  }
  ~TempPath() { std::remove(path.c_str()); }
};

TEST(RewardModelDropout, BothClipsShareTheMask) {
  RewardConfig cfg = small_config();
  cfg.dropout = 0.5;
  cfg.hidden = {32, 32};
  RewardModel model(cfg, {kD}, kA, false, 0, false, 1);
  Rng rng(2);
  std::vector<LabeledPair> pairs = pairs_of(rng, 8);
  for (auto& p : pairs) {
    p.right = p.left;
    p.target = 0.5f;
  }
  auto [left, right] = model.pair_returns(pairs, /*training=*/true);
  auto [eval_left, eval_right] = model.pair_returns(pairs, /*training=*/false);
  ASSERT_EQ(left.sizes(), (std::vector<int64_t>{3, 8}));
  // Same weights, same mask => equal returns for both clips of every pair and member (up to
  // float rounding: GEMM kernels may round rows at different positions differently).
  const double tol = 1e-5 * (1.0 + left.abs().max().item<double>());
  EXPECT_LT((left - right).abs().max().item<double>(), tol) << left << right;
  EXPECT_LT((eval_left - eval_right).abs().max().item<double>(), tol);
  // ...and the masks really were applied: they change returns by far more than the tolerance.
  EXPECT_GT((left - eval_left).abs().max().item<double>(), 1000 * tol);
}

TEST(RewardModelDropout, TiedIdenticalClipsTrainAtExactlyLog2) {
  // If the two clips of a pair saw different dropout masks, R_left != R_right and every
  // minibatch loss would exceed log 2 (the minimum at a target of 1/2).
  for (double eps : {0.0, 0.1}) {
    RewardConfig cfg = small_config();
    cfg.dropout = 0.5;
    cfg.hidden = {32, 32};
    cfg.random_response = eps;
    cfg.val_fraction = 0.0;
    RewardModel model(cfg, {kD}, kA, false, 0, false, 3);
    Rng rng(4);
    std::vector<LabeledPair> pairs = pairs_of(rng, 40);
    for (auto& p : pairs) {
      p.right = p.left;
      p.target = 0.5f;
    }
    model.add_pairs(pairs);
    const RewardTrainStats st = model.train_round();
    EXPECT_GT(st.updates, 0);
    EXPECT_NEAR(st.fit_loss, std::log(2.0), 1e-6) << "eps " << eps;
    EXPECT_NEAR(st.train_loss, std::log(2.0), 1e-6);
  }
}

TEST(RewardModelSplit, ValidationShareIsOneOverE) {
  RewardConfig cfg = small_config();
  cfg.use_action = false;
  RewardModel model(cfg, {1}, 0, false, 0, false, 9);
  std::vector<LabeledPair> pairs(6000);
  for (auto& p : pairs) {
    for (Segment* s : {&p.left, &p.right}) {
      s->length = 1;
      s->obs_size = 1;
      s->obs = {0.5f};
      s->absorbing = {0};
    }
    p.target = 1.0f;
  }
  model.add_pairs(pairs);
  const std::vector<uint8_t> flags = model.validation_flags();
  ASSERT_EQ(flags.size(), pairs.size());
  double held = 0;
  for (uint8_t f : flags) held += f;
  EXPECT_NEAR(held / flags.size(), std::exp(-1.0), 0.02);
}

TEST(RewardModelSplit, BootstrapCountsArePoissonPerMemberAndOnline) {
  RewardConfig cfg = small_config();
  Rng rng(10);
  const std::vector<LabeledPair> pairs = pairs_of(rng, 400);
  RewardModel all_at_once(cfg, {kD}, kA, false, 0, false, 11);
  all_at_once.add_pairs(pairs);
  RewardModel incremental(cfg, {kD}, kA, false, 0, false, 11);
  for (size_t s = 0; s < pairs.size(); s += 37) {
    incremental.add_pairs(std::vector<LabeledPair>(pairs.begin() + s, pairs.begin() + std::min(pairs.size(), s + 37)));
  }
  // Online bootstrap: adding pairs in batches gives each pair the same split and counts.
  EXPECT_TRUE(torch::equal(all_at_once.pair_weights(), incremental.pair_weights()));
  EXPECT_EQ(all_at_once.validation_flags(), incremental.validation_flags());

  const torch::Tensor w = all_at_once.pair_weights();  // (P x M)
  const std::vector<uint8_t> flags = all_at_once.validation_flags();
  std::vector<int64_t> train;
  for (size_t i = 0; i < flags.size(); ++i) {
    if (flags[i]) EXPECT_EQ(w[i].sum().item<float>(), 0.0f);
    else train.push_back(static_cast<int64_t>(i));
  }
  const torch::Tensor wt = w.index_select(0, torch::tensor(train));  // (T x M)
  // Members resample differently; each count has mean 1 and variance 1.
  EXPECT_FALSE(torch::equal(wt.select(1, 0), wt.select(1, 1)));
  EXPECT_FALSE(torch::equal(wt.select(1, 1), wt.select(1, 2)));
  EXPECT_NEAR(wt.mean().item<double>(), 1.0, 0.1);
  EXPECT_NEAR(wt.var().item<double>(), 1.0, 0.15);
  EXPECT_GT((wt == 0).sum().item<int64_t>(), 0);

  cfg.bootstrap = false;
  RewardModel plain(cfg, {kD}, kA, false, 0, false, 11);
  plain.add_pairs(pairs);
  const torch::Tensor pw = plain.pair_weights();
  const std::vector<uint8_t> pflags = plain.validation_flags();
  for (size_t i = 0; i < pflags.size(); ++i) {
    EXPECT_TRUE(torch::equal(pw[i], torch::full({3}, pflags[i] ? 0.0f : 1.0f)));
  }
}

TEST(RewardModelNormalisation, EachMemberHasMeanZeroAndTargetStd) {
  RewardConfig cfg = small_config();
  cfg.output_std = 0.05;
  RewardModel model(cfg, {kD}, kA, false, 0, false, 12);
  Rng rng(13);
  model.add_pairs(pairs_of(rng, 60));
  model.train_round();
  const int64_t n = 1000;
  std::vector<float> obs(n * kD), act(n * kA);
  for (float& x : obs) x = static_cast<float>(3.0 + 2.0 * rng.normal());
  for (float& x : act) x = static_cast<float>(rng.normal());
  model.update_normalisation(obs.data(), act.data(), n);
  const torch::Tensor r = model.member_rewards(obs.data(), act.data(), n).to(torch::kFloat64);  // (M x n)
  ASSERT_EQ(r.sizes(), (std::vector<int64_t>{3, n}));
  for (int m = 0; m < 3; ++m) {
    EXPECT_NEAR(r[m].mean().item<double>(), 0.0, 1e-5);
    EXPECT_NEAR(r[m].std(/*unbiased=*/false).item<double>(), 0.05, 1e-5);
  }
  // predict() is the ensemble mean (no absorbing subtraction: the env cannot terminate).
  std::vector<float> p(n);
  model.predict(obs.data(), act.data(), n, p.data());
  const torch::Tensor mean = r.mean(0);
  for (int64_t i = 0; i < n; i += 97) EXPECT_NEAR(p[i], mean[i].item<double>(), 1e-6);
}

// Over labeled clips of a terminating environment, the normalisation counts the absorbing
// steps exactly when the policy's reward is measured against them (subtract_absorbing): then
// the std over all steps, r̂_abs included, is output_std; otherwise the ordinary steps alone
// have mean 0 and std output_std, whatever r̂_abs is (on pong a few absorbing steps far below
// the rest had shrunk the ordinary steps' r̂ to a tenth of output_std).
TEST(RewardModelNormalisation, AbsorbingStepsCountOnlyWhenThePolicySeesThem) {
  Rng rng(40);
  std::vector<LabeledPair> pairs;
  for (int i = 0; i < 60; ++i) {  // every third clip ends early; an early end is very bad
    auto reward = [](const float* o, const float* a) { return linear_reward(o, a); };
    Segment a = make_segment(rng, kL, kD, kA, normal_sampler(kD, kA), reward, i % 3 == 0 ? 3 : -1);
    Segment b = make_segment(rng, kL, kD, kA, normal_sampler(kD, kA), reward);
    if (i % 3 == 0) std::fill(a.true_rewards.begin(), a.true_rewards.end(), -5.0f);
    pairs.push_back(oracle_pair(std::move(a), std::move(b), i));
  }
  for (const bool subtract : {false, true}) {
    RewardConfig cfg = small_config();
    cfg.output_std = 0.05;
    cfg.subtract_absorbing = subtract;
    RewardModel model(cfg, {kD}, kA, false, 0, /*can_terminate=*/true, 41);
    model.add_pairs(pairs);
    model.train_round();
    model.update_normalisation_on_labeled();
    std::vector<torch::Tensor> ordinary;  // (M x n) per clip, its ordinary steps
    int64_t absorbing = 0;
    for (const LabeledPair& p : pairs)
      for (const Segment* s : {&p.left, &p.right}) {
        int n = 0;
        while (n < s->length && !s->absorbing[n]) ++n;
        absorbing += s->length - n;
        ordinary.push_back(model.member_rewards(s->obs.data(), s->actions.data(), n));
      }
    const torch::Tensor r = torch::cat(ordinary, 1).to(torch::kFloat64);  // (M x K)
    const double abs_v = model.absorbing_value();
    ASSERT_GT(absorbing, 0);
    if (!subtract) {
      for (int m = 0; m < 3; ++m) {
        EXPECT_NEAR(r[m].mean().item<double>(), 0.0, 1e-5);
        EXPECT_NEAR(r[m].std(/*unbiased=*/false).item<double>(), 0.05, 1e-5);
      }
    } else {
      // Per member, mean 0 and std output_std over all steps: the absorbing steps (A of them,
      // value a_m) give sum(r_m) + A a_m = 0 and (sum(r_m^2) + A a_m^2) / N = output_std^2
      // (without them, a_m would come out 0 and the spread output_std * sqrt(K / N)).
      const double A = static_cast<double>(absorbing), N = static_cast<double>(r.size(1)) + A;
      double mean_abs = 0;
      for (int m = 0; m < 3; ++m) {
        const double a_m = -r[m].sum().item<double>() / A;
        mean_abs += a_m / 3;
        EXPECT_NEAR(std::sqrt((r[m].pow(2).sum().item<double>() + A * a_m * a_m) / N), 0.05, 1e-5);
      }
      EXPECT_NEAR(abs_v, mean_abs, 1e-5);
    }
  }
}

TEST(RewardModelPredict, LargeBatchesMatchSmallOnes) {
  RewardConfig cfg = small_config();
  RewardModel model(cfg, {kD}, kA, false, 0, true, 14);
  Rng rng(15);
  const int64_t n = 16384;
  std::vector<float> obs(n * kD), act(n * kA), big(n), small(5);
  for (float& x : obs) x = static_cast<float>(rng.normal());
  for (float& x : act) x = static_cast<float>(rng.normal());
  model.predict(obs.data(), act.data(), n, big.data());
  model.predict(obs.data() + 100 * kD, act.data() + 100 * kA, 5, small.data());
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(big[100 + i], small[i], 1e-5);
}

TEST(RewardModelSegments, ReturnsAndDisagreement) {
  RewardConfig cfg = small_config();
  RewardModel model(cfg, {kD}, kA, false, 0, false, 16);
  Rng rng(17);
  const Segment a = make_segment(rng, 7, kD, kA, normal_sampler(kD, kA), linear_reward);
  const Segment b = make_segment(rng, 12, kD, kA, normal_sampler(kD, kA), linear_reward, 4);
  const torch::Tensor ret = model.segment_returns({&a, &b});  // (M x 2), clips of different lengths
  ASSERT_EQ(ret.sizes(), (std::vector<int64_t>{3, 2}));
  // A segment's return is the sum of its steps' normalised rewards (absorbing steps as absorbing input).
  const torch::Tensor steps = model.member_rewards(a.obs.data(), a.actions.data(), a.length);
  EXPECT_TRUE(torch::allclose(ret.select(1, 0), steps.sum(1), 1e-5, 1e-5));

  const std::vector<double> d = model.disagreement({{&a, &b}, {&a, &a}});
  ASSERT_EQ(d.size(), 2u);
  const torch::Tensor p = torch::sigmoid(ret.select(1, 0) - ret.select(1, 1)).to(torch::kFloat64);
  EXPECT_NEAR(d[0], p.var(/*unbiased=*/false).item<double>(), 1e-7);
  EXPECT_GT(d[0], 0.0);
  EXPECT_EQ(d[1], 0.0);  // a clip against itself: every member says 1/2

  // Entropy (B-Pref's): the members' mean of -p ln p - (1 - p) ln(1 - p).
  const std::vector<double> h = model.pair_entropy({{&a, &b}, {&a, &a}});
  ASSERT_EQ(h.size(), 2u);
  const torch::Tensor pd = torch::sigmoid((ret.select(1, 0) - ret.select(1, 1)).to(torch::kFloat64));
  const double want = (-(pd * pd.log() + (1 - pd) * (1 - pd).log())).mean().item<double>();
  EXPECT_NEAR(h[0], want, 1e-6);
  EXPECT_LT(h[0], std::log(2.0));
  EXPECT_NEAR(h[1], std::log(2.0), 1e-12);  // a clip against itself: the most uncertain
}

TEST(RewardModelL2, AdaptsInTheRightDirection) {
  Rng rng(18);
  const std::vector<LabeledPair> pairs = pairs_of(rng, 80);
  auto l2_after_round = [&](double low, double high, bool adapt, double val_fraction) {
    RewardConfig cfg = small_config();
    cfg.l2_band_low = low;
    cfg.l2_band_high = high;
    cfg.adapt_l2 = adapt;
    cfg.val_fraction = val_fraction;
    cfg.l2_init = 1e-3;
    cfg.l2_factor = 2.0;
    RewardModel model(cfg, {kD}, kA, false, 0, false, 19);
    model.add_pairs(pairs);
    const RewardTrainStats st = model.train_round();
    EXPECT_EQ(st.l2, model.l2());
    return model.l2();
  };
  EXPECT_DOUBLE_EQ(l2_after_round(0.001, 0.01, true, 0.37), 2e-3);   // val/train above band: raise
  EXPECT_DOUBLE_EQ(l2_after_round(50.0, 100.0, true, 0.37), 5e-4);   // below band: lower
  EXPECT_DOUBLE_EQ(l2_after_round(0.001, 0.01, false, 0.37), 1e-3);  // adaptation off
  EXPECT_DOUBLE_EQ(l2_after_round(0.001, 0.01, true, 0.0), 1e-3);    // no validation pairs
}

TEST(RewardModelL2, OverfittingNoiseRaisesL2) {
  // Random labels on few pairs: a wide net memorises the training pairs (train loss falls)
  // while validation loss does not, so val/train leaves the band from above.
  RewardConfig cfg = small_config();
  cfg.hidden = {64, 64};
  cfg.epochs_per_round = 100;
  cfg.lr = 3e-3;
  cfg.l2_init = 1e-4;
  RewardModel model(cfg, {kD}, kA, false, 0, false, 20);
  Rng rng(21);
  std::vector<LabeledPair> pairs = pairs_of(rng, 60);
  for (auto& p : pairs) p.target = rng.bernoulli(0.5) ? 1.0f : 0.0f;
  model.add_pairs(pairs);
  RewardTrainStats st;
  for (int r = 0; r < 4; ++r) st = model.train_round();
  EXPECT_GT(st.val_loss / st.train_loss, 1.5);
  std::printf("overfitting: val/train %.2f, l2 %.2e\n", st.val_loss / st.train_loss, model.l2());
  EXPECT_GT(model.l2(), 1e-4);
}

TEST(RewardModelTrain, NoTrainingPairsReturnsZeros) {
  RewardModel model(small_config(), {kD}, kA, false, 0, false, 22);
  const RewardTrainStats st = model.train_round();
  EXPECT_EQ(st.updates, 0);
  EXPECT_EQ(st.n_train, 0);
  EXPECT_EQ(st.train_loss, 0.0);
  EXPECT_EQ(st.val_loss, 0.0);
  EXPECT_EQ(st.train_accuracy, 0.0);
  EXPECT_EQ(st.val_accuracy, 0.0);
  EXPECT_TRUE(std::isnan(model.validation_accuracy()));
}

TEST(RewardModelTrain, UpdatesAreCappedPerRound) {
  RewardConfig cfg = small_config();
  cfg.epochs_per_round = 1000;
  cfg.max_updates_per_round = 7;
  RewardModel model(cfg, {kD}, kA, false, 0, false, 23);
  Rng rng(24);
  model.add_pairs(pairs_of(rng, 50));
  EXPECT_EQ(model.train_round().updates, 7);
}

TEST(RewardModelTrain, SameSeedSameResults) {
  Rng rng(25);
  const std::vector<LabeledPair> pairs = pairs_of(rng, 60);
  RewardConfig cfg = small_config();
  cfg.dropout = 0.2;
  auto run = [&](uint64_t seed) {
    RewardModel model(cfg, {kD}, kA, false, 0, true, seed);
    model.add_pairs(pairs);
    std::vector<double> out;
    for (int r = 0; r < 2; ++r) {
      const RewardTrainStats st = model.train_round();
      for (double v : {st.train_loss, st.val_loss, st.train_accuracy, st.val_accuracy, st.l2, st.fit_loss}) out.push_back(v);
    }
    std::vector<float> r(5);
    model.predict(pairs[0].left.obs.data(), pairs[0].left.actions.data(), 5, r.data());
    out.insert(out.end(), r.begin(), r.end());
    return out;
  };
  const std::vector<double> a = run(26), b = run(26), c = run(27);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(RewardModelCheckpoint, SaveLoadRoundTrip) {
  Rng rng(28);
  const std::vector<LabeledPair> pairs = pairs_of(rng, 80);
  RewardConfig cfg = small_config();
  cfg.dropout = 0.1;
  RewardModel a(cfg, {kD}, kA, false, 0, true, 29);
  a.add_pairs(pairs);
  a.train_round();
  const int64_t n = 64;
  std::vector<float> obs(n * kD), act(n * kA);
  for (float& x : obs) x = static_cast<float>(rng.normal());
  for (float& x : act) x = static_cast<float>(rng.normal());
  a.update_normalisation(obs.data(), act.data(), n);
  TempPath file;
  a.save(file.path);

  // A model with another seed that already holds the pairs takes over the saved splits.
  RewardModel b(cfg, {kD}, kA, false, 0, true, 999);
  b.add_pairs(pairs);
  ASSERT_NE(a.validation_flags(), b.validation_flags());
  b.load(file.path);
  EXPECT_EQ(a.validation_flags(), b.validation_flags());
  EXPECT_TRUE(torch::equal(a.pair_weights(), b.pair_weights()));
  std::vector<float> pa(n), pb(n);
  a.predict(obs.data(), act.data(), n, pa.data());
  b.predict(obs.data(), act.data(), n, pb.data());
  EXPECT_EQ(0, std::memcmp(pa.data(), pb.data(), sizeof(float) * n));
  EXPECT_EQ(a.l2(), b.l2());

  // A fresh model loaded before the pairs are re-added (resuming from the database) gets
  // them back in the saved split; training then continues exactly as the original does.
  RewardModel c(cfg, {kD}, kA, false, 0, true, 1234);
  c.load(file.path);
  c.add_pairs(pairs);
  EXPECT_EQ(a.validation_flags(), c.validation_flags());
  const RewardTrainStats sa = a.train_round(), sb = b.train_round(), sc = c.train_round();
  EXPECT_EQ(sa.train_loss, sb.train_loss);
  EXPECT_EQ(sa.val_loss, sb.val_loss);
  EXPECT_EQ(sa.fit_loss, sc.fit_loss);
  EXPECT_EQ(sa.train_loss, sc.train_loss);
  EXPECT_EQ(sa.val_loss, sc.val_loss);
  // New pairs after the load draw from the restored split RNG, as the original does.
  const std::vector<LabeledPair> more = pairs_of(rng, 30, 1000);
  a.add_pairs(more);
  c.add_pairs(more);
  EXPECT_EQ(a.validation_flags(), c.validation_flags());
  EXPECT_TRUE(torch::equal(a.pair_weights(), c.pair_weights()));
}

TEST(RewardModelCheckpoint, MismatchedOrMissingCheckpointIsAnError) {
  RewardConfig cfg = small_config();
  RewardModel a(cfg, {kD}, kA, false, 0, false, 30);
  TempPath file;
  a.save(file.path);
  cfg.hidden = {8};
  RewardModel other(cfg, {kD}, kA, false, 0, false, 30);
  EXPECT_THROW(other.load(file.path), RuntimeError);
  EXPECT_THROW(a.load("/nonexistent/dir/reward.pt"), RuntimeError);
  EXPECT_THROW(a.save("/nonexistent/dir/reward.pt"), RuntimeError);
}

// Checkpoints written before reward.standardise_inputs existed have no input statistics; they
// load as a model without them (their runs could not have used it) and predict as saved.
TEST(RewardModelCheckpoint, CheckpointsWithoutInputStatisticsStillLoad) {
  Rng rng(43);
  RewardModel a(small_config(), {kD}, kA, false, 0, false, 30);
  a.add_pairs(pairs_of(rng, 40));
  a.train_round();
  TempPath full, old;
  a.save(full.path);
  torch::serialize::InputArchive in;
  in.load_from(full.path);
  torch::serialize::OutputArchive out;
  int kept = 0;
  for (const std::string& key : in.keys()) {
    if (key == "input_mean" || key == "input_inv_std") continue;
    torch::Tensor t;
    in.read(key, t);
    out.write(key, t);
    ++kept;
  }
  ASSERT_EQ(kept + 2, static_cast<int>(in.keys().size()));
  out.save_to(old.path);
  RewardModel b(small_config(), {kD}, kA, false, 0, false, 31);
  ASSERT_NO_THROW(b.load(old.path));
  std::vector<float> obs(16 * kD), act(16 * kA), pa(16), pb(16);
  for (float& x : obs) x = static_cast<float>(rng.normal());
  for (float& x : act) x = static_cast<float>(rng.normal());
  a.predict(obs.data(), act.data(), 16, pa.data());
  b.predict(obs.data(), act.data(), 16, pb.data());
  for (int i = 0; i < 16; ++i) EXPECT_FLOAT_EQ(pa[i], pb[i]);
}

// standardise_inputs: the net sees (x - mean) / std of the first labeled batch, so rescaling any
// input leaves what the model learns unchanged (up to float rounding); without it,
// the same rescaling changes the model. The statistics come back from a checkpoint, not from
// the pairs re-added after it.
TEST(RewardModelInputs, StandardisedInputsMakeLearningInvariantToEachInputsScale) {
  Rng rng(41);
  const std::vector<LabeledPair> pairs = pairs_of(rng, 80);
  // Power-of-two scales keep the rescaled inputs exact in float (a shift would round them, and
  // training amplifies that rounding to a few per cent), so only the statistics round.
  const float scale[kD + kA] = {1024.0f, 0.0078125f, 4.0f, 0.0625f};
  auto transform = [&](std::vector<float>* obs, std::vector<float>* act) {
    for (size_t i = 0; i < obs->size(); ++i) (*obs)[i] *= scale[i % kD];
    for (float& a : *act) a *= scale[kD];
  };
  std::vector<LabeledPair> moved = pairs;
  for (LabeledPair& p : moved) {
    for (Segment* s : {&p.left, &p.right}) transform(&s->obs, &s->actions);
  }
  const int64_t n = 256;
  std::vector<float> obs(n * kD), act(n * kA);
  for (float& x : obs) x = static_cast<float>(rng.normal());
  for (float& x : act) x = static_cast<float>(rng.normal());
  std::vector<float> obs_moved = obs, act_moved = act;
  transform(&obs_moved, &act_moved);

  RewardConfig cfg = small_config();
  cfg.standardise_inputs = true;
  RewardModel a(cfg, {kD}, kA, false, 0, false, 42), b(cfg, {kD}, kA, false, 0, false, 42);
  a.add_pairs(pairs);
  b.add_pairs(moved);
  a.train_round();
  b.train_round();
  std::vector<float> pa(n), pb(n);
  a.predict(obs.data(), act.data(), n, pa.data());
  b.predict(obs_moved.data(), act_moved.data(), n, pb.data());
  double spread = 0, worst = 0;
  for (int64_t i = 0; i < n; ++i) {
    spread = std::max(spread, std::abs(static_cast<double>(pa[i])));
    worst = std::max(worst, std::abs(static_cast<double>(pa[i]) - pb[i]));
  }
  ASSERT_GT(spread, 0.1);  // the model learned something
  EXPECT_LT(worst, 1e-3 * spread) << "spread " << spread;

  cfg.standardise_inputs = false;
  RewardModel raw(cfg, {kD}, kA, false, 0, false, 42);
  raw.add_pairs(moved);
  raw.train_round();
  std::vector<float> pr(n);
  raw.predict(obs_moved.data(), act_moved.data(), n, pr.data());
  double off = 0;
  for (int64_t i = 0; i < n; ++i) off = std::max(off, std::abs(static_cast<double>(pa[i]) - pr[i]));
  EXPECT_GT(off, 0.1 * spread) << "spread " << spread << ", worst " << worst;

  TempPath file;
  b.save(file.path);
  cfg.standardise_inputs = true;
  RewardModel c(cfg, {kD}, kA, false, 0, false, 7);
  c.load(file.path);
  std::vector<LabeledPair> all = moved;
  for (LabeledPair& p : pairs_of(rng, 20, 500)) {  // a later batch from elsewhere: stats stay
    for (Segment* s : {&p.left, &p.right}) {
      for (float& x : s->obs) x = 50.0f * x - 7.0f;
    }
    all.push_back(std::move(p));
  }
  c.add_pairs(all);
  std::vector<float> pc(n);
  c.predict(obs_moved.data(), act_moved.data(), n, pc.data());
  EXPECT_EQ(0, std::memcmp(pb.data(), pc.data(), sizeof(float) * n));
}

TEST(RewardModelInputs, StandardisingIsRefusedForPixelObservations) {
  RewardConfig cfg = small_config();
  cfg.standardise_inputs = true;
  EXPECT_THROW(RewardModel(cfg, {1, 16, 16}, 1, false, 0, false, 1), UsageError);
  EXPECT_NO_THROW(RewardModel(cfg, {kD}, kA, false, 0, false, 1));
}

TEST(RewardModelInputs, BadPairsAreRejectedWithoutStoringAnything) {
  RewardModel model(small_config(), {kD}, kA, false, 0, false, 31);
  Rng rng(32);
  std::vector<LabeledPair> pairs = pairs_of(rng, 3);
  model.add_pairs({pairs[0]});
  std::vector<LabeledPair> bad = {pairs[1], pairs[2]};
  bad[1].right.obs.pop_back();
  EXPECT_THROW(model.add_pairs(bad), UsageError);
  bad = {pairs[1], pairs[2]};
  bad[1].right.obs[4] = std::nanf("");
  EXPECT_THROW(model.add_pairs(bad), UsageError);
  bad = {pairs[1], pairs[2]};
  bad[1].target = -1.0f;
  EXPECT_THROW(model.add_pairs(bad), UsageError);
  // Clips must all have the first pair's length.
  Segment shorter = make_segment(rng, kL - 1, kD, kA, normal_sampler(kD, kA), linear_reward);
  bad = {pairs[1], oracle_pair(shorter, shorter, 9)};
  EXPECT_THROW(model.add_pairs(bad), UsageError);
  EXPECT_EQ(model.num_pairs(), 1);

  RewardConfig dcfg = small_config();
  RewardModel discrete(dcfg, {2}, 1, true, 3, false, 33);
  const float obs[2] = {0.0f, 0.0f};
  const float bad_action = 3.0f;
  float out = 0;
  EXPECT_THROW(discrete.predict(obs, &bad_action, 1, &out), UsageError);
  EXPECT_THROW(RewardModel(dcfg, {2}, 2, true, 3, false, 33), UsageError);
}

TEST(RewardModelInputs, ConvStridesAndKernelsNeedOneEntryPerConvAndShapeTheMaps) {
  RewardConfig cfg = small_config();
  cfg.conv_channels = {4, 4};
  cfg.conv_strides = {2};
  EXPECT_THROW(RewardModel(cfg, {1, 16, 16}, 1, false, 0, false, 1), UsageError);
  cfg.conv_strides = {8, 8};  // 16 -> 2 -> 1: still a map
  EXPECT_NO_THROW(RewardModel(cfg, {1, 16, 16}, 1, false, 0, false, 1));
  cfg.conv_channels = {4, 4, 4};
  cfg.conv_strides = {8, 8, 8};  // ... -> 1 -> 1 with padding: allowed
  EXPECT_NO_THROW(RewardModel(cfg, {1, 16, 16}, 1, false, 0, false, 1));
  // A stride-1 last conv keeps the 8x8 map of the first conv: the flattened cnn head sees
  // 4 * 8 * 8 features instead of 4 * 4 * 4, so predictions differ from the default net's.
  cfg.conv_channels = {4, 4};
  cfg.conv_strides = {2, 1};
  RewardModel s1(cfg, {1, 16, 16}, 1, false, 0, false, 5);
  cfg.conv_strides = {};
  RewardModel s2(cfg, {1, 16, 16}, 1, false, 0, false, 5);
  std::vector<float> img(256, 0.0f);
  for (int i = 100; i < 110; ++i) img[i] = 1.0f;
  const float act = 0.0f;
  float r1 = 0, r2 = 0;
  s1.predict(img.data(), &act, 1, &r1);
  s2.predict(img.data(), &act, 1, &r2);
  EXPECT_TRUE(std::isfinite(r1) && std::isfinite(r2));
  EXPECT_NE(r1, r2);
  // Kernels: one odd size per conv; a 1x1 stride-1 conv keeps the full 16x16 map.
  cfg.conv_kernels = {1};
  EXPECT_THROW(RewardModel(cfg, {1, 16, 16}, 1, false, 0, false, 1), UsageError);
  cfg.conv_kernels = {3, 2};
  EXPECT_THROW(RewardModel(cfg, {1, 16, 16}, 1, false, 0, false, 1), UsageError);
  cfg.conv_channels = {2};
  cfg.conv_kernels = {1};
  cfg.conv_strides = {1};
  cfg.pixel_encoder = "keypoints";
  RewardModel k1(cfg, {1, 16, 16}, 1, false, 0, false, 5);
  float r3 = 0;
  k1.predict(img.data(), &act, 1, &r3);
  EXPECT_TRUE(std::isfinite(r3));
}


// reward.form=potential: r̂(o) = phi(newest frame) - phi(previous frame) for every member.
RewardConfig potential_config(const std::string& encoder) {
  RewardConfig cfg = small_config();
  cfg.form = "potential";
  cfg.use_action = false;
  cfg.pixel_encoder = encoder;
  cfg.conv_channels = {2};
  cfg.conv_kernels = {1};
  cfg.conv_strides = {1};
  cfg.output_std = 1.0;  // with the initial normalisation (mean 0, std 1) outputs are raw
  return cfg;
}

// An observation (2 x 8 x 8) stacking frames a (newest) and b.
std::vector<float> two_frames(const std::vector<float>& a, const std::vector<float>& b) {
  std::vector<float> o(a);
  o.insert(o.end(), b.begin(), b.end());
  return o;
}

TEST(RewardModelPotential, RewardIsAPotentialDifferenceThatTelescopes) {
  for (const std::string encoder : {"keypoints", "cnn"}) {
    SCOPED_TRACE(encoder);
    RewardModel model(potential_config(encoder), {2, 8, 8}, 1, true, 5, false, 7);
    Rng rng(3);
    std::vector<std::vector<float>> f(3, std::vector<float>(64));
    for (auto& frame : f)
      for (float& v : frame) v = static_cast<float>(rng.uniform());
    std::vector<float> obs;
    for (auto [i, j] : std::vector<std::pair<int, int>>{{0, 0}, {1, 0}, {0, 1}, {2, 1}, {2, 0}}) {
      const std::vector<float> o = two_frames(f[i], f[j]);
      obs.insert(obs.end(), o.begin(), o.end());
    }
    const std::vector<float> act(5, 0.0f);
    const torch::Tensor r = model.member_rewards(obs.data(), act.data(), 5);  // (M x 5)
    ASSERT_EQ(r.size(0), 3);
    for (int64_t m = 0; m < 3; ++m) {
      const auto v = r[m];
      EXPECT_EQ(v[0].item<float>(), 0.0f) << "an unchanged frame is worth exactly 0";
      EXPECT_NE(v[1].item<float>(), 0.0f);
      EXPECT_FLOAT_EQ(v[2].item<float>(), -v[1].item<float>()) << "moving back undoes the gain";
      // phi(2) - phi(1) + phi(1) - phi(0) = phi(2) - phi(0)
      EXPECT_NEAR(v[3].item<float>() + v[1].item<float>(), v[4].item<float>(), 1e-5);
    }
  }
}

TEST(RewardModelPotential, MisuseIsAUsageError) {
  RewardConfig cfg = potential_config("keypoints");
  EXPECT_NO_THROW(RewardModel(cfg, {2, 8, 8}, 1, true, 5, false, 1));
  EXPECT_THROW(RewardModel(cfg, {3, 8, 8}, 1, true, 5, false, 1), UsageError);  // odd channel count
  EXPECT_THROW(RewardModel(cfg, {4}, 1, true, 5, false, 1), UsageError);        // not pixels
  cfg.use_action = true;
  EXPECT_THROW(RewardModel(cfg, {2, 8, 8}, 1, true, 5, false, 1), UsageError);
  cfg = potential_config("keypoints");
  cfg.conv_channels = {};
  EXPECT_THROW(RewardModel(cfg, {2, 8, 8}, 1, true, 5, false, 1), UsageError);  // no conv trunk
  cfg = potential_config("keypoints");
  cfg.form = "delta";
  EXPECT_THROW(RewardModel(cfg, {2, 8, 8}, 1, true, 5, false, 1), UsageError);
}

}  // namespace
}  // namespace prefrl
