// select_pairs (uniform, disagreement, entropy, the k-center schemes) and LabelSchedule.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <string>
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

// A pool of one-step clips with one observation value each.
SegmentPool valued_pool(const std::vector<float>& values) {
  SegmentPool pool(1000);
  for (size_t i = 0; i < values.size(); ++i) {
    Segment s;
    s.env_step = static_cast<int64_t>(i);
    s.length = 1;
    s.obs_size = 1;
    s.act_size = 1;
    s.obs = {values[i]};
    s.actions = {0.f};
    s.true_rewards = {0.f};
    s.absorbing = {0};
    pool.add(s);
  }
  return pool;
}

// The candidates select_pairs draws with this seed, oversample and count (seen through a
// disagreement scorer: every informed method samples them the same way).
std::vector<CandidatePair> candidates(const SegmentPool& pool, int count, double oversample, uint64_t seed) {
  std::vector<CandidatePair> seen;
  DisagreementFn capture = [&](const SegmentPool&, const std::vector<CandidatePair>& c) {
    seen = c;
    return std::vector<double>(c.size(), 0.0);
  };
  Rng rng(seed);
  select_pairs(pool, count, "disagreement", oversample, capture, rng);
  return seen;
}

// Greedy k-center, written out the obvious way: the reference the method must match.
std::vector<std::pair<size_t, size_t>> reference_kcenter(const SegmentPool& pool, std::vector<CandidatePair> cands,
                                                         size_t want, std::vector<std::vector<float>> centres) {
  std::vector<std::pair<size_t, size_t>> out;
  while (out.size() < want) {
    double best_d = -1;
    size_t best = 0;
    for (size_t i = 0; i < cands.size(); ++i) {
      const std::vector<float> f = pair_features(pool.at(cands[i].left), pool.at(cands[i].right));
      double nearest = std::numeric_limits<double>::infinity();
      for (const auto& c : centres) {
        double d = 0;
        for (size_t k = 0; k < f.size(); ++k) d += (static_cast<double>(f[k]) - c[k]) * (static_cast<double>(f[k]) - c[k]);
        nearest = std::min(nearest, d);
      }
      if (nearest > best_d) { best_d = nearest; best = i; }
    }
    out.emplace_back(cands[best].left, cands[best].right);
    centres.push_back(pair_features(pool.at(cands[best].left), pool.at(cands[best].right)));
    cands.erase(cands.begin() + static_cast<std::ptrdiff_t>(best));
  }
  return out;
}

TEST(SelectPairs, PairFeaturesAreTheLeftClipsObservationsThenTheRights) {
  const SegmentPool pool = valued_pool({0.5f, 2.f});
  EXPECT_EQ(pair_features(pool.at(0), pool.at(1)), (std::vector<float>{0.5f, 2.f}));
  EXPECT_EQ(pair_features(pool.at(1), pool.at(0)), (std::vector<float>{2.f, 0.5f}));
}

