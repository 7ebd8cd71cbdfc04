// select_pairs (uniform and disagreement) and LabelSchedule.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <utility>
#include <vector>

#include "prefrl/core/error.h"
#include "prefrl/prefs/query_selection.h"

namespace prefrl {
namespace {

SegmentPool make_pool(int n) {
  SegmentPool pool(1000);
  for (int i = 0; i < n; ++i) {
    Segment s;
    s.env_step = i;
    pool.add(s);
  }
  return pool;
}

// Checks pairs are of distinct in-range segments and pairwise distinct as unordered pairs.
void expect_valid(const std::vector<CandidatePair>& pairs, size_t n) {
  std::set<std::pair<size_t, size_t>> seen;
  for (const auto& p : pairs) {
    EXPECT_LT(p.left, n);
    EXPECT_LT(p.right, n);
    EXPECT_NE(p.left, p.right);
    EXPECT_TRUE(seen.insert({std::min(p.left, p.right), std::max(p.left, p.right)}).second)
        << "duplicate pair " << p.left << "," << p.right;
  }
}

// A deterministic score per unordered pair.
double pair_score(size_t a, size_t b) {
  const size_t lo = std::min(a, b), hi = std::max(a, b);
  return std::fmod(lo * 7.31 + hi * 3.17, 5.0);
}

TEST(SelectPairs, UniformIsValidAndDeterministic) {
  const SegmentPool pool = make_pool(10);
  Rng a(3), b(3), c(4);
  const auto pa = select_pairs(pool, 12, "uniform", 1.0, nullptr, a);
  const auto pb = select_pairs(pool, 12, "uniform", 1.0, nullptr, b);
  const auto pc = select_pairs(pool, 12, "uniform", 1.0, nullptr, c);
  ASSERT_EQ(pa.size(), 12u);
  expect_valid(pa, 10);
  ASSERT_EQ(pb.size(), 12u);
  bool differs = false;
  for (size_t i = 0; i < pa.size(); ++i) {
    EXPECT_EQ(pa[i].left, pb[i].left);
    EXPECT_EQ(pa[i].right, pb[i].right);
    EXPECT_EQ(pa[i].score, 0.0);
    differs |= pa[i].left != pc[i].left || pa[i].right != pc[i].right;
  }
  EXPECT_TRUE(differs);
}

TEST(SelectPairs, SmallPoolsAndLargeCounts) {
  Rng rng(1);
  EXPECT_TRUE(select_pairs(make_pool(0), 5, "uniform", 1.0, nullptr, rng).empty());
  EXPECT_TRUE(select_pairs(make_pool(1), 5, "uniform", 1.0, nullptr, rng).empty());
  EXPECT_TRUE(select_pairs(make_pool(5), 0, "uniform", 1.0, nullptr, rng).empty());
  const auto two = select_pairs(make_pool(2), 5, "uniform", 1.0, nullptr, rng);
  ASSERT_EQ(two.size(), 1u);
  expect_valid(two, 2);
  const auto all = select_pairs(make_pool(5), 100, "uniform", 1.0, nullptr, rng);
  EXPECT_EQ(all.size(), 10u);  // every pair of 5 segments, once
  expect_valid(all, 5);
  const auto dense = select_pairs(make_pool(6), 14, "uniform", 1.0, nullptr, rng);
  EXPECT_EQ(dense.size(), 14u);
  expect_valid(dense, 6);
  // Left/right order is randomised: both orders occur.
  bool left_smaller = false, left_larger = false;
  for (const auto& p : all) (p.left < p.right ? left_smaller : left_larger) = true;
  EXPECT_TRUE(left_smaller && left_larger);
}

TEST(SelectPairs, DisagreementKeepsTheTopScoredCandidates) {
  const SegmentPool pool = make_pool(40);
  std::vector<CandidatePair> seen;
  DisagreementFn fn = [&](const SegmentPool& p, const std::vector<CandidatePair>& c) {
    EXPECT_EQ(&p, &pool);
    seen = c;
    std::vector<double> s;
    for (const auto& x : c) s.push_back(pair_score(x.left, x.right));
    return s;
  };
  Rng rng(11);
  const auto top = select_pairs(pool, 8, "disagreement", 10.0, fn, rng);
  ASSERT_EQ(seen.size(), 80u);
  expect_valid(seen, 40);
  ASSERT_EQ(top.size(), 8u);
  std::vector<double> scores;
  for (const auto& c : seen) scores.push_back(pair_score(c.left, c.right));
  std::sort(scores.rbegin(), scores.rend());
  for (size_t i = 0; i < top.size(); ++i) {
    EXPECT_DOUBLE_EQ(top[i].score, scores[i]);
    EXPECT_DOUBLE_EQ(top[i].score, pair_score(top[i].left, top[i].right));
  }
  Rng again(11);
  const auto top2 = select_pairs(pool, 8, "disagreement", 10.0, fn, again);
  for (size_t i = 0; i < top.size(); ++i) {
    EXPECT_EQ(top[i].left, top2[i].left);
    EXPECT_EQ(top[i].right, top2[i].right);
  }
}

TEST(SelectPairs, DisagreementTiesKeepSamplingOrderAndOversampleIsCapped) {
  const SegmentPool pool = make_pool(30);
  std::vector<CandidatePair> seen;
  DisagreementFn flat = [&](const SegmentPool&, const std::vector<CandidatePair>& c) {
    seen = c;
    return std::vector<double>(c.size(), 1.0);
  };
  Rng rng(5);
  const auto out = select_pairs(pool, 6, "disagreement", 4.0, flat, rng);
  ASSERT_EQ(out.size(), 6u);
  for (size_t i = 0; i < out.size(); ++i) {
    EXPECT_EQ(out[i].left, seen[i].left);
    EXPECT_EQ(out[i].right, seen[i].right);
  }
  // Oversampling beyond all 15 pairs of 6 segments scores every pair once: the global top.
  const SegmentPool small = make_pool(6);
  DisagreementFn fn = [&](const SegmentPool&, const std::vector<CandidatePair>& c) {
    seen = c;
    std::vector<double> s;
    for (const auto& x : c) s.push_back(pair_score(x.left, x.right));
    return s;
  };
  const auto best = select_pairs(small, 3, "disagreement", 100.0, fn, rng);
  EXPECT_EQ(seen.size(), 15u);
  std::vector<double> all;
  for (size_t i = 0; i < 6; ++i)
    for (size_t j = i + 1; j < 6; ++j) all.push_back(pair_score(i, j));
  std::sort(all.rbegin(), all.rend());
  ASSERT_EQ(best.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_DOUBLE_EQ(best[i].score, all[i]);
}

TEST(SelectPairs, BadArguments) {
  const SegmentPool pool = make_pool(10);
  Rng rng(1);
  EXPECT_THROW(select_pairs(pool, 3, "random", 1.0, nullptr, rng), UsageError);
  EXPECT_THROW(select_pairs(pool, 3, "disagreement", 4.0, nullptr, rng), UsageError);
  EXPECT_THROW(select_pairs(pool, -1, "uniform", 1.0, nullptr, rng), UsageError);
  DisagreementFn fn = [](const SegmentPool&, const std::vector<CandidatePair>&) { return std::vector<double>(1, 0.0); };
  EXPECT_THROW(select_pairs(pool, 3, "disagreement", 0.5, fn, rng), UsageError);
  EXPECT_THROW(select_pairs(pool, 3, "disagreement", 4.0, fn, rng), RuntimeError);
}

TEST(LabelSchedule, EndpointsAndMonotoneForAllKinds) {
  for (const char* kind : {"hyperbolic", "constant", "all_upfront"}) {
    for (double horizon : {1e3, 2e6}) {
      LabelSchedule s;
      s.kind = kind;
      s.total_labels = 200;
      s.initial_fraction = 0.1;
      s.horizon = horizon;
      s.total_steps = 100000;
      const int init = s.initial_labels();
      EXPECT_EQ(init, std::string(kind) == "all_upfront" ? 200 : 20) << kind;
      EXPECT_EQ(s.target_labels(0), init) << kind;
      EXPECT_EQ(s.target_labels(s.total_steps), 200) << kind;
      EXPECT_EQ(s.target_labels(s.total_steps - 1), std::string(kind) == "all_upfront" ? 200 : 199) << kind;
      EXPECT_EQ(s.target_labels(10 * s.total_steps), 200) << kind;
      int prev = s.target_labels(0);
      for (int64_t T = 0; T <= s.total_steps; T += 37) {
        const int n = s.target_labels(T);
        EXPECT_GE(n, prev) << kind << " T=" << T;
        EXPECT_LE(n, 200);
        prev = n;
      }
    }
  }
}

TEST(LabelSchedule, HyperbolicFollowsTheLogCurve) {
  LabelSchedule s;
  s.kind = "hyperbolic";
  s.total_labels = 1000;
  s.initial_fraction = 0.2;
  s.horizon = 5000;
  s.total_steps = 100000;
  EXPECT_EQ(s.initial_labels(), 200);
  for (int64_t T : {1, 100, 5000, 20000, 77777}) {
    const double frac = std::log((T + 5000.0) / 5000.0) / std::log((100000 + 5000.0) / 5000.0);
    EXPECT_EQ(s.target_labels(T), 200 + static_cast<int>(std::floor(800 * frac))) << T;
  }
  // Front-loaded compared with the constant schedule.
  LabelSchedule c = s;
  c.kind = "constant";
  EXPECT_GT(s.target_labels(50000), c.target_labels(50000));
  EXPECT_EQ(c.target_labels(50000), 200 + 400);
  EXPECT_EQ(c.target_labels(25000), 200 + 200);
}

TEST(LabelSchedule, InitialLabelsRounding) {
  LabelSchedule s;
  s.total_labels = 5;
  s.initial_fraction = 0.01;
  EXPECT_EQ(s.initial_labels(), 1);  // at least one when the fraction is positive
  s.initial_fraction = 0.0;
  EXPECT_EQ(s.initial_labels(), 0);
  EXPECT_EQ(s.target_labels(0), 0);
  s.initial_fraction = 0.5;
  EXPECT_EQ(s.initial_labels(), 3);  // round(2.5) = 3 (half away from zero)
  s.initial_fraction = 1.0;
  EXPECT_EQ(s.initial_labels(), 5);
  s.total_labels = 0;
  EXPECT_EQ(s.initial_labels(), 0);
  EXPECT_EQ(s.target_labels(s.total_steps), 0);
  LabelSchedule bad;
  bad.kind = "linear";
  EXPECT_THROW(bad.initial_labels(), UsageError);
  bad.kind = "hyperbolic";
  bad.horizon = 0;
  EXPECT_THROW(bad.target_labels(10), UsageError);
  bad.horizon = 1e6;
  bad.initial_fraction = 1.5;
  EXPECT_THROW(bad.initial_labels(), UsageError);
}

}  // namespace
}  // namespace prefrl
