#include "prefrl/envs/pendulum.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "prefrl/envs/action_util.h"
#include "prefrl/envs/render.h"

namespace prefrl {

const EnvSpec& Pendulum::spec() const {
  static const EnvSpec s = [] {
    EnvSpec e;
    e.name = "pendulum";
    e.reference = "Gymnasium Pendulum-v1";
    const float v = static_cast<float>(kMaxSpeed), t = static_cast<float>(kMaxTorque);
    e.observation = Space::box({3}, {-1.0f, -1.0f, -v}, {1.0f, 1.0f, v});
    e.action = Space::box({1}, {-t}, {t});
    e.max_episode_steps = kMaxEpisodeSteps;
    e.fps = 1.0 / kDt;
    e.can_terminate = false;
    e.state_size = 2;
    return e;
  }();
  return s;
}

std::vector<double> Pendulum::get_state() const { return {theta_, theta_dot_}; }

bool Pendulum::state_from_obs(const float* obs, std::vector<double>* state) const {
  *state = {std::atan2(double(obs[1]), double(obs[0])), double(obs[2])};  // obs = cos θ, sin θ, θ'
  return true;
}

double Pendulum::angle_normalize(double x) {
  constexpr double pi = std::numbers::pi;
  // Python's float %: the remainder takes the sign of the divisor.
  double m = std::fmod(x + pi, 2 * pi);
  if (m != 0.0) {
    if (m < 0.0) m += 2 * pi;
  } else {
    m = 0.0;
  }
  return m - pi;
}

void Pendulum::write_obs(float* obs) const {
  obs[0] = static_cast<float>(std::cos(theta_));
  obs[1] = static_cast<float>(std::sin(theta_));
  obs[2] = static_cast<float>(theta_dot_);
}

void Pendulum::reset_impl(float* obs) {
  theta_ = rng_.uniform(-std::numbers::pi, std::numbers::pi);
  theta_dot_ = rng_.uniform(-1.0, 1.0);
  last_u_ = 0.0f;
  write_obs(obs);
}

void Pendulum::set_state_impl(const std::vector<double>& state, float* obs) {
  envs_detail::check_state("pendulum", state, 2);
  theta_ = state[0];
  theta_dot_ = state[1];
  last_u_ = 0.0f;
  write_obs(obs);
}

StepResult Pendulum::step_impl(const float* action, float* obs) {
  const float u = envs_detail::clip_action(action[0], static_cast<float>(-kMaxTorque),
                                           static_cast<float>(kMaxTorque));
  last_u_ = u;
  // Gymnasium squares the float32 torque in float32 before scaling it.
  const float u2 = u * u;
  const double th_n = angle_normalize(theta_);
  const double costs =
      th_n * th_n + 0.1 * (theta_dot_ * theta_dot_) + 0.001 * static_cast<double>(u2);

  const double angular_acc = 3 * kGravity / (2 * kLength) * std::sin(theta_) +
                             3.0 / (kMass * kLength * kLength) * static_cast<double>(u);
  double new_theta_dot = theta_dot_ + angular_acc * kDt;
  new_theta_dot = std::clamp(new_theta_dot, -kMaxSpeed, kMaxSpeed);
  theta_ = theta_ + new_theta_dot * kDt;
  theta_dot_ = new_theta_dot;

  StepResult r;
  r.reward = static_cast<float>(-costs);
  write_obs(obs);
  return r;
}

void Pendulum::render(int width, int height, uint8_t* rgb) const {
  draw::check_render_args("pendulum", width, height, rgb);
  draw::Canvas canvas(width, height, rgb);
  canvas.fill({255, 255, 255});
  const auto vp = draw::Viewport::fit(width, height, -2.2, 2.2, -2.2, 2.2);
  const draw::Color red{204, 77, 77};
  // The last torque as a horizontal bar under the pivot: right for positive (counter-clockwise).
  if (last_u_ != 0.0f) {
    const draw::Point a = vp(0.0, -1.4), b = vp(0.5 * last_u_, -1.3);
    canvas.rect(a.x, a.y, b.x, b.y, {120, 120, 120});
  }
  // theta = 0 points straight up; positive theta turns counter-clockwise.
  const draw::Point pivot = vp(0.0, 0.0);
  const draw::Point tip = vp(-std::sin(theta_) * kLength, std::cos(theta_) * kLength);
  canvas.line(pivot, tip, vp.len(0.2, 2.0), red);
  canvas.circle(pivot, vp.len(0.05, 1.0), {0, 0, 0});
}

}  // namespace prefrl
