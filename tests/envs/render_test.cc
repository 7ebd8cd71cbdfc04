// Rendering: every env draws a non-blank image that changes with the state, at any size
// >= 16x16, without writing outside the buffer; plus the rasteriser's primitives.
#include "prefrl/envs/render.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <tuple>

#include "prefrl/core/error.h"
#include "prefrl/envs/env.h"

namespace prefrl {
namespace {

// Two clearly different states per env.
std::pair<std::vector<double>, std::vector<double>> two_states(const std::string& name) {
  if (name == "cartpole") return {{0.0, 0.0, 0.0, 0.0}, {1.0, 0.0, 0.2, 0.0}};
  if (name == "pendulum") return {{0.0, 0.0}, {1.5, 0.0}};
  if (name == "mountaincar_continuous") return {{-0.5, 0.0}, {0.3, 0.0}};
  if (name == "acrobot") return {{0.0, 0.0, 0.0, 0.0}, {1.0, 1.0, 0.0, 0.0}};
  // MuJoCo tasks: qpos ++ qvel, the second with a bent joint.
  if (name == "hopper") return {{0, 1.25, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, {0, 1.25, 0, -1, -1, 0, 0, 0, 0, 0, 0, 0}};
  if (name == "halfcheetah" || name == "walker2d") {
    std::vector<double> a(18, 0.0), b(18, 0.0);
    a[1] = b[1] = name == "walker2d" ? 1.25 : 0.0;
    b[3] = b[6] = -0.5;
    return {a, b};
  }
  if (name == "swimmer") return {std::vector<double>(10, 0.0), {0, 0, 0, 1.0, -1.0, 0, 0, 0, 0, 0}};
  if (name == "reacher") return {{0, 0, 0.1, -0.1, 0, 0, 0, 0}, {1.0, 1.5, -0.1, 0.15, 0, 0, 0, 0}};
  if (name == "inverted_pendulum") return {{0, 0, 0, 0}, {0.5, 0.8, 0, 0}};
  if (name == "inverted_double_pendulum") return {{0, 0, 0, 0, 0, 0}, {-0.5, 0.5, -1.0, 0, 0, 0}};
  if (name == "movingdot") return {{3.0, 3.0}, {20.0, 25.0}};
  // Atari games: the state after a reset and after 30 more steps of holding one action.
  auto env = make_env(name);
  std::vector<float> obs(env->spec().observation.numel());
  env->seed(4);
  env->reset(obs.data());
  const std::vector<double> a = env->get_state();
  std::vector<float> action(1, static_cast<float>(env->spec().action.n - 1));
  for (int t = 0; t < 30; ++t) env->step(action.data(), obs.data());
  return {a, env->get_state()};
}

constexpr int kGuard = 64;
constexpr uint8_t kGuardByte = 0xA5;

// Renders into a buffer with guard bytes after the image; checks they are untouched.
std::vector<uint8_t> render(const Env& env, int w, int h) {
  std::vector<uint8_t> buf(static_cast<size_t>(w) * h * 3 + kGuard, kGuardByte);
  env.render(w, h, buf.data());
  for (size_t i = buf.size() - kGuard; i < buf.size(); ++i) EXPECT_EQ(buf[i], kGuardByte);
  buf.resize(buf.size() - kGuard);
  return buf;
}

int distinct_colours(const std::vector<uint8_t>& img) {
  std::set<std::tuple<uint8_t, uint8_t, uint8_t>> c;
  for (size_t i = 0; i < img.size(); i += 3) c.insert({img[i], img[i + 1], img[i + 2]});
  return static_cast<int>(c.size());
}

class RenderEveryEnv : public ::testing::TestWithParam<std::string> {};

INSTANTIATE_TEST_SUITE_P(Envs, RenderEveryEnv, ::testing::ValuesIn(env_names()),
                         [](const auto& info) { return info.param; });

TEST_P(RenderEveryEnv, NonBlankAndChangesWithState) {
  auto env = make_env(GetParam());
  std::vector<float> obs(env->spec().observation.numel());
  const auto [a, b] = two_states(GetParam());
  for (auto [w, h] : {std::pair{16, 16}, {64, 48}, {40, 90}, {160, 120}}) {
    env->set_state(a, obs.data());
    const auto img_a = render(*env, w, h);
    env->set_state(b, obs.data());
    const auto img_b = render(*env, w, h);
    EXPECT_GE(distinct_colours(img_a), 2) << w << "x" << h;
    EXPECT_GE(distinct_colours(img_b), 2) << w << "x" << h;
    EXPECT_NE(img_a, img_b) << w << "x" << h;
    EXPECT_EQ(render(*env, w, h), img_b) << "rendering is deterministic";
  }
}

TEST_P(RenderEveryEnv, ChangesAlongARollout) {
  auto env = make_env(GetParam());
  env->seed(2);
  std::vector<float> obs(env->spec().observation.numel());
  env->reset(obs.data());
  const auto first = render(*env, 64, 64);
  // Continuous: full positive action. Discrete: the last action, then action 1 (movingdot:
  // right, then up; it cannot be clamped in both directions at once).
  const Space& as = env->spec().action;
  std::vector<float> action(as.numel(), 1.0f);
  for (int t = 0; t < 10; ++t) {
    if (as.discrete) action[0] = t < 5 ? static_cast<float>(as.n - 1) : 1.0f;
    env->step(action.data(), obs.data());
  }
  EXPECT_NE(render(*env, 64, 64), first);
}

TEST_P(RenderEveryEnv, RejectsTinyOrNullBuffers) {
  auto env = make_env(GetParam());
  std::vector<uint8_t> buf(64 * 64 * 3);
  EXPECT_THROW(env->render(15, 32, buf.data()), UsageError);
  EXPECT_THROW(env->render(32, 0, buf.data()), UsageError);
  EXPECT_THROW(env->render(32, 32, nullptr), UsageError);
}

TEST(MovingDotRender, NearestNeighbourUpscaleShowsTheDotWhereTheObservationHasIt) {
  auto env = make_env("movingdot");
  std::vector<float> obs(2 * 32 * 32);
  env->set_state({5.0, 20.0}, obs.data());
  const int w = 96, h = 64;  // 3x horizontally, 2x vertically
  const auto img = render(*env, w, h);
  // The dot's centre cell (5, 20) covers pixels x in [15, 18), y in [40, 42).
  const uint8_t* dot = &img[(41 * w + 16) * 3];
  const uint8_t* bg = &img[(2 * w + 2) * 3];
  EXPECT_GT(dot[0], 200);
  EXPECT_LT(dot[1], 100);
  EXPECT_LT(bg[0], 50);
  // The target is marked faintly: different from the background, dimmer than the dot.
  const uint8_t* target = &img[((16 * 2) * w + 16 * 3) * 3];
  EXPECT_NE(std::tie(target[0], target[1], target[2]), std::tie(bg[0], bg[1], bg[2]));
  EXPECT_LT(target[0] + target[1] + target[2], dot[0] + dot[1] + dot[2]);
}

int count(const std::vector<uint8_t>& img, draw::Color c) {
  int n = 0;
  for (size_t i = 0; i < img.size(); i += 3)
    n += img[i] == c.r && img[i + 1] == c.g && img[i + 2] == c.b;
  return n;
}

TEST(Canvas, Primitives) {
  const int w = 40, h = 30;
  std::vector<uint8_t> img(w * h * 3);
  draw::Canvas c(w, h, img.data());
  const draw::Color white{255, 255, 255}, red{255, 0, 0};
  c.fill(white);
  EXPECT_EQ(count(img, white), w * h);

  c.rect(2, 3, 12, 8, red);  // covers pixel centres x in [2.5, 11.5], y in [3.5, 7.5]
  EXPECT_EQ(count(img, red), 10 * 5);

  c.fill(white);
  c.circle({20, 15}, 8, red);
  EXPECT_NEAR(count(img, red), 3.14159 * 64, 12);

  c.fill(white);
  c.line({5.0, 10.5}, {35.0, 10.5}, 3.0, red);  // horizontal: 3 rows, plus round caps
  EXPECT_GE(count(img, red), 30 * 3);
  EXPECT_LE(count(img, red), 30 * 3 + 10);

  c.fill(white);
  c.polygon({{0, 0}, {20, 0}, {0, 20}}, red);  // right triangle, area 200
  EXPECT_NEAR(count(img, red), 200, 25);

  c.fill(white);
  c.polyline({{1, 1}, {38, 1}, {38, 28}}, 1.0, red);
  EXPECT_GE(count(img, red), 37 + 27);

  // Shapes partly or wholly off the canvas are clipped, not written out of bounds.
  c.fill(white);
  c.circle({-5, -5}, 10, red);
  c.line({-100, -100}, {100, 100}, 4, red);
  c.rect(-50, -50, 500, 2, red);
  EXPECT_GT(count(img, red), 0);
}

TEST(Viewport, FitsAndCentresTheWorld) {
  const auto vp = draw::Viewport::fit(200, 100, -1.0, 1.0, 0.0, 1.0);
  EXPECT_DOUBLE_EQ(vp.scale, 100.0);
  const draw::Point lo = vp(-1.0, 0.0), hi = vp(1.0, 1.0);
  EXPECT_DOUBLE_EQ(lo.x, 0.0);
  EXPECT_DOUBLE_EQ(lo.y, 100.0);
  EXPECT_DOUBLE_EQ(hi.x, 200.0);
  EXPECT_DOUBLE_EQ(hi.y, 0.0);
  EXPECT_DOUBLE_EQ(vp.len(0.001, 1.5), 1.5);
}

}  // namespace
}  // namespace prefrl
