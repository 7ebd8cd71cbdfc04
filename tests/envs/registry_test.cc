// The environment registry: built-in and user environments register the same way, names are
// checked, and a registered environment is built and stepped like a built-in one.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "prefrl/core/error.h"
#include "prefrl/envs/env.h"

namespace prefrl {
namespace {

// A point on a line that should reach the origin (docs/envs.md's example, shortened).
class PointToOrigin : public Env {
 public:
  const EnvSpec& spec() const override {
    static const EnvSpec s = [] {
      EnvSpec e;
      e.name = "point_to_origin";
      e.observation = Space::box({1}, {-10.f}, {10.f});
      e.action = Space::box({1}, {-1.f}, {1.f});
      e.max_episode_steps = 20;
      e.fps = 10;
      e.state_size = 1;
      return e;
    }();
    return s;
  }
  std::vector<double> get_state() const override { return {x_}; }
  void render(int width, int height, uint8_t* rgb) const override { std::fill(rgb, rgb + width * height * 3, 0); }

 protected:
  void reset_impl(float* obs) override {
    x_ = rng_.uniform(-5.0, 5.0);
    obs[0] = static_cast<float>(x_);
  }
  StepResult step_impl(const float* action, float* obs) override {
    x_ += 0.1 * action[0];
    obs[0] = static_cast<float>(x_);
    StepResult r;
    r.reward = static_cast<float>(-std::fabs(x_));
    r.terminated = std::fabs(x_) < 0.05;
    return r;
  }
  void set_state_impl(const std::vector<double>& state, float* obs) override {
    x_ = state.at(0);
    obs[0] = static_cast<float>(x_);
  }

 private:
  double x_ = 0.0;
};

TEST(EnvRegistry, BuiltInsAreRegisteredFirstInTheirOrder) {
  const std::vector<std::string> names = env_names();
  ASSERT_GE(names.size(), 12u);
  EXPECT_EQ(names[0], "cartpole");
  EXPECT_EQ(names[4], "movingdot");
  EXPECT_EQ(names[11], "inverted_double_pendulum");
}

TEST(EnvRegistry, AUserEnvironmentIsBuiltAndSteppedLikeABuiltInOne) {
  register_env("point_to_origin", [] { return std::make_unique<PointToOrigin>(); });
  const std::vector<std::string> names = env_names();
  EXPECT_EQ(names.back(), "point_to_origin");
  EXPECT_EQ(env_spec("point_to_origin").max_episode_steps, 20);
  std::unique_ptr<VecEnv> v = make_vec_env("point_to_origin", 3, 11);
  v->reset();
  const std::vector<float> first = v->obs();
  int truncations = 0;
  const std::vector<float> push(3, 0.0f);  // no force: episodes run to the time limit
  for (int t = 0; t < 20; ++t) {
    v->step(push.data());
    for (int i = 0; i < 3; ++i) truncations += v->truncated()[i];
  }
  EXPECT_EQ(truncations, 3);
  // Env i is seeded seed + i, exactly as a SerialVecEnv built from the factory directly.
  SerialVecEnv direct([] { return std::make_unique<PointToOrigin>(); }, 3, 11);
  direct.reset();
  EXPECT_EQ(direct.obs(), first);
  EXPECT_NE(first[0], first[1]);
}

TEST(EnvRegistry, NamesAreCheckedWhenRegisteredAndWhenLookedUp) {
  auto f = [] { return std::make_unique<PointToOrigin>(); };
  EXPECT_THROW(register_env("cartpole", f), UsageError);        // taken
  EXPECT_THROW(register_env("", f), UsageError);                // empty
  EXPECT_THROW(register_env("Point To Origin", f), UsageError); // not a run-name word
  EXPECT_THROW(register_env("no_factory", EnvFactory()), UsageError);
  try {
    make_env("no_such_env");
    FAIL() << "no UsageError";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("known: cartpole"), std::string::npos) << e.what();
  }
  EXPECT_THROW(make_vec_env("cartpole", 0, 1), UsageError);
}

}  // namespace
}  // namespace prefrl
