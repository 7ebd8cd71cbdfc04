#include "prefrl/envs/cartpole.h"

#include <cmath>
#include <limits>

#include "prefrl/envs/action_util.h"
#include "prefrl/envs/render.h"

namespace prefrl {

const EnvSpec& CartPole::spec() const {
  static const EnvSpec s = [] {
    EnvSpec e;
    e.name = "cartpole";
    e.reference = "Gymnasium CartPole-v1";
    const float big = std::numeric_limits<float>::max();
    // Position and angle bounds are twice the failure thresholds, so a failing obs is in bounds.
    const float x_hi = static_cast<float>(kXThreshold * 2),
                th_hi = static_cast<float>(kThetaThreshold * 2);
    e.observation = Space::box({4}, {-x_hi, -big, -th_hi, -big}, {x_hi, big, th_hi, big});
    e.action = Space::discrete_n(2);
    e.max_episode_steps = kMaxEpisodeSteps;
    e.fps = 1.0 / kTau;
    e.state_size = 4;
    return e;
  }();
  return s;
}

std::vector<double> CartPole::get_state() const { return {x_, x_dot_, theta_, theta_dot_}; }

bool CartPole::state_from_obs(const float* obs, std::vector<double>* state) const {
  *state = {double(obs[0]), double(obs[1]), double(obs[2]), double(obs[3])};  // obs is the state
  return true;
}

void CartPole::write_obs(float* obs) const {
  obs[0] = static_cast<float>(x_);
  obs[1] = static_cast<float>(x_dot_);
  obs[2] = static_cast<float>(theta_);
  obs[3] = static_cast<float>(theta_dot_);
}

void CartPole::reset_impl(float* obs) {
  x_ = rng_.uniform(-0.05, 0.05);
  x_dot_ = rng_.uniform(-0.05, 0.05);
  theta_ = rng_.uniform(-0.05, 0.05);
  theta_dot_ = rng_.uniform(-0.05, 0.05);
  steps_beyond_terminated_ = false;
  write_obs(obs);
}

void CartPole::set_state_impl(const std::vector<double>& state, float* obs) {
  envs_detail::check_state("cartpole", state, 4);
  x_ = state[0];
  x_dot_ = state[1];
  theta_ = state[2];
  theta_dot_ = state[3];
  steps_beyond_terminated_ = false;
  write_obs(obs);
}

StepResult CartPole::step_impl(const float* action, float* obs) {
  const int a = envs_detail::discrete_action("cartpole", action[0], 2);
  const double force = a == 1 ? kForceMag : -kForceMag;
  const double costheta = std::cos(theta_);
  const double sintheta = std::sin(theta_);

  // Florian (2007), "Correct equations for the dynamics of the cart-pole system".
  const double temp = (force + kPoleMassLength * (theta_dot_ * theta_dot_) * sintheta) / kTotalMass;
  const double thetaacc = (kGravity * sintheta - costheta * temp) /
                          (kLength * (4.0 / 3.0 - kMassPole * (costheta * costheta) / kTotalMass));
  const double xacc = temp - kPoleMassLength * thetaacc * costheta / kTotalMass;

  // Explicit Euler: positions advance with the old velocities.
  x_ = x_ + kTau * x_dot_;
  x_dot_ = x_dot_ + kTau * xacc;
  theta_ = theta_ + kTau * theta_dot_;
  theta_dot_ = theta_dot_ + kTau * thetaacc;

  StepResult r;
  r.terminated = x_ < -kXThreshold || x_ > kXThreshold || theta_ < -kThetaThreshold ||
                 theta_ > kThetaThreshold;
  // 1 on every step including the one where the pole falls; 0 if stepped past termination.
  r.reward = steps_beyond_terminated_ ? 0.0f : 1.0f;
  if (r.terminated) steps_beyond_terminated_ = true;
  write_obs(obs);
  return r;
}

void CartPole::render(int width, int height, uint8_t* rgb) const {
  draw::check_render_args("cartpole", width, height, rgb);
  draw::Canvas canvas(width, height, rgb);
  canvas.fill({255, 255, 255});
  // World: the track spans [-2.4, 2.4] m; the pole (1 m) stands above the cart.
  const auto vp = draw::Viewport::fit(width, height, -kXThreshold, kXThreshold, -0.6, 1.4);
  canvas.line(vp(-kXThreshold, 0.0), vp(kXThreshold, 0.0), vp.len(0.01), {150, 150, 150});  // track
  // Sizes in pixels have a minimum so that small images still show the cart.
  const double cart_w = vp.len(0.4, 4.0), cart_h = vp.len(0.24, 2.0), pole_w = 0.08;
  const draw::Point cart = vp(x_, 0.0);
  canvas.rect(cart.x - cart_w / 2, cart.y - cart_h / 2, cart.x + cart_w / 2, cart.y + cart_h / 2,
              {0, 0, 0});
  // The pole pivots at the axle, a quarter of the cart height up; theta > 0 leans right.
  const double pole_len = vp.len(2 * kLength);
  const draw::Point axle{cart.x, cart.y - cart_h / 4};
  canvas.line(axle, {axle.x + pole_len * std::sin(theta_), axle.y - pole_len * std::cos(theta_)},
              vp.len(pole_w, 2.0), {202, 152, 101});
  canvas.circle(axle, vp.len(pole_w / 2, 1.0), {129, 132, 203});
}

}  // namespace prefrl
