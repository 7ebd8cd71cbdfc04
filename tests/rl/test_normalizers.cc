// Running statistics, observation normalisation and reward scaling.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "prefrl/core/rng.h"
#include "prefrl/rl/normalizers.h"

namespace prefrl {
namespace {

TEST(RunningMeanStd, MatchesTwoPassMeanAndVariance) {
  const int dim = 3;
  Rng rng(7);
  std::vector<float> all;
  RunningMeanStd rms(dim);
  for (int n : {1, 8, 3, 50, 17, 8}) {  // batches of different sizes and locations
    std::vector<float> batch(n * dim);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < dim; ++j) batch[i * dim + j] = static_cast<float>(rng.normal() * (j + 1) + 10.0 * j + n);
    rms.update(batch.data(), n);
    all.insert(all.end(), batch.begin(), batch.end());
  }
  const int total = static_cast<int>(all.size()) / dim;
  EXPECT_DOUBLE_EQ(rms.count(), total);
  for (int j = 0; j < dim; ++j) {
    double mean = 0, var = 0;
    for (int i = 0; i < total; ++i) mean += all[i * dim + j];
    mean /= total;
    for (int i = 0; i < total; ++i) var += (all[i * dim + j] - mean) * (all[i * dim + j] - mean);
    var /= total;
    EXPECT_NEAR(rms.mean()[j], mean, 1e-10 * std::fabs(mean) + 1e-12);
    EXPECT_NEAR(rms.var()[j], var, 1e-10 * var);
  }
}

TEST(ObsNormalizer, NormalisesAndClips) {
  ObsNormalizer norm(2, true, 3.0);
  const std::vector<float> batch = {0, 10, 2, 14, 4, 18};  // mean (2, 14), var (8/3, 32/3)
  norm.update(batch.data(), 3);
  const std::vector<float> x = {2 + 1.0f, 14 - 100.0f};
  std::vector<float> y(2);
  norm.normalize(x.data(), 1, y.data());
  EXPECT_NEAR(y[0], 1.0 / std::sqrt(8.0 / 3 + 1e-8), 1e-6);
  EXPECT_FLOAT_EQ(y[1], -3.0f);  // clipped
}

TEST(ObsNormalizer, DisabledCopies) {
  ObsNormalizer norm(2, false, 3.0);
  const std::vector<float> x = {5, -50};
  norm.update(x.data(), 1);
  std::vector<float> y(2);
  norm.normalize(x.data(), 1, y.data());
  EXPECT_EQ(y, x);
  EXPECT_EQ(norm.stats().count(), 0.0);
}

TEST(RewardScaler, DividesByStdOfDiscountedReturnsAndResetsAtEpisodeEnd) {
  const double gamma = 0.5;
  RewardScaler scaler(2, gamma, 100.0);
  const std::vector<float> r = {1, 2, 3, 4, 5, 6};     // (T=3 x N=2)
  const std::vector<uint8_t> term = {0, 0, 1, 0, 0, 0};  // env 0 ends at step 1
  const std::vector<uint8_t> trunc = {0, 0, 0, 0, 0, 0};
  std::vector<float> out(6);
  scaler.scale(3, r.data(), term.data(), trunc.data(), out.data());
  // Returns per step: t0 (1, 2); t1 (0.5+3, 1+4) = (3.5, 5); t2 (0+5 after reset, 2.5+6) = (5, 8.5).
  RunningMeanStd ref(1);
  const std::vector<std::vector<float>> rets = {{1, 2}, {3.5f, 5}, {5, 8.5f}};
  for (int t = 0; t < 3; ++t) {
    ref.update(rets[t].data(), 2);
    for (int i = 0; i < 2; ++i)
      EXPECT_NEAR(out[t * 2 + i], r[t * 2 + i] / std::sqrt(ref.var()[0] + 1e-8), 1e-5) << t << "," << i;
  }
  EXPECT_DOUBLE_EQ(scaler.returns()[0], 5.0);
  EXPECT_DOUBLE_EQ(scaler.returns()[1], 8.5);
}

TEST(RewardScaler, NonFiniteRewardStaysOutOfTheStatistics) {
  RewardScaler scaler(2, 0.9, 10.0);
  const std::vector<float> r = {NAN, 1.0f};
  const std::vector<uint8_t> no(2, 0);
  std::vector<float> out(2);
  scaler.scale(1, r.data(), no.data(), no.data(), out.data());
  EXPECT_TRUE(std::isnan(out[0]));
  EXPECT_TRUE(std::isfinite(out[1]));
  EXPECT_DOUBLE_EQ(scaler.stats().count(), 1.0);
  EXPECT_DOUBLE_EQ(scaler.returns()[0], 0.0);  // restarted
  EXPECT_TRUE(std::isfinite(scaler.stats().var()[0]));
}

}  // namespace
}  // namespace prefrl
