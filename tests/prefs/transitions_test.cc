// The transition store: each rollout's steps are read in place; the history keeps exactly the
// newest H steps before the rollout (as the per-env arrays it replaced kept them: append, then
// trim to H + T), forget() drops everything, checkpoints round-trip, and clips cut from the
// store equal clips cut from the same steps held in per-env arrays.
#include "prefrl/core/transitions.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "prefrl/core/error.h"
#include "prefrl/core/rng.h"
#include "prefrl/prefs/segments.h"

namespace prefrl {
namespace {

constexpr int64_t D = 2, A = 1, S = 1;

// Writes rollout step t of env i as a function of (global step, i); terminations every 7 steps
// of env 1, truncations every 11 steps of every env.
void fill_step(TransitionStore& st, int t, int64_t global) {
  const int N = st.num_envs();
  for (int i = 0; i < N; ++i) {
    const float v = static_cast<float>(global * 10 + i);
    st.obs(t)[i * D] = v;
    st.obs(t)[i * D + 1] = -v;
    st.actions(t)[i] = v + 0.5f;
    st.states(t)[i] = v + 0.25f;
    st.true_rewards(t)[i] = v * 0.01f;
    st.terminated(t)[i] = (i == 1 && global % 7 == 6);
    st.truncated(t)[i] = !st.terminated(t)[i] && global % 11 == 10;
    st.final_obs(t)[i * D] = st.final_obs(t)[i * D + 1] = v + 0.75f;
    st.final_states(t)[i] = v + 0.125f;
  }
}

// The reference: per-env arrays appended each rollout and trimmed to the newest H + T steps.
struct Reference {
  std::vector<Trajectory> trajs;
  int keep;
  Reference(int N, int H) : trajs(N), keep(H) {
    for (int i = 0; i < N; ++i) {
      trajs[i].obs_size = D; trajs[i].act_size = A; trajs[i].state_size = S;
      trajs[i].env_index = i; trajs[i].num_envs = N;
    }
  }
  void append(const TransitionStore& st, int64_t start_step) {
    const int N = st.num_envs(), T = st.rollout_steps();
    for (int i = 0; i < N; ++i) {
      Trajectory& tr = trajs[i];
      if (tr.size() == 0) tr.start_env_step = start_step;
      for (int t = 0; t < T; ++t) {
        TransitionStore& s = const_cast<TransitionStore&>(st);
        tr.obs.insert(tr.obs.end(), s.obs(t) + i * D, s.obs(t) + (i + 1) * D);
        tr.actions.push_back(s.actions(t)[i]);
        tr.states.push_back(s.states(t)[i]);
        tr.final_obs.insert(tr.final_obs.end(), s.final_obs(t) + i * D, s.final_obs(t) + (i + 1) * D);
        tr.final_states.push_back(s.final_states(t)[i]);
        tr.true_rewards.push_back(s.true_rewards(t)[i]);
        tr.terminated.push_back(s.terminated(t)[i]);
        tr.truncated.push_back(s.truncated(t)[i]);
      }
      const int excess = tr.size() - (keep + T);
      if (excess > 0) {
        TrajectoryView v = tr.view();  // the newest keep + T steps
        v.obs += excess * D; v.actions += excess * A; v.states += excess * S;
        v.final_obs += excess * D; v.final_states += excess * S;
        v.true_rewards += excess; v.terminated += excess; v.truncated += excess;
        v.T -= excess;
        v.start_env_step += static_cast<int64_t>(excess) * N;
        tr = Trajectory::copy_of(v);
      }
    }
  }
};

void expect_same(const TrajectoryView& a, const Trajectory& b, const char* where) {
  ASSERT_EQ(a.size(), b.size()) << where;
  EXPECT_EQ(a.start_env_step, b.start_env_step) << where;
  const Trajectory copy = Trajectory::copy_of(a);
  EXPECT_EQ(copy.obs, b.obs) << where;
  EXPECT_EQ(copy.actions, b.actions) << where;
  EXPECT_EQ(copy.states, b.states) << where;
  EXPECT_EQ(copy.true_rewards, b.true_rewards) << where;
  EXPECT_EQ(copy.terminated, b.terminated) << where;
  EXPECT_EQ(copy.truncated, b.truncated) << where;
}

void expect_same_segments(const std::vector<Segment>& a, const std::vector<Segment>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t k = 0; k < a.size(); ++k) {
    EXPECT_EQ(a[k].obs, b[k].obs) << k;
    EXPECT_EQ(a[k].actions, b[k].actions) << k;
    EXPECT_EQ(a[k].states, b[k].states) << k;
    EXPECT_EQ(a[k].true_rewards, b[k].true_rewards) << k;
    EXPECT_EQ(a[k].absorbing, b[k].absorbing) << k;
    EXPECT_EQ(a[k].env_step, b[k].env_step) << k;
    EXPECT_EQ(a[k].env_index, b[k].env_index) << k;
  }
}

// Several rollouts, with H shorter than, equal to and longer than T (the move overlaps), and none.
TEST(TransitionStore, KeepsTheNewestHStepsAndCutsAsPerEnvArraysDo) {
  for (auto [T, H] : {std::pair{8, 3}, {5, 5}, {4, 9}, {6, 0}}) {
    const int N = 3;
    TransitionStore st(N, T, D, A, S, H);
    Reference ref(N, H);
    int64_t global = 0;
    for (int r = 0; r < 6; ++r) {
      st.begin_rollout(global * N);
      EXPECT_EQ(st.valid_history(), std::min(H, r * T)) << T << "/" << H << " rollout " << r;
      for (int t = 0; t < T; ++t) fill_step(st, t, global + t);
      ref.append(st, global * N);
      global += T;
      for (int i = 0; i < N; ++i) {
        expect_same(st.trajectory(i), ref.trajs[i], "trajectory");
        Rng a(r * 31 + i), b(r * 31 + i);
        expect_same_segments(cut_segments(st.trajectory(i), 4, 3, a), cut_segments(ref.trajs[i], 4, 3, b));
      }
    }
  }
}

TEST(TransitionStore, TheRolloutIsOneArrayPerColumn) {
  const int N = 2, T = 3;
  TransitionStore st(N, T, D, A, S, 2);
  for (int r = 0; r < 2; ++r) {
    st.begin_rollout(r * T * N);
    for (int t = 0; t < T; ++t) fill_step(st, t, r * T + t);
  }
  // Rollout step t, env i: transition t * N + i of the arrays starting at step 0.
  for (int t = 0; t < T; ++t)
    for (int i = 0; i < N; ++i) {
      EXPECT_EQ(st.obs(0)[(t * N + i) * D], static_cast<float>((T + t) * 10 + i));
      EXPECT_EQ(st.true_rewards(0)[t * N + i], st.true_rewards(t)[i]);
    }
  EXPECT_EQ(st.transitions(), T * N);
}

TEST(TransitionStore, ForgetDropsTheRolloutAndTheHistory) {
  TransitionStore st(2, 4, D, A, S, 3);
  st.begin_rollout(0);
  for (int t = 0; t < 4; ++t) fill_step(st, t, t);
  st.forget();
  EXPECT_EQ(st.trajectory(0).size(), 0);
  st.begin_rollout(8);
  EXPECT_EQ(st.valid_history(), 0);
  for (int t = 0; t < 4; ++t) fill_step(st, t, 4 + t);
  EXPECT_EQ(st.trajectory(1).size(), 4);
  EXPECT_EQ(st.trajectory(1).start_env_step, 8);
  // A broken flag belongs to its rollout.
  st.broken(2)[1] = 1;
  st.begin_rollout(16);
  EXPECT_EQ(st.broken(2)[1], 0);
}

TEST(TransitionStore, CheckpointsRoundTrip) {
  const int N = 2, T = 5, H = 4;
  TransitionStore st(N, T, D, A, S, H);
  for (int r = 0; r < 3; ++r) {
    st.begin_rollout(r * T * N);
    for (int t = 0; t < T; ++t) fill_step(st, t, r * T + t);
  }
  std::vector<Trajectory> saved;
  for (int i = 0; i < N; ++i) saved.push_back(Trajectory::copy_of(st.trajectory(i)));
  TransitionStore back(N, T, D, A, S, H);
  for (int i = 0; i < N; ++i) back.set_trajectory(i, saved[i].view());
  for (int i = 0; i < N; ++i) expect_same(back.trajectory(i), saved[i], "restored");
  // The next rollout continues both the same way.
  st.begin_rollout(3 * T * N);
  back.begin_rollout(3 * T * N);
  for (int t = 0; t < T; ++t) { fill_step(st, t, 3 * T + t); fill_step(back, t, 3 * T + t); }
  for (int i = 0; i < N; ++i) expect_same(back.trajectory(i), Trajectory::copy_of(st.trajectory(i)), "continued");
  // Envs whose saved steps do not line up, or the wrong widths, are refused.
  TransitionStore bad(N, T, D, A, S, H);
  bad.set_trajectory(0, saved[0].view());
  Trajectory shorter = saved[1];
  shorter.obs.resize(shorter.obs.size() - D); shorter.actions.pop_back(); shorter.states.pop_back();
  shorter.final_obs.resize(shorter.final_obs.size() - D); shorter.final_states.pop_back();
  shorter.true_rewards.pop_back(); shorter.terminated.pop_back(); shorter.truncated.pop_back();
  EXPECT_THROW(bad.set_trajectory(1, shorter.view()), RuntimeError);
  TransitionStore wide(N, T, D + 1, A, S, H);
  EXPECT_THROW(wide.set_trajectory(0, saved[0].view()), RuntimeError);
  EXPECT_THROW(TransitionStore(0, T, D, A, S, H), UsageError);
}

TEST(RolloutColumns, ZeroedAlignedNamedAndStable) {
  TransitionStore st(3, 4, D, A, S, 2);
  RolloutColumns& c = st.columns();
  float* a = c.add_floats("algo/a", 5);
  uint8_t* b = c.add_bytes("algo/b", 1);
  for (int k = 0; k < 3 * 4 * 5; ++k) ASSERT_EQ(a[k], 0.0f);
  for (int k = 0; k < 3 * 4; ++k) ASSERT_EQ(b[k], 0);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a) % 64, 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b) % 64, 0u);
  a[59] = 7.0f;
  for (int k = 0; k < 20; ++k) c.add_floats("more/" + std::to_string(k), 3);  // later columns move nothing
  EXPECT_EQ(c.floats("algo/a"), a);
  EXPECT_EQ(c.floats("algo/a")[59], 7.0f);
  EXPECT_EQ(c.bytes("algo/b"), b);
  EXPECT_EQ(c.floats("algo/b"), nullptr);
  EXPECT_EQ(c.floats("none"), nullptr);
  EXPECT_EQ(c.names().size(), 22u);
  EXPECT_EQ(c.bytes_held(), 3 * 4 * 5 * 4 + 3 * 4 + 20 * 3 * 4 * 3 * 4);
  EXPECT_THROW(c.add_floats("algo/a", 1), UsageError);
  EXPECT_THROW(c.add_floats("algo/z", 0), UsageError);
  c.clear();
  EXPECT_TRUE(c.names().empty());
}

}  // namespace
}  // namespace prefrl