TEST(SelectPairs, KCenterPicksTheFarthestFromTheLabeledPairs) {
  // Clips 0, 0.1, 0.2 and 100; the one labeled pair sits at (0, 0). All 6 pairs are candidates.
  const SegmentPool pool = valued_pool({0.f, 0.1f, 0.2f, 100.f});
  const std::vector<std::vector<float>> labeled = {{0.f, 0.f}};
  QueryScorer scorer;
  scorer.labeled = &labeled;
  Rng rng(3);
  const auto out = select_pairs(pool, 1, "kcenter", 100.0, scorer, rng);
  ASSERT_EQ(out.size(), 1u);
  // The farthest: 100 with 0.2 (either order), at sqrt(100^2 + 0.2^2).
  EXPECT_EQ(std::set<size_t>({out[0].left, out[0].right}), (std::set<size_t>{2, 3}));
  EXPECT_NEAR(out[0].score, std::sqrt(100.0 * 100.0 + 0.2 * 0.2), 1e-4);
  // Several picks, from many labeled pairs, match the written-out greedy.
  std::vector<float> values;
  Rng v(8);
  for (int i = 0; i < 30; ++i) values.push_back(static_cast<float>(v.normal()));
  const SegmentPool big = valued_pool(values);
  std::vector<std::vector<float>> many;
  for (int i = 0; i < 12; ++i) many.push_back({static_cast<float>(v.normal()), static_cast<float>(v.normal())});
  scorer.labeled = &many;
  Rng a(21);
  const auto picked = select_pairs(big, 6, "kcenter", 10.0, scorer, a);
  const auto want = reference_kcenter(big, candidates(big, 6, 10.0, 21), 6, many);
  ASSERT_EQ(picked.size(), 6u);
  expect_valid(picked, 30);
  for (size_t i = 0; i < 6; ++i) EXPECT_EQ(std::make_pair(picked[i].left, picked[i].right), want[i]) << i;
  for (size_t i = 1; i < 6; ++i) EXPECT_LE(picked[i].score, picked[i - 1].score + 1e-9);  // farthest first
  // No labeled pairs yet: the first candidate drawn is the first centre.
  scorer.labeled = nullptr;
  Rng b(21);
  const auto fresh = select_pairs(big, 6, "kcenter", 10.0, scorer, b);
  const auto cands = candidates(big, 6, 10.0, 21);
  EXPECT_EQ(fresh[0].left, cands[0].left);
  EXPECT_EQ(fresh[0].right, cands[0].right);
  std::vector<CandidatePair> rest(cands.begin() + 1, cands.end());
  const auto after = reference_kcenter(big, rest, 5, {pair_features(big.at(cands[0].left), big.at(cands[0].right))});
  for (size_t i = 1; i < 6; ++i) EXPECT_EQ(std::make_pair(fresh[i].left, fresh[i].right), after[i - 1]) << i;
  // A centre of another size is an error, not a silent comparison.
  const std::vector<std::vector<float>> wrong = {{0.f, 0.f, 0.f}};
  scorer.labeled = &wrong;
  EXPECT_THROW(select_pairs(big, 2, "kcenter", 10.0, scorer, b), RuntimeError);
}

TEST(SelectPairs, EntropyAndTheKCenterHybridsReadTheirScores) {
  const SegmentPool pool = valued_pool([] {
    std::vector<float> x;
    for (int i = 0; i < 40; ++i) x.push_back(static_cast<float>(i % 7));
    return x;
  }());
  auto by_pair = [](const SegmentPool&, const std::vector<CandidatePair>& c) {
    std::vector<double> s;
    for (const auto& x : c) s.push_back(pair_score(x.left, x.right));
    return s;
  };
  QueryScorer entropy_only;
  entropy_only.entropy = by_pair;
  Rng r1(4);
  const auto top = select_pairs(pool, 5, "entropy", 10.0, entropy_only, r1);
  std::vector<double> scores;
  for (const auto& c : candidates(pool, 5, 10.0, 4)) scores.push_back(pair_score(c.left, c.right));
  std::sort(scores.rbegin(), scores.rend());
  ASSERT_EQ(top.size(), 5u);
  for (size_t i = 0; i < 5; ++i) EXPECT_DOUBLE_EQ(top[i].score, scores[i]);
  Rng r0(4);
  EXPECT_THROW(select_pairs(pool, 5, "entropy", 10.0, QueryScorer{}, r0), UsageError);  // no entropy scorer
  // kcenter_disagreement / kcenter_entropy choose only from the better-scored half (25 of 50).
  for (const char* method : {"kcenter_disagreement", "kcenter_entropy"}) {
    QueryScorer s;
    (std::string(method) == "kcenter_disagreement" ? s.disagreement : s.entropy) = by_pair;
    Rng r(9);
    const auto out = select_pairs(pool, 5, method, 10.0, s, r);
    ASSERT_EQ(out.size(), 5u) << method;
    expect_valid(out, 40);
    std::vector<double> all;
    for (const auto& c : candidates(pool, 5, 10.0, 9)) all.push_back(pair_score(c.left, c.right));
    std::sort(all.rbegin(), all.rend());
    for (const auto& c : out) EXPECT_GE(pair_score(c.left, c.right), all[24]) << method;
  }
  Rng r2(1);
  EXPECT_THROW(select_pairs(pool, 5, "nearest", 10.0, entropy_only, r2), UsageError);
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
