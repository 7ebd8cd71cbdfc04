// The seven MuJoCo tasks of the paper's main table, as Gymnasium's v4 versions define them:
// observations, action ranges, reward terms, termination rules, reset noise, frame skip and
// time limits (the models: mjcf/*.xml). Differences from Gymnasium: observations are float32,
// and the random numbers of resets come from prefrl's Rng, not NumPy's.
#pragma once
#include <limits>

#include "prefrl/envs/mujoco_env.h"

namespace prefrl {

inline constexpr double kNoClip = std::numeric_limits<double>::infinity();

// Gymnasium's forward-locomotion tasks (hopper, walker2d, halfcheetah, swimmer):
// obs = qpos[skip:] ++ clip(qvel, +-velocity_clip); reward = dx/dt + healthy_reward -
// ctrl_cost_weight |a|^2 with x the root's position (qpos[0]); terminated when !healthy().
struct LocomotionTerms {
  int obs_skip = 1;               // leading qpos entries the observation leaves out (x; swimmer: x, y)
  double velocity_clip = 0;       // the observation clips qvel to +-this; infinity: unclipped
  double ctrl_cost_weight = 0;    // of the summed squared action
  double healthy_reward = 0;      // paid on every step, the terminating one included
  double reset_noise = 0;         // qpos0 + U(+-reset_noise); qvel likewise or reset_noise N(0, 1)
  bool normal_velocity_noise = false;
};

class LocomotionEnv : public MujocoEnv {
 public:
  // Whether the body is within the task's healthy ranges; tasks that cannot fall always are.
  virtual bool healthy() const { return true; }

 protected:
  LocomotionEnv(const std::string& model_name, int frame_skip, const LocomotionTerms& terms);
  void reset_impl(float* obs) override;
  StepResult step_impl(const float* action, float* obs) override;
  void write_obs(float* obs) const override;

 private:
  LocomotionTerms terms_;
};

// Hopper-v4. obs (11): qpos[1:] (z, torso angle, thigh, leg, foot), clip(qvel, +-10);
// action Box(3) [-1, 1]; reward = dx/dt + 1 (healthy) - 1e-3 |a|^2; terminates when unhealthy:
// some of qpos[2:] ++ qvel outside (-100, 100), z <= 0.7 or |angle| >= 0.2.
class Hopper : public LocomotionEnv {
 public:
  static constexpr int kFrameSkip = 4;
  static constexpr double kHealthyStateBound = 100.0;  // |qpos[2:] ++ qvel| < this
  static constexpr double kHealthyZMin = 0.7;
  static constexpr double kHealthyAngle = 0.2;         // |torso angle| < this
  static constexpr LocomotionTerms kTerms = {.obs_skip = 1, .velocity_clip = 10.0, .ctrl_cost_weight = 1e-3,
                                             .healthy_reward = 1.0, .reset_noise = 5e-3};
  Hopper();
  const EnvSpec& spec() const override;
  bool healthy() const override;
};

// Walker2d-v4. obs (17): qpos[1:], clip(qvel, +-10); action Box(6) [-1, 1]; reward =
// dx/dt + 1 (healthy) - 1e-3 |a|^2; terminates when z is outside (0.8, 2) or |angle| >= 1.
class Walker2d : public LocomotionEnv {
 public:
  static constexpr int kFrameSkip = 4;
  static constexpr double kHealthyZMin = 0.8, kHealthyZMax = 2.0;
  static constexpr double kHealthyAngle = 1.0;
  static constexpr LocomotionTerms kTerms = Hopper::kTerms;  // the hopper's observation, reward and reset
  Walker2d();
  const EnvSpec& spec() const override;
  bool healthy() const override;
};

// HalfCheetah-v4. obs (17): qpos[1:], qvel; action Box(6) [-1, 1]; reward = dx/dt - 0.1 |a|^2;
// never terminates. Reset: qpos0 + U(-0.1, 0.1), qvel = 0.1 N(0, 1).
class HalfCheetah : public LocomotionEnv {
 public:
  static constexpr int kFrameSkip = 5;
  static constexpr LocomotionTerms kTerms = {.obs_skip = 1, .velocity_clip = kNoClip, .ctrl_cost_weight = 0.1,
                                             .reset_noise = 0.1, .normal_velocity_noise = true};
  HalfCheetah();
  const EnvSpec& spec() const override;
};

// Swimmer-v4. obs (8): qpos[2:] (front link angle, two joint angles), qvel; action Box(2)
// [-1, 1]; reward = dx/dt - 1e-4 |a|^2 (x of the front link); never terminates.
class Swimmer : public LocomotionEnv {
 public:
  static constexpr int kFrameSkip = 4;
  static constexpr LocomotionTerms kTerms = {.obs_skip = 2, .velocity_clip = kNoClip, .ctrl_cost_weight = 1e-4,
                                             .reset_noise = 0.1};
  Swimmer();
  const EnvSpec& spec() const override;
};

// Reacher-v4. obs (11): cos q0, cos q1, sin q0, sin q1, target x, y, q0', q1', fingertip - target
// (x, y, z); action Box(2) [-1, 1]; reward = -|fingertip - target| - |a|^2, the distance taken
// before the step's simulation (as Gymnasium does); never terminates; 50 steps.
class Reacher : public MujocoEnv {
 public:
  static constexpr int kFrameSkip = 2;
  static constexpr int kMaxEpisodeSteps = 50;
  static constexpr double kArmNoise = 0.1;        // uniform on the arm's qpos
  static constexpr double kVelocityNoise = 0.005; // uniform on the arm's qvel
  static constexpr double kTargetRadius = 0.2;    // target uniform in the open disc of this radius
  Reacher();
  const EnvSpec& spec() const override;

