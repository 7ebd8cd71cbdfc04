// cut_segments on hand-built trajectories, and SegmentPool.
#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "prefrl/core/error.h"
#include "prefrl/prefs/segments.h"

namespace prefrl {
namespace {

// T steps, D=2, A=1: obs[t] = (t, 100 + t), action t/2, reward t + 1, final_obs (-t, -100 - t).
Trajectory make_traj(int T, std::vector<int> terminated = {}, std::vector<int> truncated = {}) {
  Trajectory tr;
  tr.obs_size = 2;
  tr.act_size = 1;
  for (int t = 0; t < T; ++t) {
    tr.obs.push_back(static_cast<float>(t));
    tr.obs.push_back(100.0f + t);
    tr.actions.push_back(0.5f * t);
    tr.true_rewards.push_back(t + 1.0f);
    tr.final_obs.push_back(-static_cast<float>(t));
    tr.final_obs.push_back(-100.0f - t);
  }
  tr.terminated.assign(T, 0);
  tr.truncated.assign(T, 0);
  for (int t : terminated) tr.terminated[t] = 1;
  for (int t : truncated) tr.truncated[t] = 1;
  return tr;
}

// The window start of a segment cut from `tr` (inverse of the env_step formula).
int start_of(const Segment& s, const Trajectory& tr) {
  return static_cast<int>((s.env_step - tr.start_env_step) / tr.num_envs);
}

// All segments (count larger than the number of valid starts).
std::vector<Segment> cut_all(const Trajectory& tr, int L, uint64_t seed = 1) {
  Rng rng(seed);
  return cut_segments(tr, L, 1 << 20, rng);
}

std::set<int> starts(const std::vector<Segment>& segs, const Trajectory& tr) {
  std::set<int> s;
  for (const auto& seg : segs) s.insert(start_of(seg, tr));
  return s;
}

TEST(CutSegments, PadsAfterTerminationWithAbsorbingState) {
  Trajectory tr = make_traj(12, /*terminated=*/{5});
  const auto segs = cut_all(tr, 4);
  const Segment* found = nullptr;
  for (const auto& s : segs) {
    if (start_of(s, tr) == 3) found = &s;
  }
  ASSERT_NE(found, nullptr);
  const Segment& s = *found;
  ASSERT_EQ(s.length, 4);
  EXPECT_EQ(s.obs_size, 2);
  EXPECT_EQ(s.act_size, 1);
  EXPECT_EQ(s.absorbing, (std::vector<uint8_t>{0, 0, 0, 1}));
  EXPECT_EQ(s.true_rewards, (std::vector<float>{4, 5, 6, 0}));
  EXPECT_EQ(s.actions, (std::vector<float>{1.5f, 2.0f, 2.5f, 0.0f}));
  EXPECT_EQ(s.obs, (std::vector<float>{3, 103, 4, 104, 5, 105, -5, -105}));
  EXPECT_DOUBLE_EQ(s.true_return(), 15.0);

  // Starting on the terminal step itself: one real step, then padding.
  const Segment* last = nullptr;
  for (const auto& seg : segs) {
    if (start_of(seg, tr) == 5) last = &seg;
  }
  ASSERT_NE(last, nullptr);
  EXPECT_EQ(last->absorbing, (std::vector<uint8_t>{0, 1, 1, 1}));
  EXPECT_EQ(last->true_rewards, (std::vector<float>{6, 0, 0, 0}));
  EXPECT_EQ(last->obs, (std::vector<float>{5, 105, -5, -105, -5, -105, -5, -105}));
  EXPECT_EQ(last->actions, (std::vector<float>{2.5f, 0, 0, 0}));

  // The next episode starts at t=6; windows there are ordinary.
  EXPECT_EQ(starts(segs, tr), (std::set<int>{0, 1, 2, 3, 4, 5, 6, 7, 8}));
}

TEST(CutSegments, CarriesRenderStatesAndPadsWithTheTerminalState) {
  // States (S=3): state[t] = (t, 10 t, 1), final_states[t] = (-t, -10 t, -1).
  Trajectory tr = make_traj(10, /*terminated=*/{5});
  tr.state_size = 3;
  for (int t = 0; t < 10; ++t) {
    for (float v : {float(t), 10.0f * t, 1.0f}) tr.states.push_back(v);
    for (float v : {-float(t), -10.0f * t, -1.0f}) tr.final_states.push_back(v);
  }
  for (const Segment& s : cut_all(tr, 3)) {
    EXPECT_EQ(s.state_size, 3);
    if (start_of(s, tr) == 4) {
      EXPECT_EQ(s.absorbing, (std::vector<uint8_t>{0, 0, 1}));
      EXPECT_EQ(s.states, (std::vector<float>{4, 40, 1, 5, 50, 1, -5, -50, -1}));
    }
    if (start_of(s, tr) == 6) EXPECT_EQ(s.states, (std::vector<float>{6, 60, 1, 7, 70, 1, 8, 80, 1}));
  }
  // Without states, segments have none.
  for (const Segment& s : cut_all(make_traj(6), 3)) {
    EXPECT_EQ(s.state_size, 0);
    EXPECT_TRUE(s.states.empty());
  }
  // States of the wrong size are refused.
  tr.final_states.pop_back();
  Rng rng(1);
  EXPECT_THROW(cut_segments(tr, 3, 1, rng), UsageError);
}

TEST(CutSegments, NeverCrossesTruncationOrTheEnd) {
  // Truncation at t=9 (episode 0..9), then an episode 10..15 cut off by the rollout's end.
  Trajectory tr = make_traj(16, {}, /*truncated=*/{9});
  const auto segs = cut_all(tr, 4);
  // Starts 0..6 end at or before the truncated step; 7..9 would cross it; 10..12 fit before
  // the end; 13..15 would run off the end.
  EXPECT_EQ(starts(segs, tr), (std::set<int>{0, 1, 2, 3, 4, 5, 6, 10, 11, 12}));
  for (const auto& s : segs) {
    for (uint8_t a : s.absorbing) EXPECT_EQ(a, 0);
    const int st = start_of(s, tr);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(s.obs[2 * i], static_cast<float>(st + i));
  }
}

TEST(CutSegments, TerminationNearTheEndStillPads) {
  // A terminal step at the very end may be padded beyond the trajectory.
  Trajectory tr = make_traj(8, /*terminated=*/{7});
  const auto segs = cut_all(tr, 5);
  EXPECT_EQ(starts(segs, tr), (std::set<int>{0, 1, 2, 3, 4, 5, 6, 7}));
  for (const auto& s : segs) {
    const int st = start_of(s, tr);
    const int real = std::min(5, 8 - st);
    for (int i = 0; i < 5; ++i) EXPECT_EQ(s.absorbing[i], i < real ? 0 : 1) << "start " << st;
  }
}

TEST(CutSegments, TerminationAndTruncationMixed) {
  // Episodes: 0..2 (terminated), 3..6 (truncated), 7..9 (terminated), 10..11 (open).
  Trajectory tr = make_traj(12, {2, 9}, {6});
  const auto segs = cut_all(tr, 3);
  // 0,1,2 pad into the terminal; 3,4 fit before the truncation at 6; 5,6 cross it;
  // 7,8,9 reach the terminal at 9; 10,11 run off the end.
  EXPECT_EQ(starts(segs, tr), (std::set<int>{0, 1, 2, 3, 4, 7, 8, 9}));
  for (const auto& s : segs) {
    // Absorbing steps form a suffix and the first step is always real.
    EXPECT_EQ(s.absorbing[0], 0);
    for (int i = 1; i < s.length; ++i) EXPECT_GE(s.absorbing[i], s.absorbing[i - 1]);
    for (int i = 0; i < s.length; ++i) {
      if (s.absorbing[i]) {
        EXPECT_EQ(s.true_rewards[i], 0.0f);
      }
    }
  }
}

TEST(CutSegments, CountUniquenessAndDeterminism) {
  Trajectory tr = make_traj(200, {50, 120}, {90});
  tr.start_env_step = 4000;
  tr.num_envs = 8;
  tr.env_index = 3;
  const size_t valid = cut_all(tr, 25).size();
  Rng a(99), b(99), c(100);
  const auto sa = cut_segments(tr, 25, 10, a);
  const auto sb = cut_segments(tr, 25, 10, b);
  const auto sc = cut_segments(tr, 25, 10, c);
  ASSERT_EQ(sa.size(), 10u);
  EXPECT_EQ(starts(sa, tr).size(), 10u);  // sampled without replacement
  ASSERT_EQ(sb.size(), 10u);
  for (size_t i = 0; i < sa.size(); ++i) {
    EXPECT_EQ(sa[i].env_step, sb[i].env_step);
    EXPECT_EQ(sa[i].obs, sb[i].obs);
    EXPECT_EQ(sa[i].env_index, 3);
    EXPECT_EQ((sa[i].env_step - 4000) % 8, 0);  // env_step = start_env_step + start * num_envs
    if (i > 0) {
      EXPECT_LT(sa[i - 1].env_step, sa[i].env_step);  // trajectory order
    }
  }
  EXPECT_NE(starts(sa, tr), starts(sc, tr));
  for (const auto& s : sa) {
    const int st = start_of(s, tr);
    EXPECT_EQ(s.obs[0], static_cast<float>(st));
  }
  Rng d(5);
  EXPECT_TRUE(cut_segments(tr, 25, 0, d).empty());
  EXPECT_EQ(cut_segments(tr, 25, 100000, d).size(), valid);
}

TEST(CutSegments, ShortTrajectoriesAndBadInputs) {
  Rng rng(1);
  EXPECT_TRUE(cut_segments(make_traj(3), 4, 10, rng).empty());
  EXPECT_EQ(cut_segments(make_traj(4), 4, 10, rng).size(), 1u);
  EXPECT_TRUE(cut_segments(make_traj(0), 4, 10, rng).empty());
  Trajectory bad = make_traj(10);
  bad.actions.pop_back();
  EXPECT_THROW(cut_segments(bad, 4, 1, rng), UsageError);
  EXPECT_THROW(cut_segments(make_traj(10), 0, 1, rng), UsageError);
  EXPECT_THROW(cut_segments(make_traj(10), 4, -1, rng), UsageError);
}

TEST(SegmentPool, KeepsTheNewest) {
  SegmentPool pool(3);
  for (int i = 0; i < 5; ++i) {
    Segment s;
    s.env_step = i;
    pool.add(s);
  }
  ASSERT_EQ(pool.size(), 3u);
  EXPECT_EQ(pool.at(0).env_step, 2);
  EXPECT_EQ(pool.at(2).env_step, 4);
  pool.clear();
  EXPECT_EQ(pool.size(), 0u);
}

}  // namespace
}  // namespace prefrl
