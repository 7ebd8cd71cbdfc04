// VecEnv: seeding (env i gets seed + i), auto-reset with final_obs, flags, time-limit counts.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "prefrl/core/error.h"
#include "prefrl/envs/env.h"

namespace prefrl {
namespace {

std::vector<float> row(const std::vector<float>& v, int i, int64_t n) {
  return std::vector<float>(v.begin() + i * n, v.begin() + (i + 1) * n);
}

TEST(VecEnv, ShapesAndBadArguments) {
  SerialVecEnv v("acrobot", 3, 0);
  EXPECT_EQ(v.num_envs(), 3);
  EXPECT_EQ(v.obs_size(), 6);
  EXPECT_EQ(v.act_size(), 1);
  EXPECT_EQ(v.spec().name, "acrobot");
  v.reset();
  EXPECT_EQ(v.obs().size(), 18u);
  EXPECT_EQ(v.final_obs().size(), 18u);
  EXPECT_EQ(v.rewards().size(), 3u);
  EXPECT_THROW(SerialVecEnv("acrobot", 0, 0), UsageError);
  EXPECT_THROW(SerialVecEnv("nope", 2, 0), UsageError);
}

TEST(VecEnv, EnvIIsSeededSeedPlusI) {
  SerialVecEnv v("pendulum", 4, 100);
  v.reset();
  for (int i = 0; i < 4; ++i) {
    auto env = make_env("pendulum");
    env->seed(100 + i);
    std::vector<float> obs(3);
    env->reset(obs.data());
    EXPECT_EQ(row(v.obs(), i, 3), obs) << "env " << i;
  }
  EXPECT_NE(row(v.obs(), 0, 3), row(v.obs(), 1, 3));
}

TEST(VecEnv, MatchesStandaloneEnvsThroughAutoResets) {
  // Cartpole pushed always right terminates quickly; VecEnv must agree step for step with
  // standalone envs that are reset by hand, including final_obs and the next first obs.
  const int n = 3;
  SerialVecEnv v("cartpole", n, 42);
  std::vector<std::unique_ptr<Env>> ref;
  std::vector<std::vector<float>> ref_obs(n, std::vector<float>(4));
  for (int i = 0; i < n; ++i) {
    ref.push_back(make_env("cartpole"));
    ref[i]->seed(42 + i);
    ref[i]->reset(ref_obs[i].data());
  }
  v.reset();
  const std::vector<float> actions(n, 1.0f);
  int episodes_ended = 0;
  for (int t = 0; t < 200; ++t) {
    v.step(actions.data());
    for (int i = 0; i < n; ++i) {
      const StepResult r = ref[i]->step(&actions[i], ref_obs[i].data());
      ASSERT_EQ(v.rewards()[i], r.reward);
      ASSERT_EQ(v.terminated()[i], r.terminated);
      ASSERT_EQ(v.truncated()[i], r.truncated);
      if (r.terminated || r.truncated) {
        ++episodes_ended;
        ASSERT_EQ(row(v.final_obs(), i, 4), ref_obs[i]) << "t " << t << " env " << i;
        ref[i]->reset(ref_obs[i].data());
        ASSERT_EQ(ref[i]->elapsed_steps(), 0);
      }
      ASSERT_EQ(row(v.obs(), i, 4), ref_obs[i]) << "t " << t << " env " << i;
    }
  }
  EXPECT_GT(episodes_ended, 3 * n);
}

TEST(VecEnv, FinalObsDiffersFromTheNextFirstObs) {
  SerialVecEnv v("cartpole", 1, 0);
  v.reset();
  const float right = 1.0f;
  for (int t = 0; t < 100; ++t) {
    v.step(&right);
    if (v.terminated()[0]) {
      // The ended episode's last obs has the pole past 12 degrees; the new one starts near 0.
      EXPECT_GT(std::abs(v.final_obs()[2]), 0.2f);
      EXPECT_LT(std::abs(v.obs()[2]), 0.05f);
      EXPECT_EQ(v.env(0).elapsed_steps(), 0);
      return;
    }
  }
  FAIL() << "cartpole never terminated";
}

TEST(VecEnv, TimeLimitTruncationCount) {
  // Pendulum never terminates: 3 limits' worth of steps => exactly 3 truncations per env,
  // each on a step that is a multiple of 200.
  SerialVecEnv v("pendulum", 2, 9);
  v.reset();
  const std::vector<float> actions = {0.5f, -0.5f};
  std::vector<int> truncations(2, 0);
  for (int t = 1; t <= 600; ++t) {
    v.step(actions.data());
    for (int i = 0; i < 2; ++i) {
      EXPECT_FALSE(v.terminated()[i]);
      if (v.truncated()[i]) {
        ++truncations[i];
        EXPECT_EQ(t % 200, 0) << "truncated at step " << t;
      }
    }
  }
  EXPECT_EQ(truncations, (std::vector<int>{3, 3}));
}

TEST(VecEnv, SuccessFlagsAtEpisodeEnd) {
  SerialVecEnv v("movingdot", 2, 0);
  v.reset();
  std::vector<float> scratch(2 * 32 * 32);
  v.env(0).set_state({16, 17}, scratch.data());  // distance 1: success
  v.env(1).set_state({3, 4}, scratch.data());    // far away: failure
  for (int i = 0; i < 2; ++i) v.env(i).set_elapsed_steps(49);
  const std::vector<float> noop = {0.0f, 0.0f};
  v.step(noop.data());
  EXPECT_EQ(v.truncated(), (std::vector<uint8_t>{1, 1}));
  EXPECT_EQ(v.success(), (std::vector<uint8_t>{1, 0}));
  // final_obs shows the dot where the episode ended.
  EXPECT_EQ(v.final_obs()[17 * 32 + 16], 1.0f);
  EXPECT_EQ(v.final_obs()[2 * 32 * 32 + 4 * 32 + 3], 1.0f);  // env 1, current frame
}

TEST(VecEnv, KeepsStatesBesideObservationsAndFinalObservations) {
  // Hopper observations are qpos[1:6] ++ clipped qvel; the kept states (qpos ++ qvel) must
  // be the states behind obs() and, where an episode ended, behind final_obs().
  SerialVecEnv v("hopper", 3, 7);
  EXPECT_TRUE(v.states().empty());
  v.keep_states(true);
  v.reset();
  ASSERT_EQ(v.state_size(), 12);
  ASSERT_EQ(v.states().size(), 36u);
  std::vector<float> actions(9, 1.0f);
  int ended = 0;
  for (int t = 0; t < 300; ++t) {
    v.step(actions.data());
    for (int i = 0; i < 3; ++i) {
      const std::vector<double> s = v.env(i).get_state();
      for (int j = 0; j < 12; ++j) ASSERT_EQ(v.states()[i * 12 + j], static_cast<float>(s[j])) << t;
      for (int j = 0; j < 5; ++j) ASSERT_EQ(v.obs()[i * 11 + j], v.states()[i * 12 + 1 + j]) << t;
      if (v.terminated()[i] || v.truncated()[i]) {
        ++ended;
        for (int j = 0; j < 5; ++j) ASSERT_EQ(v.final_obs()[i * 11 + j], v.final_states()[i * 12 + 1 + j]) << t;
        EXPECT_NE(v.final_states()[i * 12 + 1], v.states()[i * 12 + 1]);  // not the new episode's
      }
    }
  }
  EXPECT_GT(ended, 3);
  v.keep_states(false);
  EXPECT_TRUE(v.states().empty());
}


// termination=penalty: episodes run to the time limit; a step on which the task would have
// ended keeps its reward and shows the ended state; the next step earns -penalty and the body
// starts afresh (a new initial state, the episode's clock running on); task_rewards() keeps the
// task's own rewards (0 after its first end).
TEST(VecEnv, TerminationReplacedByAPenaltyRunsToTheTimeLimit) {
  for (const char* name : {"cartpole", "hopper"}) {
    SCOPED_TRACE(name);
    SerialVecEnv ends(name, 1, 7), goes_on(name, 1, 7);
    goes_on.replace_termination(2.5f);
    EXPECT_TRUE(goes_on.termination_replaced());
    EXPECT_FALSE(ends.termination_replaced());
    EXPECT_THROW(goes_on.replace_termination(std::nanf("")), UsageError);
    EXPECT_THROW(goes_on.set_task_over(0, 3), UsageError);
    ends.reset();
    goes_on.reset();
    const int limit = ends.spec().max_episode_steps;
    const std::vector<float> push(ends.act_size(), name == std::string("cartpole") ? 1.0f : 0.0f);  // falls over
    int ended_at = -1, later_falls = 0;
    double task_return = 0, end_return = 0;
    std::vector<float> fresh_start;  // the ending env's next episode
    for (int t = 1; t <= limit; ++t) {
      if (ended_at < 0) {
        ends.step(push.data());
        end_return += ends.rewards()[0];
        EXPECT_EQ(ends.task_rewards()[0], ends.rewards()[0]);
      }
      goes_on.step(push.data());
      task_return += goes_on.task_rewards()[0];
      EXPECT_FALSE(goes_on.terminated()[0]) << "step " << t;
      EXPECT_EQ(goes_on.truncated()[0] != 0, t == limit) << "step " << t;
      if (ended_at < 0) {
        EXPECT_EQ(goes_on.rewards()[0], ends.rewards()[0]) << "step " << t;
        if (!ends.terminated()[0]) {
          EXPECT_EQ(row(goes_on.obs(), 0, goes_on.obs_size()), row(ends.obs(), 0, ends.obs_size())) << "step " << t;
          EXPECT_EQ(goes_on.task_over()[0], VecEnv::kTaskRunning);
        } else {
          ended_at = t;
          EXPECT_EQ(goes_on.task_rewards()[0], ends.rewards()[0]) << "the task's last reward counts";
          // The ended state is shown; the penalty comes with the next step.
          EXPECT_EQ(row(goes_on.obs(), 0, goes_on.obs_size()), row(ends.final_obs(), 0, ends.obs_size()));
          EXPECT_EQ(goes_on.task_over()[0], VecEnv::kFallenShown);
          fresh_start = row(ends.obs(), 0, ends.obs_size());
        }
      } else if (t == ended_at + 1) {
        EXPECT_EQ(goes_on.rewards()[0], -2.5f);
        EXPECT_EQ(goes_on.task_rewards()[0], 0.0f);
        // A fresh start, as the ending env's next episode (both RNGs drew the same so far).
        EXPECT_EQ(row(goes_on.obs(), 0, goes_on.obs_size()), fresh_start);
        EXPECT_EQ(goes_on.env(0).elapsed_steps(), t) << "the episode's clock runs on";
        EXPECT_EQ(goes_on.task_over()[0], VecEnv::kTaskOver);
      } else {
        EXPECT_EQ(goes_on.task_rewards()[0], 0.0f) << "step " << t;
        if (goes_on.rewards()[0] == -2.5f) ++later_falls;
      }
    }
    ASSERT_GT(ended_at, 0) << "the task never ended: the test's policy should fall";
    ASSERT_LT(ended_at, limit / 2);
    EXPECT_DOUBLE_EQ(task_return, end_return);
    EXPECT_GT(later_falls, 2) << "after each fresh start the body falls again";
    // After the time limit the next episode starts with a clean slate.
    goes_on.step(push.data());
    EXPECT_EQ(goes_on.task_rewards()[0], goes_on.rewards()[0]);
  }
}

}  // namespace
}  // namespace prefrl
