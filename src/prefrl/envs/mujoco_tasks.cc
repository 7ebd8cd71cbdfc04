// The seven MuJoCo tasks (see mujoco_tasks.h; the facts are Gymnasium v4's, the code prefrl's).
// Each step: (action) => simulate frame_skip MuJoCo steps => (obs, reward, terminated).
#include "prefrl/envs/mujoco_tasks.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "prefrl/core/error.h"

namespace prefrl {
namespace {

// The camera of locomotion tasks: the model's "track" camera, which follows the centre of mass.
MujocoCamera track_camera() {
  MujocoCamera c;
  c.fixed = "track";
  return c;
}

MujocoCamera free_camera(std::array<double, 3> lookat, double distance, double azimuth, double elevation) {
  MujocoCamera c;
  c.lookat = lookat;
  c.distance = distance;
  c.azimuth = azimuth;
  c.elevation = elevation;
  return c;
}

int require_id(const mjModel* m, mjtObj type, const char* name) {
  const int id = mj_name2id(m, type, name);
  if (id < 0) throw RuntimeError(std::string("MuJoCo model '") + m->names + "' has no object named '" + name + "'");
  return id;
}

}  // namespace

// ---- locomotion ---------------------------------------------------------------------

LocomotionEnv::LocomotionEnv(const std::string& model_name, int frame_skip, const LocomotionTerms& terms)
    : MujocoEnv(model_name, frame_skip, track_camera()), terms_(terms) {}

void LocomotionEnv::write_obs(float* obs) const { write_positions_velocities(obs, terms_.obs_skip, terms_.velocity_clip); }

void LocomotionEnv::reset_impl(float* obs) { reset_with_noise(terms_.reset_noise, terms_.normal_velocity_noise, obs); }

StepResult LocomotionEnv::step_impl(const float* action, float* obs) {
  const double x_velocity = simulate_forward(action);
  StepResult r;
  // The healthy reward is paid on every step, the terminating one included (Gymnasium's
  // terminate_when_unhealthy=True).
  r.reward = static_cast<float>(x_velocity + terms_.healthy_reward - terms_.ctrl_cost_weight * action_square_sum(action));
  r.terminated = !healthy();
  write_obs(obs);
  return r;
}

// ---- hopper -----------------------------------------------------------------------------

Hopper::Hopper() : LocomotionEnv("hopper", kFrameSkip, kTerms) {}

const EnvSpec& Hopper::spec() const {
  static const EnvSpec s = mujoco_spec("hopper", "Gymnasium Hopper-v4", "hopper", 11, kFrameSkip, 1000, true);
  return s;
}

bool Hopper::healthy() const {
  const double z = d_->qpos[1], angle = d_->qpos[2];
  for (int i = 2; i < m_->nq; ++i)
    if (!(-kHealthyStateBound < d_->qpos[i] && d_->qpos[i] < kHealthyStateBound)) return false;
  for (int i = 0; i < m_->nv; ++i)
    if (!(-kHealthyStateBound < d_->qvel[i] && d_->qvel[i] < kHealthyStateBound)) return false;
  return kHealthyZMin < z && -kHealthyAngle < angle && angle < kHealthyAngle;
}

// ---- walker2d ---------------------------------------------------------------------------

Walker2d::Walker2d() : LocomotionEnv("walker2d", kFrameSkip, kTerms) {}

const EnvSpec& Walker2d::spec() const {
  static const EnvSpec s = mujoco_spec("walker2d", "Gymnasium Walker2d-v4", "walker2d", 17, kFrameSkip, 1000, true);
  return s;
}

bool Walker2d::healthy() const {
  const double z = d_->qpos[1], angle = d_->qpos[2];
  return kHealthyZMin < z && z < kHealthyZMax && -kHealthyAngle < angle && angle < kHealthyAngle;
}

// ---- halfcheetah, swimmer ---------------------------------------------------------------

HalfCheetah::HalfCheetah() : LocomotionEnv("half_cheetah", kFrameSkip, kTerms) {}

const EnvSpec& HalfCheetah::spec() const {
  static const EnvSpec s =
      mujoco_spec("halfcheetah", "Gymnasium HalfCheetah-v4", "half_cheetah", 17, kFrameSkip, 1000, false);
  return s;
}

Swimmer::Swimmer() : LocomotionEnv("swimmer", kFrameSkip, kTerms) {}

const EnvSpec& Swimmer::spec() const {
  static const EnvSpec s = mujoco_spec("swimmer", "Gymnasium Swimmer-v4", "swimmer", 8, kFrameSkip, 1000, false);
  return s;
}

// ---- reacher ----------------------------------------------------------------------------

// Seen from straight above the table, +x to the right.
Reacher::Reacher()
    : MujocoEnv("reacher", kFrameSkip, free_camera({0.0, 0.0, 0.0}, 0.85, 90.0, -90.0)),
      fingertip_(require_id(m_, mjOBJ_BODY, "fingertip")),
      target_(require_id(m_, mjOBJ_BODY, "target")) {}

const EnvSpec& Reacher::spec() const {
  static const EnvSpec s =
      mujoco_spec("reacher", "Gymnasium Reacher-v4", "reacher", 11, kFrameSkip, kMaxEpisodeSteps, false);
  return s;
}

void Reacher::write_obs(float* obs) const {
  const double* q = d_->qpos;
  const double* tip = d_->xpos + 3 * fingertip_;
  const double* goal = d_->xpos + 3 * target_;
  const double values[11] = {std::cos(q[0]), std::cos(q[1]), std::sin(q[0]), std::sin(q[1]), q[2], q[3],
                             d_->qvel[0], d_->qvel[1], tip[0] - goal[0], tip[1] - goal[1], tip[2] - goal[2]};
  for (int i = 0; i < 11; ++i) obs[i] = static_cast<float>(values[i]);
}

void Reacher::reset_impl(float* obs) {
  std::vector<double> qpos = qpos0_plus_uniform(kArmNoise);
  double gx, gy;
  do {  // rejection sampling: uniform in the disc
    gx = rng_.uniform(-kTargetRadius, kTargetRadius);
    gy = rng_.uniform(-kTargetRadius, kTargetRadius);
  } while (std::hypot(gx, gy) >= kTargetRadius);
  qpos[2] = gx;
  qpos[3] = gy;
  std::vector<double> qvel = zero_plus_uniform(m_->nv, kVelocityNoise);
  qvel[2] = qvel[3] = 0.0;  // the target stands still
  set_qpos_qvel(qpos.data(), qvel.data());
  write_obs(obs);
}

StepResult Reacher::step_impl(const float* action, float* obs) {
  // Gymnasium v4 measures the distance before simulating: from the body positions MuJoCo last
  // computed (the previous step's), not from the state the action leads to.
  const double* tip = d_->xpos + 3 * fingertip_;
  const double* goal = d_->xpos + 3 * target_;
  const double distance = std::sqrt((tip[0] - goal[0]) * (tip[0] - goal[0]) + (tip[1] - goal[1]) * (tip[1] - goal[1]) +
                                    (tip[2] - goal[2]) * (tip[2] - goal[2]));
  StepResult r;
  r.reward = static_cast<float>(-distance - action_square_sum(action));
  do_simulation(action);
  write_obs(obs);
  return r;
}

// ---- inverted_pendulum ------------------------------------------------------------------

// From the side, far enough to see the whole rail.
InvertedPendulum::InvertedPendulum()
    : MujocoEnv("inverted_pendulum", kFrameSkip, free_camera({0.0, 0.0, 0.25}, 2.6, 90.0, -10.0)) {}

const EnvSpec& InvertedPendulum::spec() const {
  static const EnvSpec s = [] {
    EnvSpec e = mujoco_spec("inverted_pendulum", "Gymnasium InvertedPendulum-v4", "inverted_pendulum", 4,
                            kFrameSkip, 1000, true);
    e.obs_determines_state = true;  // the observation is qpos ++ qvel
    return e;
  }();
  return s;
}

bool InvertedPendulum::state_from_obs(const float* obs, std::vector<double>* state) const {
  state->assign(obs, obs + 4);
  return true;
}

void InvertedPendulum::write_obs(float* obs) const { write_positions_velocities(obs, 0, kNoClip); }

void InvertedPendulum::reset_impl(float* obs) { reset_with_noise(kResetNoise, false, obs); }

StepResult InvertedPendulum::step_impl(const float* action, float* obs) {
  do_simulation(action);
  write_obs(obs);
  StepResult r;
  r.reward = 1.0f;
  bool finite = true;
  for (int i = 0; i < 4; ++i) finite = finite && std::isfinite(obs[i]);
  r.terminated = !finite || std::fabs(obs[1]) > kMaxAngle;
  return r;
}

// ---- inverted_double_pendulum -----------------------------------------------------------

InvertedDoublePendulum::InvertedDoublePendulum()
    : MujocoEnv("inverted_double_pendulum", kFrameSkip, free_camera({0.0, 0.0, 0.5}, 3.2, 90.0, -10.0)),
      tip_(require_id(m_, mjOBJ_SITE, "tip")) {}

const EnvSpec& InvertedDoublePendulum::spec() const {
  static const EnvSpec s = mujoco_spec("inverted_double_pendulum", "Gymnasium InvertedDoublePendulum-v4",
                                       "inverted_double_pendulum", 11, kFrameSkip, 1000, true);
  return s;
}

void InvertedDoublePendulum::write_obs(float* obs) const {
  const double* q = d_->qpos;
  const double values[5] = {q[0], std::sin(q[1]), std::sin(q[2]), std::cos(q[1]), std::cos(q[2])};
  for (int i = 0; i < 5; ++i) obs[i] = static_cast<float>(values[i]);
  for (int i = 0; i < 3; ++i) obs[5 + i] = static_cast<float>(std::clamp(d_->qvel[i], -kObsClip, kObsClip));
  for (int i = 0; i < 3; ++i)
    obs[8 + i] = static_cast<float>(std::clamp(d_->qfrc_constraint[i], -kObsClip, kObsClip));
}

void InvertedDoublePendulum::reset_impl(float* obs) { reset_with_noise(kResetNoise, true, obs); }

StepResult InvertedDoublePendulum::step_impl(const float* action, float* obs) {
  do_simulation(action);
  write_obs(obs);
  // The tip where MuJoCo last computed it (as Gymnasium reads site_xpos after mj_step).
  const double x = d_->site_xpos[3 * tip_], y = d_->site_xpos[3 * tip_ + 2];
  const double w1 = d_->qvel[1], w2 = d_->qvel[2];
  const double distance_penalty = 0.01 * x * x + (y - 2.0) * (y - 2.0);
  const double velocity_penalty = 1e-3 * w1 * w1 + 5e-3 * w2 * w2;
  StepResult r;
  r.reward = static_cast<float>(kAliveBonus - distance_penalty - velocity_penalty);
  r.terminated = y <= kMinTipHeight;
  return r;
}

}  // namespace prefrl
