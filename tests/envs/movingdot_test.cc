// MovingDot: observation layout (current and previous frame), moves, clamping, rewards, reset
// distribution, success.
#include "prefrl/envs/movingdot.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <set>
#include <tuple>
#include <utility>

#include "prefrl/core/error.h"
#include "prefrl/envs/env.h"

namespace prefrl {
namespace {

struct Dot {
  std::unique_ptr<Env> env = make_env("movingdot");
  std::vector<float> obs = std::vector<float>(2 * 32 * 32);
  void set(int x, int y) { env->set_state({double(x), double(y)}, obs.data()); }
  StepResult step(int a) {
    const float f = static_cast<float>(a);
    return env->step(&f, obs.data());
  }
  std::pair<int, int> pos() const {
    const auto s = env->get_state();
    return {static_cast<int>(s[0]), static_cast<int>(s[1])};
  }
};

TEST(MovingDot, ObservationIsA3x3DotInRowYColumnX) {
  Dot d;
  d.set(5, 9);
  int ones = 0;
  for (int y = 0; y < 32; ++y) {
    for (int x = 0; x < 32; ++x) {
      const float v = d.obs[y * 32 + x];
      const bool inside = std::abs(x - 5) <= 1 && std::abs(y - 9) <= 1;
      EXPECT_EQ(v, inside ? 1.0f : 0.0f) << "pixel (" << x << ", " << y << ")";
      ones += v == 1.0f;
    }
  }
  EXPECT_EQ(ones, 9);
  // After set_state with a position only, the previous frame is the current one.
  for (int i = 0; i < 32 * 32; ++i) ASSERT_EQ(d.obs[32 * 32 + i], d.obs[i]) << i;
  // Corners of the range keep the whole dot on the canvas.
  d.set(1, 30);
  EXPECT_EQ(d.obs[31 * 32 + 0], 1.0f);
  d.set(30, 1);
  EXPECT_EQ(d.obs[0 * 32 + 31], 1.0f);
}

// The dot's centre in frame c (0 current, 1 previous), from the pixels.
std::pair<int, int> centre(const std::vector<float>& obs, int c) {
  int sx = 0, sy = 0, n = 0;
  for (int y = 0; y < 32; ++y)
    for (int x = 0; x < 32; ++x)
      if (obs[c * 32 * 32 + y * 32 + x] == 1.0f) { sx += x; sy += y; ++n; }
  EXPECT_EQ(n, 9);
  return {sx / 9, sy / 9};
}

TEST(MovingDot, SecondChannelIsTheFrameBeforeTheLastAction) {
  Dot d;
  d.set(10, 10);
  d.step(4);
  EXPECT_EQ(centre(d.obs, 0), std::make_pair(11, 10));
  EXPECT_EQ(centre(d.obs, 1), std::make_pair(10, 10));
  d.step(1);
  EXPECT_EQ(centre(d.obs, 0), std::make_pair(11, 9));
  EXPECT_EQ(centre(d.obs, 1), std::make_pair(11, 10));
  d.step(0);
  EXPECT_EQ(centre(d.obs, 1), centre(d.obs, 0));
  // The state holds both positions; set_state(get_state()) gives the same observation, and the
  // pixels give back the state.
  EXPECT_EQ(d.env->get_state(), (std::vector<double>{11, 9, 11, 9}));
  d.step(2);
  const auto state = d.env->get_state();
  EXPECT_EQ(state, (std::vector<double>{11, 10, 11, 9}));
  const auto before = d.obs;
  d.env->set_state(state, d.obs.data());
  EXPECT_EQ(d.obs, before);
  std::vector<double> read;
  ASSERT_TRUE(d.env->state_from_obs(d.obs.data(), &read));
  EXPECT_EQ(read, state);
  // A reset starts with both frames equal.
  d.env->seed(5);
  d.env->reset(d.obs.data());
  EXPECT_EQ(centre(d.obs, 1), centre(d.obs, 0));
}

TEST(MovingDot, ActionsMoveAndClamp) {
  Dot d;
  d.set(10, 10);
  d.step(1);
  EXPECT_EQ(d.pos(), std::make_pair(10, 9));  // up
  d.step(2);
  d.step(2);
  EXPECT_EQ(d.pos(), std::make_pair(10, 11));  // down
  d.step(3);
  EXPECT_EQ(d.pos(), std::make_pair(9, 11));  // left
  d.step(4);
  d.step(4);
  EXPECT_EQ(d.pos(), std::make_pair(11, 11));  // right
  d.step(0);
  EXPECT_EQ(d.pos(), std::make_pair(11, 11));  // no-op
  d.set(1, 1);
  EXPECT_EQ(d.step(1).reward, 0.0f);
  EXPECT_EQ(d.step(3).reward, 0.0f);
  EXPECT_EQ(d.pos(), std::make_pair(1, 1));
  d.set(30, 30);
  d.step(2);
  d.step(4);
  EXPECT_EQ(d.pos(), std::make_pair(30, 30));
}

TEST(MovingDot, RewardIsTheDecreaseOfManhattanDistance) {
  Dot d;
  d.set(10, 16);
  EXPECT_EQ(d.step(4).reward, 1.0f);   // towards
  EXPECT_EQ(d.step(3).reward, -1.0f);  // away
  EXPECT_EQ(d.step(1).reward, -1.0f);  // sideways off the target row
  EXPECT_EQ(d.step(2).reward, 1.0f);   // back onto it
  EXPECT_EQ(d.step(0).reward, 0.0f);   // no-op
  d.set(16, 16);
  EXPECT_EQ(d.step(0).reward, 0.0f);
  EXPECT_EQ(d.step(4).reward, -1.0f);
}

TEST(MovingDot, SuccessWithinDistanceOne) {
  Dot d;
  const std::vector<std::tuple<int, int, bool>> cases = {
      {16, 16, true}, {17, 16, true}, {16, 15, true},
      {17, 17, false}, {18, 16, false}, {1, 1, false}};
  for (auto [x, y, ok] : cases) {
    d.set(x, y);
    EXPECT_EQ(d.env->success(), ok) << x << ", " << y;
  }
}

TEST(MovingDot, ResetIsUniformAwayFromTheTarget) {
  Dot d;
  d.env->seed(123);
  std::set<std::pair<int, int>> seen;
  int min_dist = 100;
  for (int i = 0; i < 20000; ++i) {
    d.env->reset(d.obs.data());
    const auto [x, y] = d.pos();
    ASSERT_GE(x, 1);
    ASSERT_LE(x, 30);
    ASSERT_GE(y, 1);
    ASSERT_LE(y, 30);
    const int dist = std::abs(x - 16) + std::abs(y - 16);
    ASSERT_GE(dist, 5);
    min_dist = std::min(min_dist, dist);
    seen.insert({x, y});
    ASSERT_FALSE(d.env->success());
  }
  EXPECT_EQ(min_dist, 5);
  // 900 cells minus the 41 within distance 4: all of them turn up in 20000 draws.
  EXPECT_EQ(seen.size(), 859u);
}

TEST(MovingDot, GreedyPolicySucceedsWithinTheTimeLimit) {
  Dot d;
  d.env->seed(0);
  for (int episode = 0; episode < 20; ++episode) {
    d.env->reset(d.obs.data());
    float ret = 0.0f;
    StepResult r;
    do {
      const auto [x, y] = d.pos();
      const int a = x < 16 ? 4 : x > 16 ? 3 : y < 16 ? 2 : y > 16 ? 1 : 0;
      r = d.step(a);
      ret += r.reward;
    } while (!r.truncated);
    EXPECT_EQ(d.env->elapsed_steps(), 50);
    EXPECT_TRUE(d.env->success());
    EXPECT_GE(ret, 5.0f);
  }
}

TEST(MovingDot, SetStateRejectsPositionsOffTheGrid) {
  Dot d;
  for (auto [x, y] : {std::pair{0.0, 5.0}, {5.0, 31.0}, {2.5, 3.0}}) {
    EXPECT_THROW(d.env->set_state({x, y}, d.obs.data()), UsageError) << x << ", " << y;
    EXPECT_THROW(d.env->set_state({5.0, 5.0, x, y}, d.obs.data()), UsageError) << x << ", " << y;
  }
  EXPECT_THROW(d.env->set_state({5.0, 5.0, 5.0}, d.obs.data()), UsageError);
}

}  // namespace
}  // namespace prefrl
