// Scripted teachers: the oracle compares true returns; the noisy teacher sometimes guesses.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "prefrl/core/error.h"
#include "prefrl/core/rng.h"
#include "prefrl/teachers/teacher.h"

namespace prefrl {
namespace {

// A segment whose true rewards sum to `ret` (spread over 4 steps).
Segment with_return(double ret) {
  Segment s;
  s.length = 4;
  s.true_rewards = {static_cast<float>(ret / 4), static_cast<float>(ret / 4), static_cast<float>(ret / 4),
                    static_cast<float>(ret / 4)};
  s.absorbing.assign(4, 0);
  return s;
}

// Random pairs with returns far enough apart that the oracle never says "equal".
std::vector<std::pair<Segment, Segment>> random_pairs(int n, uint64_t seed) {
  Rng rng(seed);
  std::vector<std::pair<Segment, Segment>> out;
  while (static_cast<int>(out.size()) < n) {
    const double a = std::round(rng.uniform(-20, 20)), b = std::round(rng.uniform(-20, 20));
    if (a != b) out.emplace_back(with_return(a), with_return(b));
  }
  return out;
}

TEST(OracleTeacher, HigherTrueReturnWins) {
  OracleTeacher oracle;
  EXPECT_EQ(oracle.name(), "oracle");
  EXPECT_EQ(oracle.answer(with_return(4), with_return(2)), Choice::kLeft);
  EXPECT_EQ(oracle.answer(with_return(-4), with_return(2)), Choice::kRight);
  EXPECT_EQ(oracle.answer(with_return(2), with_return(2)), Choice::kEqual);
}

TEST(OracleTeacher, TieTolerance) {
  OracleTeacher oracle(0.5);
  EXPECT_EQ(oracle.answer(with_return(2.4), with_return(2)), Choice::kEqual);
  EXPECT_EQ(oracle.answer(with_return(2), with_return(2.4)), Choice::kEqual);
  EXPECT_EQ(oracle.answer(with_return(3), with_return(2)), Choice::kLeft);
  EXPECT_EQ(oracle.answer(with_return(1), with_return(2)), Choice::kRight);
  EXPECT_THROW(OracleTeacher(-0.1), UsageError);
  EXPECT_THROW(OracleTeacher(std::nan("")), UsageError);
}

TEST(OracleTeacher, NaNReturnIsAnError) {
  OracleTeacher oracle;
  EXPECT_THROW(oracle.answer(with_return(std::nan("")), with_return(1)), RuntimeError);
}

TEST(NoisyTeacher, ZeroErrorIsTheOracle) {
  OracleTeacher oracle(0.1);
  NoisyTeacher noisy(0.0, 123, 0.1);
  EXPECT_EQ(noisy.name(), "noisy");
  for (const auto& [l, r] : random_pairs(500, 1)) EXPECT_EQ(noisy.answer(l, r), oracle.answer(l, r));
  EXPECT_EQ(noisy.answer(with_return(1), with_return(1.05)), Choice::kEqual);
}

TEST(NoisyTeacher, FullErrorIsACoinFlip) {
  OracleTeacher oracle;
  NoisyTeacher noisy(1.0, 7);
  int agree = 0, lefts = 0;
  const auto pairs = random_pairs(4000, 2);
  for (const auto& [l, r] : pairs) {
    const Choice c = noisy.answer(l, r);
    ASSERT_TRUE(c == Choice::kLeft || c == Choice::kRight);
    agree += c == oracle.answer(l, r);
    lefts += c == Choice::kLeft;
  }
  EXPECT_NEAR(agree / 4000.0, 0.5, 0.04);
  EXPECT_NEAR(lefts / 4000.0, 0.5, 0.04);
}

TEST(NoisyTeacher, PartialErrorAndDeterminism) {
  OracleTeacher oracle;
  NoisyTeacher a(0.2, 99), b(0.2, 99);
  int agree = 0;
  const auto pairs = random_pairs(4000, 3);
  for (const auto& [l, r] : pairs) {
    const Choice c = a.answer(l, r);
    EXPECT_EQ(c, b.answer(l, r));
    agree += c == oracle.answer(l, r);
  }
  EXPECT_NEAR(agree / 4000.0, 0.9, 0.03);  // 80% truthful + half of the 20% guesses
  EXPECT_THROW(NoisyTeacher(1.5, 1), UsageError);
  EXPECT_THROW(NoisyTeacher(-0.1, 1), UsageError);
}

}  // namespace
}  // namespace prefrl
