#include "prefrl/envs/movingdot.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>

#include "prefrl/core/error.h"
#include "prefrl/envs/action_util.h"
#include "prefrl/envs/render.h"

namespace prefrl {

const EnvSpec& MovingDot::spec() const {
  static const EnvSpec s = [] {
    EnvSpec e;
    e.name = "movingdot";
    e.reference = "prefrl MovingDot (pixel sanity task)";
    e.observation = Space::bytes({1, kSize, kSize});  // 0 and 1: the bytes 0 and 255
    e.action = Space::discrete_n(5);
    e.max_episode_steps = kMaxEpisodeSteps;
    e.fps = 10.0;
    e.pixels = true;
    e.can_terminate = false;
    e.state_size = 2;
    e.has_success = true;
    return e;
  }();
  return s;
}

std::vector<double> MovingDot::get_state() const { return {double(x_), double(y_)}; }

bool MovingDot::state_from_obs(const float* obs, std::vector<double>* state) const {
  // The centre of the lit 3x3 block.
  state->clear();
  double sx = 0, sy = 0, n = 0;
  for (int y = 0; y < kSize; ++y)
    for (int x = 0; x < kSize; ++x)
      if (obs[y * kSize + x] > 0.5f) { sx += x; sy += y; n += 1; }
  if (n == 0) return false;
  state->push_back(std::clamp(std::round(sx / n), double(kMinPos), double(kMaxPos)));
  state->push_back(std::clamp(std::round(sy / n), double(kMinPos), double(kMaxPos)));
  return true;
}

int MovingDot::distance() const { return std::abs(x_ - kTargetX) + std::abs(y_ - kTargetY); }

bool MovingDot::success() const { return distance() <= kSuccessDistance; }

void MovingDot::write_obs(float* obs) const {
  std::fill(obs, obs + kSize * kSize, 0.0f);
  for (int y = y_ - 1; y <= y_ + 1; ++y)
    for (int x = x_ - 1; x <= x_ + 1; ++x) obs[y * kSize + x] = 1.0f;
}

void MovingDot::reset_impl(float* obs) {
  // Uniform over [1, 30]^2 minus the diamond of radius 4 around the target (rejection sampling).
  do {
    x_ = kMinPos + static_cast<int>(rng_.integer(kMaxPos - kMinPos + 1));
    y_ = kMinPos + static_cast<int>(rng_.integer(kMaxPos - kMinPos + 1));
  } while (distance() < kMinStartDistance);
  write_obs(obs);
}

void MovingDot::set_state_impl(const std::vector<double>& state, float* obs) {
  envs_detail::check_state("movingdot", state, 2);
  for (double v : state) {
    if (v != std::floor(v) || v < kMinPos || v > kMaxPos) {
      throw UsageError("movingdot: set_state position " + std::to_string(v) +
                       " is invalid; expected an integer in [" + std::to_string(kMinPos) + ", " +
                       std::to_string(kMaxPos) + "]");
    }
  }
  x_ = static_cast<int>(state[0]);
  y_ = static_cast<int>(state[1]);
  write_obs(obs);
}

StepResult MovingDot::step_impl(const float* action, float* obs) {
  static constexpr int kDx[5] = {0, 0, 0, -1, 1};
  static constexpr int kDy[5] = {0, -1, 1, 0, 0};
  const int a = envs_detail::discrete_action("movingdot", action[0], 5);
  const int before = distance();
  x_ = std::clamp(x_ + kDx[a], kMinPos, kMaxPos);
  y_ = std::clamp(y_ + kDy[a], kMinPos, kMaxPos);
  StepResult r;
  r.reward = static_cast<float>(before - distance());
  write_obs(obs);
  return r;
}

void MovingDot::render(int width, int height, uint8_t* rgb) const {
  draw::check_render_args("movingdot", width, height, rgb);
  draw::Canvas canvas(width, height, rgb);
  const draw::Color background{16, 16, 24}, target{60, 60, 96}, dot{240, 40, 40};
  // Nearest neighbour: image pixel (px, py) shows canvas cell (px * 32 / width, py * 32 / height).
  for (int py = 0; py < height; ++py) {
    const int cy = static_cast<int>(static_cast<int64_t>(py) * kSize / height);
    for (int px = 0; px < width; ++px) {
      const int cx = static_cast<int>(static_cast<int64_t>(px) * kSize / width);
      draw::Color c = background;
      if (std::abs(cx - kTargetX) <= 1 && std::abs(cy - kTargetY) <= 1) c = target;
      if (std::abs(cx - x_) <= 1 && std::abs(cy - y_) <= 1) c = dot;
      canvas.set(px, py, c);
    }
  }
}

}  // namespace prefrl
