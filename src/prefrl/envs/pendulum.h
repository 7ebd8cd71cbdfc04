// Pendulum: Gymnasium Pendulum-v1, the inverted pendulum swing-up with a torque limit.
#pragma once
#include "prefrl/envs/env.h"

namespace prefrl {

class Pendulum : public Env {
 public:
  static constexpr double kMaxSpeed = 8.0;
  static constexpr double kMaxTorque = 2.0;
  static constexpr double kDt = 0.05;
  static constexpr double kGravity = 10.0;
  static constexpr double kMass = 1.0;
  static constexpr double kLength = 1.0;
  static constexpr int kMaxEpisodeSteps = 200;

  // The spec: obs Box(3) [cos theta, sin theta, theta_dot], action Box(1) torque in [-2, 2].
  const EnvSpec& spec() const override;
  // State (2): theta (0 = upright), theta_dot.
  std::vector<double> get_state() const override;
  bool state_from_obs(const float* obs, std::vector<double>* state) const override;
  // Rod, pivot and the last applied torque as a bar under the pivot.
  void render(int width, int height, uint8_t* rgb) const override;

  // Angle wrapped into [-pi, pi) with Python's modulo semantics, as Gymnasium's angle_normalize.
  static double angle_normalize(double x);

 protected:
  void reset_impl(float* obs) override;
  StepResult step_impl(const float* action, float* obs) override;
  void set_state_impl(const std::vector<double>& state, float* obs) override;

 private:
  void write_obs(float* obs) const;  // obs (3)
  double theta_ = 0.0, theta_dot_ = 0.0;
  float last_u_ = 0.0f;  // last clipped torque, for rendering only
};

}  // namespace prefrl
