// Wrappers: each one checked against the unwrapped environment stepped beside it with the same
// seed and actions (frame stack: frame j is the observation of j steps ago; frame skip: k inner
// steps per step, rewards summed; time limit: truncation on its step), their states round-trip,
// they compose, and they register and vectorise like any environment.
#include "prefrl/envs/wrappers.h"

#include <gtest/gtest.h>

#include <cmath>
#include <deque>
#include <string>
#include <vector>

#include "prefrl/core/error.h"
#include "prefrl/envs/env.h"

namespace prefrl {
namespace {

std::vector<float> row(const std::vector<float>& v, int64_t j, int64_t n) {
  return std::vector<float>(v.begin() + j * n, v.begin() + (j + 1) * n);
}

TEST(FrameStack, FrameJIsTheObservationOfJStepsAgoNewestFirst) {
  constexpr int k = 3;
  FrameStack stacked(make_env("pendulum"), k);
  std::unique_ptr<Env> plain = make_env("pendulum");
  const EnvSpec& spec = stacked.spec();
  ASSERT_EQ(spec.observation.shape, std::vector<int64_t>{9});
  ASSERT_EQ(spec.observation.low.size(), 9u);
  EXPECT_EQ(row(spec.observation.high, 2, 3), plain->spec().observation.high);
  EXPECT_EQ(spec.state_size, 2 * k);
  EXPECT_EQ(spec.max_episode_steps, 200);
  EXPECT_EQ(spec.name, "pendulum");

  stacked.seed(7);
  plain->seed(7);
  std::vector<float> obs(9), p(3);
  stacked.reset(obs.data());
  plain->reset(p.data());
  std::deque<std::vector<float>> history(k, p);  // newest first; a reset repeats the first frame
  for (int j = 0; j < k; ++j) EXPECT_EQ(row(obs, j, 3), history[j]) << "after reset, frame " << j;

  for (int t = 1; t <= 10; ++t) {
    const float a = static_cast<float>(t % 5) * 0.8f - 2.0f;
    const StepResult rs = stacked.step(&a, obs.data());
    const StepResult rp = plain->step(&a, p.data());
    EXPECT_EQ(rs.reward, rp.reward);
    history.push_front(p);
    history.pop_back();
    for (int j = 0; j < k; ++j) ASSERT_EQ(row(obs, j, 3), history[j]) << "step " << t << ", frame " << j;
  }
  EXPECT_EQ(stacked.elapsed_steps(), 10);

  // The state is the frames' inner states, newest first; it restores the whole stack, and the
  // observation gives it back.
  const std::vector<double> state = stacked.get_state();
  ASSERT_EQ(state.size(), 6u);
  const std::vector<double> newest = plain->get_state();
  EXPECT_EQ(std::vector<double>(state.begin(), state.begin() + 2), newest);
  std::vector<float> restored(9);
  FrameStack other(make_env("pendulum"), k);
  other.set_state(state, restored.data());
  EXPECT_EQ(restored, obs);
  EXPECT_EQ(other.get_state(), state);
  std::vector<double> from_obs;
  ASSERT_TRUE(stacked.state_from_obs(obs.data(), &from_obs));
  ASSERT_EQ(from_obs.size(), 6u);
  for (size_t i = 0; i < 6; i += 2) {  // (theta, theta_dot) per frame; theta up to a turn
    EXPECT_NEAR(std::remainder(from_obs[i] - state[i], 2 * M_PI), 0.0, 1e-5) << i;
    EXPECT_NEAR(from_obs[i + 1], state[i + 1], 1e-5) << i;
  }

  // One inner state fills every frame with it.
  other.set_state(newest, restored.data());
  for (int j = 0; j < k; ++j) EXPECT_EQ(row(restored, j, 3), history[0]) << j;
  EXPECT_THROW(other.set_state({0.1, 0.2, 0.3}, restored.data()), UsageError);
}

TEST(FrameStack, StacksChannelsOfImages) {
  FrameStack stacked(make_env("movingdot"), 2);  // movingdot is itself two stacked frames
  EXPECT_EQ(stacked.spec().observation.shape, (std::vector<int64_t>{4, 32, 32}));
  EXPECT_EQ(stacked.spec().state_size, 8);
  EXPECT_TRUE(stacked.spec().pixels);
}

TEST(FrameSkip, RepeatsTheActionAndSumsTheRewards) {
  constexpr int k = 3;
  FrameSkip skipped(make_env("pendulum"), k);
  std::unique_ptr<Env> plain = make_env("pendulum");
  EXPECT_EQ(skipped.spec().max_episode_steps, 67);  // ceil(200 / 3)
  EXPECT_DOUBLE_EQ(skipped.spec().fps, plain->spec().fps / 3);
  skipped.seed(3);
  plain->seed(3);
  std::vector<float> obs(3), p(3);
  skipped.reset(obs.data());
  plain->reset(p.data());
  EXPECT_EQ(obs, p);
  StepResult r;
  for (int t = 1; t <= 67; ++t) {
    const float a = t % 2 ? 1.5f : -0.5f;
    r = skipped.step(&a, obs.data());
    float sum = 0.0f;
    for (int j = 0; j < k; ++j) sum += plain->step(&a, p.data()).reward;
    ASSERT_EQ(r.reward, sum) << t;
    ASSERT_EQ(obs, p) << t;
    ASSERT_EQ(r.truncated, t == 67) << t;  // its own limit, not the inner one at 200 inner steps
  }
}

TEST(FrameSkip, AnInnerTerminationEndsTheRepeat) {
  // CartPole falls within a few dozen pushes the same way; the step that falls is shorter.
  FrameSkip skipped(make_env("cartpole"), 4);
  std::unique_ptr<Env> plain = make_env("cartpole");
  skipped.seed(1);
  plain->seed(1);
  std::vector<float> obs(4), p(4);
  skipped.reset(obs.data());
  plain->reset(p.data());
  const float push = 1.0f;
  int inner_steps = 0;
  for (int t = 0; t < 100; ++t) {
    const StepResult r = skipped.step(&push, obs.data());
    float sum = 0.0f;
    bool fell = false;
    for (int j = 0; j < 4 && !fell; ++j) {
      const StepResult q = plain->step(&push, p.data());
      sum += q.reward;
      fell = q.terminated;
      ++inner_steps;
    }
    ASSERT_EQ(r.reward, sum);
    ASSERT_EQ(obs, p);
    ASSERT_EQ(r.terminated, fell);
    if (fell) break;
  }
  EXPECT_EQ(plain->elapsed_steps(), inner_steps);
  EXPECT_GT(inner_steps, 4);
  EXPECT_LT(inner_steps, 100);
}

TEST(TimeLimit, TruncatesOnItsStepWhateverTheInnerLimit) {
  for (int limit : {7, 300}) {  // shorter and longer than pendulum's 200
    TimeLimit env(make_env("pendulum"), limit);
    EXPECT_EQ(env.spec().max_episode_steps, limit);
    env.seed(2);
    std::vector<float> obs(3);
    env.reset(obs.data());
    const float a = 0.0f;
    for (int t = 1; t <= limit; ++t) ASSERT_EQ(env.step(&a, obs.data()).truncated, t == limit) << limit << " " << t;
    env.reset(obs.data());
    EXPECT_FALSE(env.step(&a, obs.data()).truncated);
  }
}

TEST(Wrappers, SeedingTheWrapperSeedsTheInnerEnvironment) {
  FrameStack outer(std::make_unique<TimeLimit>(make_env("cartpole"), 50), 2);
  std::unique_ptr<Env> plain = make_env("cartpole");
  outer.seed(11);
  plain->seed(11);
  std::vector<float> obs(8), p(4);
  outer.reset(obs.data());
  plain->reset(p.data());
  EXPECT_EQ(row(obs, 0, 4), p);
  EXPECT_EQ(outer.rng().state(), plain->rng().state());
  EXPECT_EQ(&outer.rng(), &outer.inner().rng());
}

TEST(Wrappers, RejectBadArguments) {
  EXPECT_THROW(FrameStack(nullptr, 2), UsageError);
  EXPECT_THROW(FrameStack(make_env("cartpole"), 0), UsageError);
  EXPECT_THROW(FrameSkip(make_env("cartpole"), 0), UsageError);
  EXPECT_THROW(TimeLimit(make_env("cartpole"), 0), UsageError);
}

TEST(Wrappers, ComposeRegisterAndVectoriseLikeAnyEnvironment) {
  register_env("wrapped_pendulum_test", [] {
    return std::make_unique<FrameStack>(std::make_unique<FrameSkip>(std::make_unique<TimeLimit>(make_env("pendulum"), 20), 2), 4);
  });
  const EnvSpec spec = env_spec("wrapped_pendulum_test");
  EXPECT_EQ(spec.observation.numel(), 12);
  EXPECT_EQ(spec.max_episode_steps, 10);  // 20 inner steps, 2 per step
  std::unique_ptr<VecEnv> vec = make_vec_env("wrapped_pendulum_test", 3, 5);
  vec->reset();
  const std::vector<float> actions(3, 0.5f);
  int ended = 0;
  for (int t = 1; t <= 25; ++t) {
    vec->step(actions.data());
    for (int i = 0; i < 3; ++i) {
      ASSERT_EQ(vec->truncated()[i] != 0, t % 10 == 0) << t;
      ended += vec->truncated()[i];
    }
  }
  EXPECT_EQ(ended, 6);
  // After a reset every frame is the first observation of the new episode.
  vec->reset();
  const std::vector<float> fresh = row(vec->obs(), 0, 12);
  for (int j = 1; j < 4; ++j) EXPECT_EQ(row(fresh, j, 3), row(fresh, 0, 3));
}

}  // namespace
}  // namespace prefrl