 protected:
  void reset_impl(float* obs) override;
  StepResult step_impl(const float* action, float* obs) override;
  void write_obs(float* obs) const override;

 private:
  int fingertip_, target_;  // body ids
};

// InvertedPendulum-v4. obs (4): qpos, qvel (= the state); action Box(1) [-3, 3]; reward 1 per
// step; terminates when |pole angle| > 0.2 or the observation is not finite.
class InvertedPendulum : public MujocoEnv {
 public:
  static constexpr int kFrameSkip = 2;
  static constexpr double kMaxAngle = 0.2;
  static constexpr double kResetNoise = 0.01;
  InvertedPendulum();
  const EnvSpec& spec() const override;
  bool state_from_obs(const float* obs, std::vector<double>* state) const override;

 protected:
  void reset_impl(float* obs) override;
  StepResult step_impl(const float* action, float* obs) override;
  void write_obs(float* obs) const override;
};

// InvertedDoublePendulum-v4. obs (11): cart x, sin of both angles, cos of both angles,
// clip(qvel, +-10), clip(qfrc_constraint, +-10); action Box(1) [-1, 1]; reward = 10 -
// (0.01 x^2 + (y - 2)^2) - (1e-3 w1^2 + 5e-3 w2^2) from the tip (x, y) and the poles' angular
// velocities; terminates when the tip's height y <= 1.
class InvertedDoublePendulum : public MujocoEnv {
 public:
  static constexpr int kFrameSkip = 5;
  static constexpr double kAliveBonus = 10.0;
  static constexpr double kMinTipHeight = 1.0;
  static constexpr double kResetNoise = 0.1;  // uniform on qpos; qvel = 0.1 N(0, 1)
  static constexpr double kObsClip = 10.0;
  InvertedDoublePendulum();
  const EnvSpec& spec() const override;

 protected:
  void reset_impl(float* obs) override;
  StepResult step_impl(const float* action, float* obs) override;
  void write_obs(float* obs) const override;

 private:
  int tip_;  // site id
};

}  // namespace prefrl
