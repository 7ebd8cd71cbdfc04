// MountainCarContinuous: Gymnasium MountainCarContinuous-v0 (Moore 1990), an under-powered car
// that must rock back and forth to climb the right hill.
#pragma once
#include <cmath>

#include "prefrl/envs/env.h"

namespace prefrl {

class MountainCarContinuous : public Env {
 public:
  static constexpr double kMinAction = -1.0;
  static constexpr double kMaxAction = 1.0;
  static constexpr double kMinPosition = -1.2;
  static constexpr double kMaxPosition = 0.6;
  static constexpr double kMaxSpeed = 0.07;
  static constexpr double kGoalPosition = 0.45;
  static constexpr double kGoalVelocity = 0.0;
  static constexpr double kPower = 0.0015;
  static constexpr double kGravityTerm = 0.0025;  // velocity change from the slope: -0.0025 cos(3x)
  static constexpr int kMaxEpisodeSteps = 999;

  // The spec: obs Box(2) [position, velocity], action Box(1) force in [-1, 1].
  const EnvSpec& spec() const override;
  // State (2): position, velocity.
  std::vector<double> get_state() const override;
  bool state_from_obs(const float* obs, std::vector<double>* state) const override;
  // Hill curve, car with wheels, goal flag.
  void render(int width, int height, uint8_t* rgb) const override;

  // Height of the hill at position x: sin(3x) * 0.45 + 0.55.
  static double hill_height(double x) { return std::sin(3 * x) * 0.45 + 0.55; }

 protected:
  void reset_impl(float* obs) override;
  StepResult step_impl(const float* action, float* obs) override;
  void set_state_impl(const std::vector<double>& state, float* obs) override;

 private:
  void write_obs(float* obs) const;  // obs (2)
  double position_ = 0.0, velocity_ = 0.0;
};

}  // namespace prefrl
