#include "prefrl/envs/mountaincar_continuous.h"

#include <cmath>
#include <vector>

#include "prefrl/envs/action_util.h"
#include "prefrl/envs/render.h"

namespace prefrl {

const EnvSpec& MountainCarContinuous::spec() const {
  static const EnvSpec s = [] {
    EnvSpec e;
    e.name = "mountaincar_continuous";
    e.reference = "Gymnasium MountainCarContinuous-v0";
    e.observation =
        Space::box({2}, {static_cast<float>(kMinPosition), static_cast<float>(-kMaxSpeed)},
                   {static_cast<float>(kMaxPosition), static_cast<float>(kMaxSpeed)});
    e.action = Space::box({1}, {static_cast<float>(kMinAction)}, {static_cast<float>(kMaxAction)});
    e.max_episode_steps = kMaxEpisodeSteps;
    e.fps = 30.0;  // Gymnasium's render_fps; the dynamics have no time unit
    e.state_size = 2;
    return e;
  }();
  return s;
}

std::vector<double> MountainCarContinuous::get_state() const { return {position_, velocity_}; }

bool MountainCarContinuous::state_from_obs(const float* obs, std::vector<double>* state) const {
  *state = {double(obs[0]), double(obs[1])};  // obs is the state
  return true;
}

void MountainCarContinuous::write_obs(float* obs) const {
  obs[0] = static_cast<float>(position_);
  obs[1] = static_cast<float>(velocity_);
}

void MountainCarContinuous::reset_impl(float* obs) {
  position_ = rng_.uniform(-0.6, -0.4);
  velocity_ = 0.0;
  write_obs(obs);
}

void MountainCarContinuous::set_state_impl(const std::vector<double>& state, float* obs) {
  envs_detail::check_state("mountaincar_continuous", state, 2);
  position_ = state[0];
  velocity_ = state[1];
  write_obs(obs);
}

StepResult MountainCarContinuous::step_impl(const float* action, float* obs) {
  // NaN counts as 0 for both the force and the action cost.
  const float raw = std::isnan(action[0]) ? 0.0f : action[0];
  const double force =
      envs_detail::clip_action(raw, static_cast<float>(kMinAction), static_cast<float>(kMaxAction));
  double position = position_, velocity = velocity_;
  velocity += force * kPower - kGravityTerm * std::cos(3 * position);
  if (velocity > kMaxSpeed) velocity = kMaxSpeed;
  if (velocity < -kMaxSpeed) velocity = -kMaxSpeed;
  position += velocity;
  if (position > kMaxPosition) position = kMaxPosition;
  if (position < kMinPosition) position = kMinPosition;
  // Inelastic collision with the left wall.
  if (position == kMinPosition && velocity < 0) velocity = 0;

  StepResult r;
  r.terminated = position >= kGoalPosition && velocity >= kGoalVelocity;
  // The action cost uses the raw, unclipped action, as Gymnasium 0.29.1 does
  // (reward -= action[0]**2 * 0.1 after clipping only the force).
  const double reward = (r.terminated ? 100.0 : 0.0) - static_cast<double>(raw) * raw * 0.1;
  r.reward = static_cast<float>(reward);

  // Gymnasium stores the state as float32 after every step.
  position_ = static_cast<float>(position);
  velocity_ = static_cast<float>(velocity);
  write_obs(obs);
  return r;
}

void MountainCarContinuous::render(int width, int height, uint8_t* rgb) const {
  draw::check_render_args("mountaincar_continuous", width, height, rgb);
  draw::Canvas canvas(width, height, rgb);
  canvas.fill({255, 255, 255});
  const auto vp = draw::Viewport::fit(width, height, kMinPosition, kMaxPosition, 0.0, 1.2);

  std::vector<draw::Point> hill;
  for (int i = 0; i < 100; ++i) {
    const double x = kMinPosition + (kMaxPosition - kMinPosition) * i / 99.0;
    hill.push_back(vp(x, hill_height(x)));
  }
  canvas.polyline(hill, vp.len(0.006), {0, 0, 0});

  // Goal flag: a pole with a yellow triangle at its top.
  const double fx = kGoalPosition, fy = hill_height(kGoalPosition), pole = 0.15;
  canvas.line(vp(fx, fy), vp(fx, fy + pole), vp.len(0.006), {0, 0, 0});
  canvas.polygon({vp(fx, fy + pole), vp(fx, fy + pole - 0.03), vp(fx + 0.075, fy + pole - 0.015)},
                 {204, 204, 0});

  // The car: a rectangle tilted along the slope, lifted by a small clearance, with two wheels.
  // Drawn in pixels (y down) so that it keeps a legible minimum size on small images.
  const double angle = std::atan(3 * 0.45 * std::cos(3 * position_));
  const double ca = std::cos(angle), sa = std::sin(angle);
  const double car_w = vp.len(0.12, 4.0), car_h = vp.len(0.06, 2.0), clearance = vp.len(0.03, 0.0);
  const draw::Point ground = vp(position_, hill_height(position_));
  auto car_point = [&](double u, double v) {  // car frame (u along the slope, v up) => pixels
    return draw::Point{ground.x + u * ca - (v + clearance) * sa,
                       ground.y - u * sa - (v + clearance) * ca};
  };
  canvas.polygon({car_point(-car_w / 2, 0), car_point(-car_w / 2, car_h),
                  car_point(car_w / 2, car_h), car_point(car_w / 2, 0)},
                 {0, 0, 0});
  for (double u : {-car_w / 4, car_w / 4}) {
    canvas.circle(car_point(u, 0), vp.len(0.024, 1.0), {128, 128, 128});
  }
}

}  // namespace prefrl
