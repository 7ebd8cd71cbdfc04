#include "prefrl/envs/acrobot.h"

#include <algorithm>
#include <cmath>

#include "prefrl/envs/action_util.h"
#include "prefrl/envs/render.h"

namespace prefrl {

namespace {

constexpr double kPi = std::numbers::pi;

// Wraps x into [m, M] by whole periods, as Gymnasium's acrobot.wrap.
double wrap(double x, double m, double M) {
  const double diff = M - m;
  while (x > M) x = x - diff;
  while (x < m) x = x + diff;
  return x;
}

}  // namespace

const EnvSpec& Acrobot::spec() const {
  static const EnvSpec s = [] {
    EnvSpec e;
    e.name = "acrobot";
    e.reference = "Gymnasium Acrobot-v1";
    const float v1 = static_cast<float>(kMaxVel1), v2 = static_cast<float>(kMaxVel2);
    e.observation = Space::box({6}, {-1, -1, -1, -1, -v1, -v2}, {1, 1, 1, 1, v1, v2});
    e.action = Space::discrete_n(3);
    e.max_episode_steps = kMaxEpisodeSteps;
    e.fps = 15.0;  // Gymnasium's render_fps (3x real time: one step is 0.2 s)
    e.state_size = 4;
    return e;
  }();
  return s;
}

std::vector<double> Acrobot::get_state() const { return {s_[0], s_[1], s_[2], s_[3]}; }

bool Acrobot::state_from_obs(const float* obs, std::vector<double>* state) const {
  // obs = cos θ1, sin θ1, cos θ2, sin θ2, θ1', θ2'.
  *state = {std::atan2(double(obs[1]), double(obs[0])), std::atan2(double(obs[3]), double(obs[2])),
            double(obs[4]), double(obs[5])};
  return true;
}

void Acrobot::write_obs(float* obs) const {
  obs[0] = static_cast<float>(std::cos(s_[0]));
  obs[1] = static_cast<float>(std::sin(s_[0]));
  obs[2] = static_cast<float>(std::cos(s_[1]));
  obs[3] = static_cast<float>(std::sin(s_[1]));
  obs[4] = static_cast<float>(s_[2]);
  obs[5] = static_cast<float>(s_[3]);
}

void Acrobot::reset_impl(float* obs) {
  // Gymnasium draws the initial state as float32.
  for (double& v : s_) v = static_cast<float>(rng_.uniform(-0.1, 0.1));
  write_obs(obs);
}

void Acrobot::set_state_impl(const std::vector<double>& state, float* obs) {
  envs_detail::check_state("acrobot", state, 4);
  for (int i = 0; i < 4; ++i) s_[i] = state[i];
  write_obs(obs);
}

bool Acrobot::is_terminal() const { return -std::cos(s_[0]) - std::cos(s_[1] + s_[0]) > 1.0; }

Acrobot::State5 Acrobot::dsdt(const State5& s) {
  constexpr double m1 = kLinkMass1, m2 = kLinkMass2, l1 = kLinkLength1;
  constexpr double lc1 = kLinkComPos1, lc2 = kLinkComPos2, I1 = kLinkMoi, I2 = kLinkMoi;
  constexpr double g = kGravity;
  const double a = s[4];
  const double theta1 = s[0], theta2 = s[1], dtheta1 = s[2], dtheta2 = s[3];
  const double d1 =
      m1 * (lc1 * lc1) + m2 * (l1 * l1 + lc2 * lc2 + 2 * l1 * lc2 * std::cos(theta2)) + I1 + I2;
  const double d2 = m2 * (lc2 * lc2 + l1 * lc2 * std::cos(theta2)) + I2;
  const double phi2 = m2 * lc2 * g * std::cos(theta1 + theta2 - kPi / 2.0);
  const double phi1 = -m2 * l1 * lc2 * (dtheta2 * dtheta2) * std::sin(theta2) -
                      2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * std::sin(theta2) +
                      (m1 * lc1 + m2 * l1) * g * std::cos(theta1 - kPi / 2) + phi2;
  // The "book" variant (consistent with the Java implementation and Sutton & Barto).
  const double ddtheta2 =
      (a + d2 / d1 * phi1 - m2 * l1 * lc2 * (dtheta1 * dtheta1) * std::sin(theta2) - phi2) /
      (m2 * (lc2 * lc2) + I2 - (d2 * d2) / d1);
  const double ddtheta1 = -(d2 * ddtheta2 + phi1) / d1;
  return {dtheta1, dtheta2, ddtheta1, ddtheta2, 0.0};
}

StepResult Acrobot::step_impl(const float* action, float* obs) {
  const int a = envs_detail::discrete_action("acrobot", action[0], 3);
  const State5 y0 = {s_[0], s_[1], s_[2], s_[3], kAvailTorque[a]};

  // One classical RK4 step over [0, dt], in the same operation order as Gymnasium's rk4.
  constexpr double dt = kDt - 0.0, dt2 = dt / 2.0;
  auto axpy = [](const State5& y, double h, const State5& k) {
    State5 r;
    for (int i = 0; i < 5; ++i) r[i] = y[i] + h * k[i];
    return r;
  };
  const State5 k1 = dsdt(y0);
  const State5 k2 = dsdt(axpy(y0, dt2, k1));
  const State5 k3 = dsdt(axpy(y0, dt2, k2));
  const State5 k4 = dsdt(axpy(y0, dt, k3));
  std::array<double, 4> ns;
  for (int i = 0; i < 4; ++i) ns[i] = y0[i] + dt / 6.0 * (k1[i] + 2 * k2[i] + 2 * k3[i] + k4[i]);

  s_[0] = wrap(ns[0], -kPi, kPi);
  s_[1] = wrap(ns[1], -kPi, kPi);
  s_[2] = std::min(std::max(ns[2], -kMaxVel1), kMaxVel1);
  s_[3] = std::min(std::max(ns[3], -kMaxVel2), kMaxVel2);

  StepResult r;
  r.terminated = is_terminal();
  r.reward = r.terminated ? 0.0f : -1.0f;
  write_obs(obs);
  return r;
}

void Acrobot::render(int width, int height, uint8_t* rgb) const {
  draw::check_render_args("acrobot", width, height, rgb);
  draw::Canvas canvas(width, height, rgb);
  canvas.fill({255, 255, 255});
  const double bound = kLinkLength1 + kLinkLength2 + 0.2;
  const auto vp = draw::Viewport::fit(width, height, -bound, bound, -bound, bound);
  // The tip must rise above this line (one link length above the pivot) to end the episode.
  canvas.line(vp(-bound, kLinkLength1), vp(bound, kLinkLength1), vp.len(0.01), {0, 0, 0});
  // theta1 = 0 hangs straight down; angles turn counter-clockwise.
  const double x1 = kLinkLength1 * std::sin(s_[0]), y1 = -kLinkLength1 * std::cos(s_[0]);
  const double x2 = x1 + kLinkLength2 * std::sin(s_[0] + s_[1]);
  const double y2 = y1 - kLinkLength2 * std::cos(s_[0] + s_[1]);
  const draw::Color link{0, 204, 204}, joint{204, 204, 0};
  canvas.line(vp(0, 0), vp(x1, y1), vp.len(0.2, 2.0), link);
  canvas.line(vp(x1, y1), vp(x2, y2), vp.len(0.2, 2.0), link);
  canvas.circle(vp(0, 0), vp.len(0.1, 1.0), joint);
  canvas.circle(vp(x1, y1), vp.len(0.1, 1.0), joint);
}

}  // namespace prefrl
