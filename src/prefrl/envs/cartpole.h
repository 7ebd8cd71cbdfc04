// CartPole: Gymnasium CartPole-v1 (Barto, Sutton & Anderson 1983), explicit Euler, tau = 0.02.
#pragma once
#include "prefrl/envs/env.h"

namespace prefrl {

class CartPole : public Env {
 public:
  static constexpr double kGravity = 9.8;
  static constexpr double kMassCart = 1.0;
  static constexpr double kMassPole = 0.1;
  static constexpr double kTotalMass = kMassCart + kMassPole;
  static constexpr double kLength = 0.5;  // half the pole's length
  static constexpr double kPoleMassLength = kMassPole * kLength;
  static constexpr double kForceMag = 10.0;
  static constexpr double kTau = 0.02;  // seconds per step
  static constexpr double kThetaThreshold = 12.0 * 2.0 * 3.14159265358979323846 / 360.0;
  static constexpr double kXThreshold = 2.4;
  static constexpr int kMaxEpisodeSteps = 500;

  // The spec: obs Box(4) [x, x_dot, theta, theta_dot], action Discrete(2) (0 push left, 1 right).
  const EnvSpec& spec() const override;
  // State (4): x, x_dot, theta, theta_dot.
  std::vector<double> get_state() const override;
  bool state_from_obs(const float* obs, std::vector<double>* state) const override;
  // Cart, pole, axle and track.
  void render(int width, int height, uint8_t* rgb) const override;

 protected:
  void reset_impl(float* obs) override;
  StepResult step_impl(const float* action, float* obs) override;
  void set_state_impl(const std::vector<double>& state, float* obs) override;

 private:
  void write_obs(float* obs) const;  // obs (4)
  double x_ = 0.0, x_dot_ = 0.0, theta_ = 0.0, theta_dot_ = 0.0;
  bool steps_beyond_terminated_ = false;  // stepped on after termination: reward 0 (as Gymnasium)
};

}  // namespace prefrl
