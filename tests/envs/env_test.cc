// Registry, specs, determinism, bounds, action clipping and state round trips, for every env.
#include "prefrl/core/segment.h"
#include "prefrl/envs/env.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "prefrl/core/error.h"
#include "test_util.h"

namespace prefrl {
namespace {

using testing::random_action;
using testing::rollout;

class EveryEnv : public ::testing::TestWithParam<std::string> {};

INSTANTIATE_TEST_SUITE_P(Envs, EveryEnv, ::testing::ValuesIn(env_names()),
                         [](const auto& info) { return info.param; });

TEST(Registry, ListsTheEnvironments) {
  EXPECT_EQ(env_names(), (std::vector<std::string>{"cartpole", "pendulum", "mountaincar_continuous", "acrobot",
                                                   "movingdot", "hopper", "halfcheetah", "walker2d", "swimmer",
                                                   "reacher", "inverted_pendulum", "inverted_double_pendulum", "pong",
                                                   "enduro"}));
}

TEST(Registry, UnknownNameIsAUsageErrorListingKnownNames) {
  try {
    make_env("cartpol");
    FAIL() << "expected UsageError";
  } catch (const UsageError& e) {
    EXPECT_EQ(std::string(e.what()),
              "unknown environment 'cartpol'; known: cartpole, pendulum, mountaincar_continuous, "
              "acrobot, movingdot, hopper, halfcheetah, walker2d, swimmer, reacher, inverted_pendulum, "
              "inverted_double_pendulum, pong, enduro");
  }
  EXPECT_THROW(env_spec(""), UsageError);
}

TEST(Registry, SpecsMatchTheReferences) {
  const EnvSpec cp = env_spec("cartpole");
  EXPECT_TRUE(cp.action.discrete);
  EXPECT_EQ(cp.action.n, 2);
  EXPECT_EQ(cp.observation.shape, (std::vector<int64_t>{4}));
  EXPECT_EQ(cp.max_episode_steps, 500);
  EXPECT_DOUBLE_EQ(cp.fps, 50.0);
  EXPECT_TRUE(cp.can_terminate);

  const EnvSpec pd = env_spec("pendulum");
  EXPECT_FALSE(pd.action.discrete);
  EXPECT_EQ(pd.action.low, std::vector<float>{-2.0f});
  EXPECT_EQ(pd.action.high, std::vector<float>{2.0f});
  EXPECT_EQ(pd.max_episode_steps, 200);
  EXPECT_FALSE(pd.can_terminate);
  EXPECT_DOUBLE_EQ(pd.fps, 20.0);

  const EnvSpec mc = env_spec("mountaincar_continuous");
  EXPECT_EQ(mc.action.low, std::vector<float>{-1.0f});
  EXPECT_EQ(mc.max_episode_steps, 999);
  EXPECT_DOUBLE_EQ(mc.fps, 30.0);

  const EnvSpec ac = env_spec("acrobot");
  EXPECT_EQ(ac.action.n, 3);
  EXPECT_EQ(ac.observation.shape, (std::vector<int64_t>{6}));
  EXPECT_EQ(ac.max_episode_steps, 500);
  EXPECT_DOUBLE_EQ(ac.fps, 15.0);

  const EnvSpec md = env_spec("movingdot");
  EXPECT_TRUE(md.pixels);
  EXPECT_EQ(md.observation.shape, (std::vector<int64_t>{2, 32, 32}));
  EXPECT_EQ(md.observation.dtype, Dtype::kUInt8);  // pixels, kept as bytes
  EXPECT_EQ(env_spec("cartpole").observation.dtype, Dtype::kFloat32);
  EXPECT_EQ(md.action.n, 5);
  EXPECT_EQ(md.max_episode_steps, 50);
  EXPECT_TRUE(md.has_success);
  EXPECT_FALSE(md.can_terminate);
}

TEST_P(EveryEnv, SpecIsConsistent) {
  auto env = make_env(GetParam());
  const EnvSpec& s = env->spec();
  EXPECT_EQ(s.name, GetParam());
  EXPECT_FALSE(s.reference.empty());
  EXPECT_GT(s.max_episode_steps, 0);
  EXPECT_GT(s.fps, 0.0);
  EXPECT_EQ(static_cast<int64_t>(s.observation.low.size()), s.observation.numel());
  EXPECT_EQ(static_cast<int64_t>(s.observation.high.size()), s.observation.numel());
  if (!s.action.discrete) {
    EXPECT_EQ(static_cast<int64_t>(s.action.low.size()), s.action.numel());
  } else {
    EXPECT_EQ(s.action.numel(), 1);
  }
  EXPECT_EQ(static_cast<int>(env->get_state().size()), s.state_size);
}

TEST_P(EveryEnv, SameSeedSameTrajectory) {
  auto a = make_env(GetParam()), b = make_env(GetParam());
  a->seed(7);
  b->seed(7);
  EXPECT_EQ(rollout(*a, 600, 99), rollout(*b, 600, 99));
}

TEST_P(EveryEnv, DifferentSeedsDiffer) {
  // The initial states of the first few episodes differ between seeds.
  auto a = make_env(GetParam()), b = make_env(GetParam());
  a->seed(7);
  b->seed(8);
  std::vector<float> obs(a->spec().observation.numel());
  std::vector<std::vector<double>> sa, sb;
  for (int i = 0; i < 5; ++i) {
    a->reset(obs.data());
    sa.push_back(a->get_state());
    b->reset(obs.data());
    sb.push_back(b->get_state());
  }
  EXPECT_NE(sa, sb);
}

TEST_P(EveryEnv, ObservationsStayWithinFiniteBounds) {
  auto env = make_env(GetParam());
  env->seed(3);
  const EnvSpec& s = env->spec();
  const int64_t n = s.observation.numel();
  std::vector<float> obs(n);
  Rng rng(11);
  env->reset(obs.data());
  int episodes = 0;
  // 4000 steps: a random Enduro player ends its game when the first day (3328 agent steps) ends short of the quota.
  for (int t = 0; t < 4000; ++t) {
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_TRUE(std::isfinite(obs[i])) << "t " << t << " obs[" << i << "]";
      ASSERT_GE(obs[i], s.observation.low[i]) << "t " << t << " obs[" << i << "]";
      ASSERT_LE(obs[i], s.observation.high[i]) << "t " << t << " obs[" << i << "]";
      uint8_t byte = 0;  // a uint8 space's values are bytes / 255, so that they are kept as bytes
      if (s.observation.dtype == Dtype::kUInt8) ASSERT_TRUE(obs_to_byte(obs[i], &byte)) << "t " << t << " obs[" << i << "]";
    }
    const auto a = random_action(s, rng);
    const StepResult r = env->step(a.data(), obs.data());
    ASSERT_TRUE(std::isfinite(r.reward));
    ASSERT_FALSE(r.terminated && r.truncated);
    if (!s.can_terminate) ASSERT_FALSE(r.terminated);
    if (r.terminated || r.truncated) {
      env->reset(obs.data());
      ++episodes;
    }
  }
  EXPECT_GT(episodes, 0);
}

TEST_P(EveryEnv, TimeLimitTruncatesOnTheLastStep) {
  auto env = make_env(GetParam());
  const EnvSpec& s = env->spec();
  env->seed(1);
  std::vector<float> obs(s.observation.numel());
  const std::vector<float> action(s.action.numel(), 0.0f);
  env->reset(obs.data());
  EXPECT_EQ(env->elapsed_steps(), 0);
  env->set_elapsed_steps(s.max_episode_steps - 2);
  StepResult r = env->step(action.data(), obs.data());
  EXPECT_FALSE(r.truncated);
  r = env->step(action.data(), obs.data());
  EXPECT_EQ(env->elapsed_steps(), s.max_episode_steps);
  EXPECT_EQ(r.truncated, !r.terminated);
  env->reset(obs.data());
  EXPECT_EQ(env->elapsed_steps(), 0);
}

TEST_P(EveryEnv, SetStateRoundTripsAndReplays) {
  auto env = make_env(GetParam());
  const EnvSpec& s = env->spec();
  env->seed(5);
  const int64_t n = s.observation.numel();
  std::vector<float> obs(n), first(n);
  Rng rng(17);
  env->reset(obs.data());
  for (int t = 0; t < 5; ++t) env->step(random_action(s, rng).data(), obs.data());
  const std::vector<double> saved = env->get_state();
  std::vector<std::vector<float>> actions;
  std::vector<float> run1, run2;
  for (int t = 0; t < 5; ++t) {
    actions.push_back(random_action(s, rng));
    env->step(actions.back().data(), obs.data());
    run1.insert(run1.end(), obs.begin(), obs.end());
  }
  env->set_state(saved, first.data());
  EXPECT_EQ(env->elapsed_steps(), 0);
  EXPECT_EQ(env->get_state(), saved);
  for (const auto& a : actions) {
    env->step(a.data(), obs.data());
    run2.insert(run2.end(), obs.begin(), obs.end());
  }
  EXPECT_EQ(run1, run2);
}

TEST_P(EveryEnv, StoredClipsRenderTheSameFrame) {
  // What the labeling page shows of a stored clip: the state recovered from an observation
  // (or, where observations do not determine it, the state stored beside them) renders the
  // same picture as the live environment, and a recovered state reproduces its observation.
  auto env = make_env(GetParam()), other = make_env(GetParam());
  const EnvSpec& s = env->spec();
  env->seed(9);
  std::vector<float> obs(s.observation.numel()), again(s.observation.numel());
  std::vector<uint8_t> live(48 * 48 * 3), rebuilt(48 * 48 * 3);
  Rng rng(3);
  env->reset(obs.data());
  for (int t = 0; t < 40; ++t) {
    std::vector<double> state;
    ASSERT_EQ(env->state_from_obs(obs.data(), &state), s.obs_determines_state) << GetParam();
    if (!s.obs_determines_state) state = env->get_state();
    other->set_state(state, again.data());
    if (s.obs_determines_state)
      for (size_t i = 0; i < obs.size(); ++i) ASSERT_NEAR(again[i], obs[i], 1e-5) << GetParam() << " step " << t;
    env->render(48, 48, live.data());
    other->render(48, 48, rebuilt.data());
    if (GetParam() != std::string("pendulum")) {  // pendulum draws the last torque, not part of the state
      EXPECT_EQ(live, rebuilt) << GetParam() << " step " << t;
    }
    StepResult r = env->step(random_action(s, rng).data(), obs.data());
    if (r.terminated || r.truncated) env->reset(obs.data());
  }
}

TEST_P(EveryEnv, SetStateRejectsBadInput) {
  auto env = make_env(GetParam());
  std::vector<float> obs(env->spec().observation.numel());
  std::vector<double> state(env->spec().state_size + 1, 1.0);
  EXPECT_THROW(env->set_state(state, obs.data()), UsageError);
  state.assign(env->spec().state_size, std::nan(""));
  EXPECT_THROW(env->set_state(state, obs.data()), UsageError);
}

TEST(DiscreteActions, OutOfRangeOrNanAreUsageErrors) {
  for (const char* name : {"cartpole", "acrobot", "movingdot"}) {
    auto env = make_env(name);
    const EnvSpec& s = env->spec();
    ASSERT_TRUE(s.action.discrete) << name;
    std::vector<float> obs(s.observation.numel());
    env->seed(0);
    env->reset(obs.data());
    for (float bad : {-1.0f, static_cast<float>(s.action.n), std::nanf("")}) {
      try {
        env->step(&bad, obs.data());
        FAIL() << name << ": expected UsageError for action " << bad;
      } catch (const UsageError& e) {
        EXPECT_NE(std::string(e.what()).find("out of range"), std::string::npos) << e.what();
      }
    }
  }
}

// Steps a continuous env from `state` with action a; returns obs followed by reward.
std::vector<float> step_from(const std::string& name, const std::vector<double>& state, float a) {
  auto env = make_env(name);
  std::vector<float> obs(env->spec().observation.numel());
  env->set_state(state, obs.data());
  const StepResult r = env->step(&a, obs.data());
  obs.push_back(r.reward);
  return obs;
}

TEST(Clipping, PendulumClipsTorqueForDynamicsAndReward) {
  const std::vector<double> s = {0.3, -0.2};
  EXPECT_EQ(step_from("pendulum", s, 5.0f), step_from("pendulum", s, 2.0f));
  EXPECT_EQ(step_from("pendulum", s, -100.0f), step_from("pendulum", s, -2.0f));
  EXPECT_EQ(step_from("pendulum", s, std::numeric_limits<float>::infinity()),
            step_from("pendulum", s, 2.0f));
  EXPECT_NE(step_from("pendulum", s, 1.0f), step_from("pendulum", s, 2.0f));
}

TEST(Clipping, MountainCarClipsForceButChargesTheRawAction) {
  // Gymnasium 0.29.1 clips the force to [-1, 1] but computes the cost -0.1 a^2 from the raw
  // action; the golden data confirms it (e.g. a = 1.45 costs 0.21, not 0.1).
  const std::vector<double> s = {-0.5, 0.01};
  const auto over = step_from("mountaincar_continuous", s, 3.0f);
  const auto edge = step_from("mountaincar_continuous", s, 1.0f);
  EXPECT_EQ(std::vector<float>(over.begin(), over.end() - 1),
            std::vector<float>(edge.begin(), edge.end() - 1));
  EXPECT_FLOAT_EQ(over.back(), -0.9f);
  EXPECT_FLOAT_EQ(edge.back(), -0.1f);
}

TEST(Clipping, NanActionOnContinuousEnvsActsAsZero) {
  // A NaN action (e.g. from a diverged policy) is treated as 0: no crash, no NaN in the state.
  const std::vector<double> ps = {0.3, -0.2};
  EXPECT_EQ(step_from("pendulum", ps, std::nanf("")), step_from("pendulum", ps, 0.0f));
  const std::vector<double> ms = {-0.5, 0.01};
  const auto nan_step = step_from("mountaincar_continuous", ms, std::nanf(""));
  EXPECT_EQ(nan_step, step_from("mountaincar_continuous", ms, 0.0f));
  EXPECT_EQ(nan_step.back(), 0.0f);
}

TEST(CartPole, RewardIsOneOnEveryStepIncludingTheTerminatingOne) {
  auto env = make_env("cartpole");
  std::vector<float> obs(4);
  env->set_state({0.0, 0.0, 0.2, 0.5}, obs.data());  // falling to the right
  const float push_left = 0.0f;
  StepResult r;
  int steps = 0;
  do {
    r = env->step(&push_left, obs.data());
    EXPECT_EQ(r.reward, 1.0f);
    ++steps;
  } while (!r.terminated && steps < 100);
  EXPECT_TRUE(r.terminated);
  EXPECT_GT(obs[2], 12.0 * 2 * 3.14159265358979 / 360);
  // Stepping past termination is undefined in Gymnasium; it gives reward 0 there, as here.
  r = env->step(&push_left, obs.data());
  EXPECT_EQ(r.reward, 0.0f);
}

TEST(MountainCar, ReachingTheGoalTerminatesWithBonus) {
  auto env = make_env("mountaincar_continuous");
  std::vector<float> obs(2);
  env->set_state({0.44, 0.02}, obs.data());
  const float a = 0.5f;
  const StepResult r = env->step(&a, obs.data());
  EXPECT_TRUE(r.terminated);
  EXPECT_FALSE(r.truncated);
  EXPECT_FLOAT_EQ(r.reward, 100.0f - 0.1f * 0.25f);
}

TEST(MountainCar, LeftWallStopsTheCar) {
  auto env = make_env("mountaincar_continuous");
  std::vector<float> obs(2);
  env->set_state({-1.19, -0.05}, obs.data());
  const float a = -1.0f;
  env->step(&a, obs.data());
  EXPECT_FLOAT_EQ(obs[0], -1.2f);
  EXPECT_EQ(obs[1], 0.0f);
}

TEST(Acrobot, TipAboveTheLineTerminatesWithZeroReward) {
  auto env = make_env("acrobot");
  std::vector<float> obs(6);
  env->set_state({3.1, 0.0, 0.0, 0.0}, obs.data());  // nearly upright
  const float a = 1.0f;
  const StepResult r = env->step(&a, obs.data());
  EXPECT_TRUE(r.terminated);
  EXPECT_EQ(r.reward, 0.0f);
  env->set_state({0.0, 0.0, 0.0, 0.0}, obs.data());  // hanging down
  const StepResult r2 = env->step(&a, obs.data());
  EXPECT_FALSE(r2.terminated);
  EXPECT_EQ(r2.reward, -1.0f);
}

TEST(Pendulum, RewardAtRestUprightIsZeroAndObservationIsCosSin) {
  auto env = make_env("pendulum");
  std::vector<float> obs(3);
  env->set_state({0.0, 0.0}, obs.data());
  EXPECT_EQ(obs, (std::vector<float>{1.0f, 0.0f, 0.0f}));
  const float a = 0.0f;
  EXPECT_EQ(env->step(&a, obs.data()).reward, 0.0f);
  env->set_state({3.0, 1.0}, obs.data());
  // -(normalize(3)^2 + 0.1 * 1^2 + 0.001 * 0)
  EXPECT_FLOAT_EQ(env->step(&a, obs.data()).reward, -(9.0f + 0.1f));
}

}  // namespace
}  // namespace prefrl

namespace prefrl {
namespace {

TEST(ClipActions, BoxClippedNaNZeroDiscreteUntouched) {
  Space box = Space::box({2}, {-1.f, 0.f}, {1.f, 2.f});
  std::vector<float> a = {-3.f, 5.f, std::nanf(""), 1.5f};  // two actions of size 2
  clip_actions(box, a.data(), 2);
  EXPECT_EQ(a, (std::vector<float>{-1.f, 2.f, 0.f, 1.5f}));
  Space disc = Space::discrete_n(3);
  std::vector<float> d = {2.f, 7.f};
  clip_actions(disc, d.data(), 2);
  EXPECT_EQ(d, (std::vector<float>{2.f, 7.f}));
}

}  // namespace
}  // namespace prefrl
