// Acrobot: Gymnasium Acrobot-v1 (Sutton 1996), a two-link pendulum actuated at the elbow;
// the "book" dynamics, integrated with one RK4 step over dt = 0.2.
#pragma once
#include <array>
#include <numbers>

#include "prefrl/envs/env.h"

namespace prefrl {

class Acrobot : public Env {
 public:
  static constexpr double kDt = 0.2;
  static constexpr double kLinkLength1 = 1.0;  // [m]
  static constexpr double kLinkLength2 = 1.0;  // [m]
  static constexpr double kLinkMass1 = 1.0;    // [kg]
  static constexpr double kLinkMass2 = 1.0;    // [kg]
  static constexpr double kLinkComPos1 = 0.5;  // [m] centre of mass of link 1
  static constexpr double kLinkComPos2 = 0.5;  // [m] centre of mass of link 2
  static constexpr double kLinkMoi = 1.0;      // moment of inertia of both links
  static constexpr double kGravity = 9.8;
  static constexpr double kMaxVel1 = 4 * std::numbers::pi;
  static constexpr double kMaxVel2 = 9 * std::numbers::pi;
  static constexpr std::array<double, 3> kAvailTorque = {-1.0, 0.0, 1.0};
  static constexpr int kMaxEpisodeSteps = 500;

  // The spec: obs Box(6) [cos t1, sin t1, cos t2, sin t2, dt1, dt2], action Discrete(3)
  // (torque -1, 0, +1 on the elbow).
  const EnvSpec& spec() const override;
  // State (4): theta1, theta2, dtheta1, dtheta2 (theta1 = 0 hangs down; theta2 is relative).
  std::vector<double> get_state() const override;
  bool state_from_obs(const float* obs, std::vector<double>* state) const override;
  // Both links, joints, and the line the tip must rise above.
  void render(int width, int height, uint8_t* rgb) const override;

 protected:
  void reset_impl(float* obs) override;
  StepResult step_impl(const float* action, float* obs) override;
  void set_state_impl(const std::vector<double>& state, float* obs) override;

 private:
  using State5 = std::array<double, 5>;  // theta1, theta2, dtheta1, dtheta2, torque
  static State5 dsdt(const State5& s);   // time derivative of the augmented state
  void write_obs(float* obs) const;      // obs (6)
  bool is_terminal() const;              // tip above the line one link length over the pivot
  std::array<double, 4> s_{};
};

}  // namespace prefrl
